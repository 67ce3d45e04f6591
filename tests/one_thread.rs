//! A whole session — connection sequence, NLA, decoding, shutdown — creates no OS thread: it
//! runs on the thread that polls it, under async-std's `block_on` and under executors that
//! know nothing of async-std.
//!
//! This file holds a single test so that no other test's threads are counted.

use std::time::Duration;

use async_rdp::connect;
use async_rdp_demo_server::testing::{client_config, first_graphics, TestResult};
use async_rdp_demo_server::{Config, DemoServer};
use futures::FutureExt;

/// The process's OS threads, from `/proc/self/task`.
fn threads() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// One full session against the in-process demo server: connect with NLA, wait for the first
/// graphics update, shut down.
async fn one_session() -> TestResult {
    let server = DemoServer::bind(Config::default()).await?;
    let addr = server.local_addr()?.to_string();
    let config = client_config(&server);
    let client = async {
        let mut session = connect(&addr, config).await?;
        first_graphics(&mut session, None).await?;
        session.shutdown(Duration::from_secs(5)).await?;
        TestResult::Ok(())
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
fn a_session_creates_no_thread() -> TestResult {
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
