//! Fifty sessions on one executor thread: each connects to its own loopback demo server
//! (NLA, TLS), reaches its first frame, and shuts down cleanly. The servers run on the same
//! thread too. Figures (memory, time) are printed, not asserted: see `multi-screenshot`.

use std::time::{Duration, Instant};

use async_rdp::connect;
use async_rdp::ironrdp_connector::DesktopSize;
use async_rdp_demo_server::testing::{client_config, first_graphics, TestResult};
use async_rdp_demo_server::{Config, DemoServer};
use futures::FutureExt;

const SESSIONS: usize = 50;

async fn one(server: &DemoServer) -> TestResult<Duration> {
    let started = Instant::now();
    let config = client_config(server).with_desktop_size(320, 200);
    let mut session = connect(&server.local_addr()?.to_string(), config).await?;
    first_graphics(&mut session, None).await?;
    let first_frame = started.elapsed();
    session.shutdown(Duration::from_secs(10)).await?;
    assert!(session.is_closed());
    Ok(first_frame)
}

#[test]
fn fifty_sessions_on_one_thread() -> TestResult {
    async_std::task::block_on(async {
        let mut servers = Vec::new();
        for _ in 0..SESSIONS {
            servers.push(
                DemoServer::bind(Config {
                    desktop: DesktopSize {
                        width: 320,
                        height: 200,
                    },
                    ..Config::default()
                })
                .await?,
            );
        }
        let started = Instant::now();
        let serving = futures::future::join_all(servers.iter().map(|s| s.serve_forever())).fuse();
        let clients = futures::future::join_all(servers.iter().map(one)).fuse();
        futures::pin_mut!(serving, clients);
        let results = futures::select! {
            results = clients => results,
            _ = serving => return Err("the demo servers stopped".into()),
        };
        let mut slowest = Duration::ZERO;
        for (i, result) in results.into_iter().enumerate() {
            let first = result.map_err(|e| format!("session {i}: {e}"))?;
            slowest = slowest.max(first);
        }
        println!(
            "{SESSIONS} sessions: all first frames and clean shutdowns in {:?} (slowest first frame {slowest:?})",
            started.elapsed()
        );
        Ok(())
    })
}
