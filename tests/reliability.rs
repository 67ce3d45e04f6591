//! Reliability against the demo server on loopback: the session's idle timeout, reconnecting
//! with the auto-reconnect cookie after the server drops the connection, and giving up after
//! the retry budget when the server is gone for good.

use std::time::{Duration, Instant};

use async_rdp::{connect, reconnect, Backoff, ClientConfig, DisconnectReason, ErrorKind, Event, Timeouts};
use async_rdp_demo_server::testing::{
    alongside, block_on, client_config, first_graphics, reporting_failure, run, BoxError, TestResult, EVENT_TIMEOUT,
};
use async_rdp_demo_server::{Command, Config, DemoServer, Security, ServerEvent};
use futures::channel::mpsc::unbounded;
use futures::StreamExt;

fn quick_backoff(attempts: u32) -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.2,
        max_attempts: attempts,
    }
}

#[test]
fn a_silent_server_trips_the_idle_timeout() -> TestResult {
    // No animation: after the first frame the server sends nothing at all.
    let config = Config {
        security: Security::Tls,
        ..Config::default()
    };
    run(config, |server| async move {
        let idle = Duration::from_millis(400);
        let config = server
            .client_config()
            .with_security(async_rdp::Security::Tls)
            .with_timeouts(Timeouts::default().with(async_rdp::Phase::Session, idle));
        let mut session = connect(server.addr(), config).await?;
        first_graphics(&mut session, Some(EVENT_TIMEOUT)).await?;
        let started = Instant::now();
        let err = loop {
            match session.next_event().await {
                Ok(Event::Disconnected(reason)) => return Err(format!("disconnected: {reason:?}").into()),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        let waited = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{}", async_rdp::report(&err));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Session));
        assert!(waited < idle + Duration::from_secs(2), "timed out after {waited:?}");
        Ok(())
    })
}

#[test]
fn reconnects_with_the_cookie_after_the_server_drops_the_connection() -> TestResult {
    block_on(Duration::from_secs(30), async {
        let server = DemoServer::bind(Config::default()).await?;
        let addr = server.local_addr()?.to_string();
        let (cookie_tx, mut cookies) = unbounded();
        let (drop_tx, drop_rx) = unbounded();

        // The server: the first connection is dropped on command, the second runs normally.
        let serving = async {
            let first = server.accept().await?;
            cookie_tx.unbounded_send(first.result.auto_reconnect.is_some())?;
            let (events, _e) = unbounded::<ServerEvent>();
            first.run(events, drop_rx).await?;
            let second = server.accept().await?;
            cookie_tx.unbounded_send(second.result.auto_reconnect.is_some())?;
            let (events, _e) = unbounded::<ServerEvent>();
            let (_keep, commands) = unbounded();
            second.run(events, commands).await?;
            Ok::<_, BoxError>(())
        };

        let client = async {
            let config = client_config(&server);
            let mut session = connect(&addr, config.clone()).await?;
            first_graphics(&mut session, Some(EVENT_TIMEOUT)).await?;
            // Wait until the server has sent its cookie, then have it drop the connection.
            while session.auto_reconnect_cookie().is_none() {
                session.next_event().await?;
            }
            drop_tx.unbounded_send(Command::Drop)?;
            loop {
                match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
                    Event::Disconnected(DisconnectReason::ConnectionLost(_)) => break,
                    Event::Disconnected(other) => return Err(format!("unexpected {other:?}").into()),
                    _ => {}
                }
            }
            let mut again = reconnect(&addr, &config, &session, &quick_backoff(5)).await?;
            first_graphics(&mut again, Some(EVENT_TIMEOUT)).await?;
            assert_eq!(cookies.next().await, Some(false), "the first logon carries no cookie");
            assert_eq!(
                cookies.next().await,
                Some(true),
                "the reconnect presents the server's cookie"
            );
            again.shutdown(Duration::from_secs(5)).await?;
            Ok::<_, BoxError>(())
        };

        alongside(reporting_failure(serving), client).await
    })
}

#[test]
fn gives_up_after_the_budget_with_the_last_error() -> TestResult {
    async_std::task::block_on(async {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = ClientConfig::new("nobody", "nothing");
        let backoff = quick_backoff(4);
        let started = Instant::now();
        let err = async_rdp::connect_with_retry(&addr, &config, &backoff)
            .await
            .err()
            .ok_or("connected to nothing")?;
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Io, "{}", async_rdp::report(&err));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Tcp));
        // Three waits of about 50, 100 and 200 ms (± 20 %) between four attempts.
        assert!(took >= Duration::from_millis(280), "gave up too soon: {took:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        Ok(())
    })
}
