//! Connects to an RDP server, waits until the desktop has been drawn, and writes it to a PNG,
//! printing each phase with its duration.
//!
//! ```text
//! cargo run --release --example screenshot                       # built-in demo server
//! cargo run --release --example screenshot -- rdp://user@host:3389 --pin AB:CD:... -o shot.png
//! cargo run --release --example screenshot -- --help
//! ```
//!
//! "Drawn" means no screen update for `--settle` milliseconds (default 500) after one that
//! changed pixels, with no frame half sent, or `--deadline` seconds (default 20) after the
//! session started, whichever comes first. When nothing at all was drawn by the deadline, no
//! PNG is written and the program exits with status 1. The password comes from the URL, else
//! `RDP_PASSWORD`, else a prompt. A real server's certificate is checked against known hosts
//! (`~/.config/async-rdp/known_hosts`, or `--known-hosts FILE`): remembered on first contact
//! (`--refuse-unknown` refuses instead), refused if it changes later. `--pin <SHA-256>` trusts
//! exactly that certificate.

mod common;

use std::time::{Duration, Instant};

use async_rdp::trust::Fingerprint;
use async_rdp::{connect_with_timings, ClientConfig, ColorDepth, Target, Trust};
use async_rdp_cli::{ConnectArgs, FirstUseArg};
use clap::Parser as _;
use common::ms;
use futures::FutureExt;

/// Connects to an RDP server (or, without TARGET, to a built-in demo server), waits until the
/// desktop has been drawn and writes it to a PNG, printing each phase with its duration.
#[derive(clap::Parser)]
#[command(name = "screenshot")]
struct Options {
    #[command(flatten)]
    connect: ConnectArgs,

    /// The PNG file to write
    #[arg(short, long, value_name = "FILE", default_value = "screenshot.png")]
    output: String,

    /// Refuse a server not in the known-hosts file (the same as --on-first-use refuse)
    #[arg(long, conflicts_with = "on_first_use")]
    refuse_unknown: bool,

    /// Drawn means no screen update for this many milliseconds after one that changed pixels
    #[arg(long, value_name = "MS", default_value = "500", value_parser = millis)]
    settle: Duration,

    /// Seconds after the session started at which to stop waiting (and for a --resize)
    #[arg(long, value_name = "S", default_value = "20", value_parser = seconds)]
    deadline: Duration,

    /// The desktop size to ask for
    #[arg(long, value_name = "WxH", default_value = "1280x720", value_parser = size::<u16>)]
    size: (u16, u16),

    /// Once drawn, resize the desktop through display control, and shoot it at the new size
    #[arg(long, value_name = "WxH", value_parser = size::<u32>)]
    resize: Option<(u32, u32)>,

    /// Bits per pixel to ask for
    #[arg(long = "bpp", value_name = "BPP", default_value = "32", value_parser = bpp())]
    depth: ColorDepth,
}

/// `--bpp`: 15, 16, 24 or 32.
fn bpp() -> impl clap::builder::TypedValueParser<Value = ColorDepth> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["15", "16", "24", "32"]).map(|bpp| match bpp.as_str() {
        "15" => ColorDepth::Bpp15,
        "16" => ColorDepth::Bpp16,
        "24" => ColorDepth::Bpp24,
        _ => ColorDepth::Bpp32,
    })
}

fn millis(text: &str) -> Result<Duration, String> {
    text.parse().map(Duration::from_millis).map_err(|e| e.to_string())
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse().map(Duration::from_secs).map_err(|e| e.to_string())
}

/// `WIDTHxHEIGHT`.
fn size<T: std::str::FromStr>(text: &str) -> Result<(T, T), String> {
    let (w, h) = text.split_once('x').ok_or("expected WIDTHxHEIGHT, such as 1024x768")?;
    match (w.parse(), h.parse()) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(format!("{text:?} is not WIDTHxHEIGHT in range")),
    }
}

fn main() {
    let mut options = Options::parse();
    if options.refuse_unknown {
        options.connect.options.on_first_use = Some(FirstUseArg::Refuse);
    }
    common::main(run(options));
}

async fn run(options: Options) -> Result<(), String> {
    match options.connect.target()? {
        Some(target) => {
            let config = options.connect.client_config(&target, None)?;
            shoot(target, config, &options).await
        }
        None => {
            let server_config = async_rdp_demo_server::Config {
                animate: Some(Duration::from_secs(1)),
                ..async_rdp_demo_server::Config::default()
            };
            let server = async_rdp_demo_server::DemoServer::bind(server_config.clone())
                .await
                .map_err(|e| format!("demo server: {e}"))?;
            let addr = server.local_addr().map_err(|e| e.to_string())?;
            println!(
                "demo server listening on {addr} (in-process, NLA, user {:?})",
                server_config.username
            );
            let config = ClientConfig::new(&server_config.username, server_config.password.as_str())
                .with_trust(Trust::pinned([Fingerprint::of(server.certificate())]));
            // The server and the client share this one thread; the server stops with the client.
            let serve = server.serve_forever().fuse();
            let client = shoot(Target::new(addr.ip().to_string(), addr.port()), config, &options).fuse();
            futures::pin_mut!(serve, client);
            futures::select! {
                result = client => result,
                served = serve => Err(format!("demo server stopped: {:?}", served.err().map(|e| async_rdp::report(&e)))),
            }
        }
    }
}

