//! The smallest useful client: connect, wait for the first screen update, print what arrived,
//! disconnect. No demo server, no image encoder: this is the binary BENCHMARKS.md measures for
//! size (`cargo build --profile min-size --example minimal`).
//!
//! ```text
//! cargo run --release --example minimal -- rdp://user:pass@host:3389
//! ```
//!
//! The server's certificate is checked against known hosts (remembered on first contact,
//! refused if it changes), as by default.

use std::time::Duration;

use async_rdp::{connect, ClientConfig, Event, Target};

fn main() {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: minimal rdp://user:password@host[:port]");
        std::process::exit(2);
    };
    // One OS thread for the whole session: async-rdp's runtime (Linux); async-std elsewhere.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let result = async_rdp::runtime::block_on(run(&target));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let result = async_std::task::block_on(run(&target));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(target: &str) -> Result<(), String> {
    let target: Target = target.parse().map_err(|e: async_rdp::Error| e.to_string())?;
    let user = target.username().unwrap_or_default();
    let password = target.password().map(|p| p.expose()).unwrap_or_default();
    let mut session = connect(&target, ClientConfig::new(user, password))
        .await
        .map_err(|e| async_rdp::report(&e))?;
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
