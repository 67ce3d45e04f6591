//! The smallest useful client: connect, wait for the first screen update, print what arrived,
//! disconnect. No demo server, no image encoder: this is the binary BENCHMARKS.md measures for
//! size (`cargo build --profile min-size --example minimal`).
//!
//! ```text
//! cargo run --release --example minimal -- rdp://user@host:3389
//! cargo run --release --example minimal -- --help
//! ```
//!
//! The password comes from the URL, else `RDP_PASSWORD`, else a prompt. The server's
//! certificate is checked against known hosts (remembered on first contact, refused if it
//! changes), as by default, unless `--pin` is given.

use std::time::Duration;

use async_rdp::{connect, Event};
use async_rdp_cli::ConnectArgs;
use clap::Parser as _;

/// Connects to an RDP server, waits for the first screen update, prints what arrived and
/// disconnects.
#[derive(clap::Parser)]
#[command(name = "minimal", mut_arg("target", |a| a.required(true)))]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
}

fn main() {
    let cli = Cli::parse();
    // One OS thread for the whole session: async-rdp's runtime (Linux); async-std elsewhere.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let result = async_rdp::runtime::block_on(run(&cli.connect));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let result = async_std::task::block_on(run(&cli.connect));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: &ConnectArgs) -> Result<(), String> {
    let target = args.target()?.ok_or("no TARGET")?;
    let config = args.client_config(&target, None)?;
    let mut session = connect(&target, config).await.map_err(|e| async_rdp_cli::explain(&e))?;
    loop {
        match session.next_event().await.map_err(|e| async_rdp::report(&e))? {
            Event::Graphics(rect) => {
                let fb = session.framebuffer();
                println!("first update: {rect:?} of a {}x{} desktop", fb.width, fb.height);
                break;
            }
            Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}")),
            _ => {}
        }
    }
    session
        .shutdown(Duration::from_secs(2))
        .await
        .map_err(|e| async_rdp::report(&e))
}