async fn shoot(target: Target, config: ClientConfig, o: &Options) -> Result<(), String> {
    let config = config.with_desktop_size(o.size.0, o.size.1).with_color_depth(o.depth);
    println!("connecting to {target}");
    let started = Instant::now();
    let (mut session, timings) = connect_with_timings(target, config)
        .await
        .map_err(|e| async_rdp_cli::explain(&e))?;
    let line = |name: &str, d: Duration| println!("  {name:<12} {:>8.1} ms", ms(d));
    for (phase, took) in timings.iter() {
        line(phase.name(), took);
    }

    // Nothing drawn by the deadline is an error: a script must not get a blank picture and a
    // success.
    let waited = Instant::now();
    let drawn = session
        .wait_until_drawn(o.settle, o.deadline)
        .await
        .map_err(|e| async_rdp::report(&e))?;
    line("first frame", drawn.first_update);
    match drawn.settled {
        Some(at) => line("settled", at),
        None if session.frame_in_progress() => {
            println!("  (deadline reached in the middle of a frame: the picture may be partly drawn)")
        }
        None => println!("  (deadline reached before the screen settled)"),
    }
    print_graphics(&session, waited.elapsed());
    let mut updates = drawn.updates;
    if let Some((width, height)) = o.resize {
        updates += resize(&mut session, width, height, o).await?;
    }
    // Counted while the session is live: the client's thread plus whatever the runtime started.
    let threads = common::thread_names();

    let fb = session.framebuffer();
    common::write_png(&o.output, &fb)?;
    println!(
        "wrote {} ({}x{}, {updates} updates) in {:.1} ms total",
        o.output,
        fb.width,
        fb.height,
        ms(started.elapsed())
    );
    if let Err(e) = session.shutdown(Duration::from_secs(2)).await {
        log::warn!("Shutdown: {}", async_rdp::report(&e));
    }
    if let Some(peak) = common::peak_rss_kib() {
        println!(
            "peak RSS {:.1} MiB, {} OS threads during the session ({})",
            peak as f64 / 1024.0,
            threads.len(),
            threads.join(", ")
        );
    }
    Ok(())
}

/// Which graphics path and codecs the session decoded, and the pipeline's frame rate over
/// `waited`.
fn print_graphics(session: &async_rdp::ClientSession, waited: Duration) {
    let report = session.graphics_report();
    println!("graphics: {report}");
    if report.frames > 0 {
        let seconds = waited.as_secs_f64();
        println!(
            "  decoded {} frames in {seconds:.1} s ({:.1} fps)",
            report.frames,
            f64::from(report.frames) / seconds
        );
    }
}

/// Asks for `width` x `height` through display control, waits for the server to reactivate at
/// the new size and to redraw, and returns the updates that redraw took.
async fn resize(session: &mut async_rdp::ClientSession, width: u32, height: u32, o: &Options) -> Result<u32, String> {
    let started = Instant::now();
    let asked = session
        .display()
        .resize(width, height)
        .map_err(|e| async_rdp::report(&e))?;
    println!("  resize to {}x{} requested", asked.0, asked.1);
    let deadline = started + o.deadline;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match async_rdp::net::with_timeout(left, "resize", session.next_event()).await {
            Err(e) if e.context() == "resize" => {
                return Err(format!(
                    "the server did not resize within {:?} (display control ready: {})",
                    o.deadline,
                    session.display().is_ready()
                ))
            }
            other => other.map_err(|e| async_rdp::report(&e))?,
        };
        match event {
            async_rdp::Event::Resized { width, height } if (u32::from(width), u32::from(height)) == asked => break,
            async_rdp::Event::Resized { width, height } => println!("  (resized to {width}x{height} on the way)"),
            async_rdp::Event::Disconnected(reason) => return Err(format!("server ended the session: {reason:?}")),
            _ => {}
        }
    }
    println!("  {:<12} {:>8.1} ms", "resized", ms(started.elapsed()));
    let drawn = session
        .wait_until_drawn(o.settle, o.deadline)
        .await
        .map_err(|e| async_rdp::report(&e))?;
    Ok(drawn.updates)
}
