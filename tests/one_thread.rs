//! A whole session — connection sequence, NLA, decoding, shutdown — creates no OS thread: it
//! runs on the thread that polls it, under async-std's `block_on` and under executors that
//! know nothing of async-std.
//!
//! This file holds a single test so that no other test's threads are counted.

use std::time::Duration;

use async_rdp::trust::Fingerprint;
use async_rdp::Trust;
use async_rdp::{connect, ClientConfig, Event};
use async_rdp_demo_server::{Config, DemoServer};
use futures::FutureExt;

/// The process's OS threads, from `/proc/self/task`.
fn threads() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// One full session against the in-process demo server: connect with NLA, wait for the first
/// graphics update, shut down.
async fn one_session() -> Result<(), Box<dyn std::error::Error>> {
    let server = DemoServer::bind(Config::default()).await?;
    let addr = server.local_addr()?.to_string();
    let config = ClientConfig::new(&server.config().username, server.config().password.as_str())
        .with_trust(Trust::pinned([Fingerprint::of(server.certificate())]));
    let client = async {
        let mut session = connect(&addr, config).await?;
        loop {
            match session.next_event().await? {
                Event::Graphics(_) => break,
                Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                _ => {}
            }
        }
        session.shutdown(Duration::from_secs(5)).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .fuse();
    let serving = server.serve_forever().fuse();
    futures::pin_mut!(client, serving);
    futures::select! {
        result = client => result,
        result = serving => Err(format!("server stopped: {result:?}").into()),
    }
}

#[test]
fn a_session_creates_no_thread() -> Result<(), Box<dyn std::error::Error>> {
    // async-io starts its one reactor thread the first time a socket is used, whatever runs
    // the futures; start it here so that what follows measures the session alone.
    futures::executor::block_on(async { async_std::net::TcpListener::bind("127.0.0.1:0").await })?;
    async_std::task::block_on(async { async_std::net::TcpListener::bind("127.0.0.1:0").await })?;

    let before = threads()?;
    async_std::task::block_on(one_session())?;
    let after_async_std = threads()?;
    futures::executor::block_on(one_session())?;
    let after_futures = threads()?;

    println!("threads: {before} before, {after_async_std} after async-std's block_on, {after_futures} after futures' block_on");
    assert_eq!(
        after_async_std, before,
        "a session under async_std::task::block_on created a thread"
    );
    assert_eq!(
        after_futures, before,
        "a session under futures::executor::block_on created a thread"
    );
    Ok(())
}
