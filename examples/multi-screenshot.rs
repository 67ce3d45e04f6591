//! Screenshots many RDP servers from one thread: bounded concurrency, a progress line, a PNG
//! per server, and the figures a scanner cares about (time to all first frames, memory per
//! session).
//!
//! ```text
//! cargo run --release --example multi-screenshot -- --demo 50            # 50 in-process demo servers
//! cargo run --release --example multi-screenshot -- -c 8 -d shots rdp://u:p@10.0.0.1 rdp://u:p@10.0.0.2
//! cargo run --release --example multi-screenshot -- -f targets.txt      # one rdp:// URL per line
//! cargo run --release --example multi-screenshot -- --help
//! ```
//!
//! Real servers are checked against known hosts (remembered on first contact) unless `--pin`
//! is given; `--user`, `--security` and the trust options apply to every one of them. A
//! password comes from each URL, else `RDP_PASSWORD`, else a prompt per server.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_rdp::trust::Fingerprint;
use async_rdp::{connect, ClientConfig, Trust};
use async_rdp_cli::ConnectOptions;
use async_rdp_demo_server::{Config, DemoServer};
use clap::Parser as _;
use common::ms;
use futures::{FutureExt, StreamExt};

/// Screenshots many RDP servers from one thread (without any, 50 in-process demo servers),
/// writing a PNG per server and the time to all first frames and the memory per session.
#[derive(clap::Parser)]
// -d is the output directory here, as it always was: --domain has only its long name.
#[command(name = "multi-screenshot", mut_arg("domain", |a| a.short(None)))]
struct Cli {
    #[command(flatten)]
    connect: ConnectOptions,

    /// How many servers to connect to at a time
    #[arg(short, long, value_name = "N", default_value_t = 16)]
    concurrency: usize,

    /// The directory to write the PNGs to (one per server)
    #[arg(short = 'd', long, value_name = "DIR", default_value = "shots")]
    out_dir: String,

    /// Also screenshot this many in-process demo servers (50 when no server is named)
    #[arg(long, value_name = "N", default_value_t = 0)]
    demo: usize,

    /// Read servers from this file, one TARGET per line (# starts a comment; repeatable)
    #[arg(short, long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,

    /// The servers: rdp://[user[:password]@]host[:port], host[:port] or [v6]:port
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

struct Job {
    name: String,
    addr: String,
    config: ClientConfig,
}

fn main() {
    let cli = Cli::parse();
    common::main(run(cli));
}

async fn run(cli: Cli) -> Result<(), String> {
    let (concurrency, out_dir, mut demo) = (cli.concurrency, cli.out_dir, cli.demo);
    let mut targets = Vec::new();
    for path in &cli.files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            targets.push(async_rdp_cli::parse_target(line)?);
        }
    }
    for text in &cli.targets {
        targets.push(async_rdp_cli::parse_target(text)?);
    }
    if demo == 0 && targets.is_empty() {
        demo = 50;
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{out_dir}: {e}"))?;

    // Demo servers: small desktops, all served from this same thread.
    let mut servers = Vec::new();
    for _ in 0..demo {
        let config = Config {
            desktop: async_rdp::ironrdp_connector::DesktopSize {
                width: 640,
                height: 400,
            },
            ..Config::default()
        };
        servers.push(
            DemoServer::bind(config)
                .await
                .map_err(|e| format!("demo server: {e}"))?,
        );
    }
    let mut jobs: Vec<Job> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let addr = server.local_addr().map_err(|e| e.to_string())?.to_string();
        let config = ClientConfig::new(&server.config().username, server.config().password.as_str())
            .with_desktop_size(640, 400)
            .with_trust(Trust::pinned([Fingerprint::of(server.certificate())]));
        jobs.push(Job {
            name: format!("demo-{i:03}"),
            addr,
            config,
        });
    }
    for target in &targets {
        jobs.push(Job {
            name: target.to_string().replace([':', '[', ']'], "_"),
            addr: target.to_string(),
            config: cli.connect.client_config(target, None)?,
        });
    }

    let total = jobs.len();
    println!("{total} targets, {concurrency} at a time, one thread");
    let rss_before = common::rss_kib();
    let started = Instant::now();
    let serving = futures::future::join_all(servers.iter().map(|s| s.serve_forever())).fuse();
    let out_dir = &out_dir;
    let shooting = futures::stream::iter(jobs)
        .map(|job| async move {
            let result = shoot(&job, out_dir).await;
            (job.name, result)
        })
        .buffer_unordered(concurrency.max(1))
        .fold(
            (0usize, 0usize, Vec::new()),
            |(mut ok, mut failed, mut firsts), (name, result)| async move {
                match result {
                    Ok(first) => {
                        ok += 1;
                        firsts.push(first);
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("\n{name}: {e}");
                    }
                }
                eprint!(
                    "\r[{}/{total}] ok {ok}, failed {failed}, {:.1} s ",
                    ok + failed,
                    started.elapsed().as_secs_f64()
                );
                (ok, failed, firsts)
            },
        )
        .fuse();
    futures::pin_mut!(serving, shooting);
    let (ok, failed, firsts) = futures::select! {
        done = shooting => done,
        _ = serving => return Err("the demo servers stopped".into()),
    };
    eprintln!();
    let all = started.elapsed();
    let peak = common::peak_rss_kib();
    println!(
        "{ok} screenshots, {failed} failures, in {:.1} ms (all first frames by then)",
        ms(all)
    );
    if let Some(slowest) = firsts.iter().max() {
        println!("slowest connect-to-first-frame: {:.1} ms", ms(*slowest));
    }
    if let (Some(before), Some(peak)) = (rss_before, peak) {
        let per = (peak.saturating_sub(before)) / u64::try_from(total.max(1)).unwrap_or(1);
        println!(
            "memory: {before} KiB before, {peak} KiB peak: ~{per} KiB per session{}",
            if demo > 0 {
                " (demo servers in this process included)"
            } else {
                ""
            }
        );
    }
    if failed > 0 {
        return Err(format!("{failed} of {total} failed"));
    }
    Ok(())
}

/// One target: connect, wait for the screen to settle, write the PNG, shut down. Returns the
/// time from the start of the connection to the first frame.
async fn shoot(job: &Job, out_dir: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let mut session = connect(&job.addr, job.config.clone())
        .await
        .map_err(|e| async_rdp_cli::explain(&e))?;
    let connected = start.elapsed();
    // Nothing drawn by the deadline is an error (no picture), which counts this target failed.
    let drawn = session
        .wait_until_drawn(Duration::from_millis(300), Duration::from_secs(20))
        .await
        .map_err(|e| async_rdp::report(&e))?;
    let first = drawn.first_update;
    common::write_png(&format!("{out_dir}/{}.png", job.name), &session.framebuffer())?;
    let _ = session.shutdown(Duration::from_secs(2)).await;
    Ok(connected + first)
}
