//! End-to-end: `connect` and `Session` against the demo server over real loopback TCP and
//! real TLS, client and server on one thread.

use std::time::Duration;

use async_rdp::{connect, connect_with_timings, ClientConfig, DisconnectReason, ErrorKind, Event, MouseButton};
use async_rdp_demo_server::testing::{first_mismatch, pinned, run, wait_for_pattern, wait_for_resize, TestResult};
use async_rdp_demo_server::{Command, Config, Security, ServerEvent};
use futures::FutureExt;

fn config(security: Security) -> Config {
    Config {
        security,
        ..Config::default()
    }
}

#[test]
fn tls_session_shows_exactly_what_the_server_drew() -> TestResult {
    run(config(Security::Tls), |mut server| async move {
        let config = server.client_config().with_security(async_rdp::Security::Tls);
        let (mut session, timings) = connect_with_timings(server.addr(), config).await?;
        assert!(timings[async_rdp::Phase::Nla].is_none(), "TLS-only: no NLA phase");
        server
            .wait_for(|e| matches!(e, ServerEvent::FrameSent { .. }).then_some(()))
            .await?;
        wait_for_pattern(&mut session).await?;
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height, fb.stride), (1280, 720, 1280 * 4));
        Ok(())
    })
}

#[test]
fn nla_session_shows_exactly_what_the_server_drew() -> TestResult {
    run(config(Security::Nla), |mut server| async move {
        let (mut session, timings) = connect_with_timings(server.addr(), server.client_config()).await?;
        assert!(timings[async_rdp::Phase::Nla].is_some(), "NLA was negotiated and timed");
        server
            .wait_for(|e| matches!(e, ServerEvent::FrameSent { .. }).then_some(()))
            .await?;
        wait_for_pattern(&mut session).await?;
        Ok(())
    })
}

#[test]
fn wrong_password_is_an_authentication_error() -> TestResult {
    run(config(Security::Nla), |server| async move {
        let config =
            ClientConfig::new(&server.config().username, "wrong-password").with_trust(pinned(server.certificate()));
        let err = connect(server.addr(), config)
            .await
            .err()
            .ok_or("connected with a wrong password")?;
        assert_eq!(err.kind(), ErrorKind::Authentication, "{}", async_rdp::report(&err));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Nla));
        Ok(())
    })
}

#[test]
fn untrusted_certificate_fails_in_the_tls_phase() -> TestResult {
    run(config(Security::Nla), |server| async move {
        // Known hosts that refuse newcomers, in a file of this test's own.
        let file = std::env::temp_dir().join(format!("async-rdp-untrusted-{}", std::process::id()));
        let trust = async_rdp::Trust::known_hosts_at(&file).on_first_use(async_rdp::OnFirstUse::Refuse);
        let config = server.client_config().with_trust(trust);
        let err = connect(server.addr(), config)
            .await
            .err()
            .ok_or("connected to an untrusted server")?;
        assert_eq!(err.kind(), ErrorKind::Tls, "{}", async_rdp::report(&err));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Tls));
        Ok(())
    })
}

#[test]
fn logon_complete_and_auto_reconnect_cookie() -> TestResult {
    run(config(Security::Nla), |_server| async move {
        let mut server = _server;
        let mut session = connect(server.addr(), server.client_config()).await?;
        let mut logon = false;
        while !logon || session.auto_reconnect_cookie().is_none() {
            match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
                Event::LogonComplete => logon = true,
                Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                _ => {}
            }
        }
        server
            .wait_for(|e| matches!(e, ServerEvent::Connected { .. }).then_some(()))
            .await?;
        Ok(())
    })
}

#[test]
fn resize_rebuilds_the_framebuffer() -> TestResult {
    run(config(Security::Tls), |mut server| async move {
        let config = server.client_config().with_security(async_rdp::Security::Tls);
        let mut session = connect(server.addr(), config).await?;
        wait_for_pattern(&mut session).await?;
        server.command(Command::Resize {
            width: 800,
            height: 600,
        })?;
        assert_eq!(wait_for_resize(&mut session).await?, (800, 600));
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height, fb.stride), (800, 600, 800 * 4));
        server
            .wait_for(|e| {
                matches!(
                    e,
                    ServerEvent::Resized {
                        width: 800,
                        height: 600
                    }
                )
                .then_some(())
            })
            .await?;
        wait_for_pattern(&mut session).await?;
        Ok(())
    })
}

/// A server that draws the new desktop before the reactivation's finalization PDUs (as xrdp
/// can) and never again: the client keeps that frame for the rebuilt decoder.
#[test]
fn frame_drawn_during_reactivation_is_shown() -> TestResult {
    let config = Config {
        draw_during_reactivation: true,
        ..config(Security::Tls)
    };
    run(config, |server| async move {
        let config = server.client_config().with_security(async_rdp::Security::Tls);
        let mut session = connect(server.addr(), config).await?;
        wait_for_pattern(&mut session).await?;
        server.command(Command::Resize {
            width: 640,
            height: 480,
        })?;
        assert_eq!(wait_for_resize(&mut session).await?, (640, 480));
        wait_for_pattern(&mut session).await?;
        Ok(())
    })
}

#[test]
fn input_arrives_with_the_right_values() -> TestResult {
    run(config(Security::Nla), |mut server| async move {
        let mut session = connect(server.addr(), server.client_config()).await?;
        session.key(async_rdp::Scancode::new(0x1E), async_rdp::KeyState::Down)?; // 'A' down
        session.key(async_rdp::Scancode::new(0x1E), async_rdp::KeyState::Up)?;
        session.key(async_rdp::Scancode::extended(0x4B), async_rdp::KeyState::Down)?; // extended left arrow
        session.key_unicode('é', async_rdp::KeyState::Down)?;
        session.mouse_move(123, 45)?;
        session.mouse_button(MouseButton::Right, async_rdp::ButtonState::Down)?;
        session.mouse_button(MouseButton::Right, async_rdp::ButtonState::Up)?;
        session.mouse_wheel(120)?;
        session.release_all()?; // releases the arrow key
        session.flush().await?;

        let mut next = async || {
            server
                .wait_for(|e| {
                    (!matches!(e, ServerEvent::Connected { .. } | ServerEvent::FrameSent { .. })).then(|| e.clone())
                })
                .await
        };
        assert_eq!(
            next().await?,
            ServerEvent::Key {
                scancode: 0x1E,
                extended: false,
                pressed: true
            }
        );
        assert_eq!(
            next().await?,
            ServerEvent::Key {
                scancode: 0x1E,
                extended: false,
                pressed: false
            }
        );
        assert_eq!(
            next().await?,
            ServerEvent::Key {
                scancode: 0x4B,
                extended: true,
                pressed: true
            }
        );
        assert_eq!(
            next().await?,
            ServerEvent::Unicode {
                code: 0xE9,
                pressed: true
            }
        );
        assert_eq!(next().await?, ServerEvent::MouseMove { x: 123, y: 45 });
        assert_eq!(
            next().await?,
            ServerEvent::MouseButton {
                button: async_rdp_demo_server::MouseButton::Right,
                pressed: true,
                x: 123,
                y: 45
            }
        );
        assert_eq!(
            next().await?,
            ServerEvent::MouseButton {
                button: async_rdp_demo_server::MouseButton::Right,
                pressed: false,
                x: 123,
                y: 45
            }
        );
        assert_eq!(
            next().await?,
            ServerEvent::Wheel {
                vertical: true,
                delta: 120
            }
        );
        assert_eq!(
            next().await?,
            ServerEvent::Key {
                scancode: 0x4B,
                extended: true,
                pressed: false
            }
        );
        Ok(())
    })
}

#[test]
fn full_redraw_request_reaches_the_server() -> TestResult {
    run(config(Security::Tls), |mut server| async move {
        let mut session = connect(
            server.addr(),
            server.client_config().with_security(async_rdp::Security::Tls),
        )
        .await?;
        session.request_full_redraw()?;
        session.flush().await?;
        server
            .wait_for(|e| matches!(e, ServerEvent::RefreshRequested).then_some(()))
            .await?;
        Ok(())
    })
}

#[test]
fn graceful_shutdown() -> TestResult {
    run(config(Security::Nla), |mut server| async move {
        let mut session = connect(server.addr(), server.client_config()).await?;
        session.shutdown(Duration::from_secs(5)).await?;
        assert!(session.is_closed());
        server
            .wait_for(|e| matches!(e, ServerEvent::ShutdownRequested).then_some(()))
            .await?;
        server
            .wait_for(|e| matches!(e, ServerEvent::Disconnected).then_some(()))
            .await?;
        let err = session.next_event().await.err().ok_or("events after shutdown")?;
        assert_eq!(err.kind(), ErrorKind::Closed);
        Ok(())
    })
}

#[test]
fn server_dropping_the_connection_is_a_disconnect_event() -> TestResult {
    run(config(Security::Tls), |server| async move {
        let mut session = connect(
            server.addr(),
            server.client_config().with_security(async_rdp::Security::Tls),
        )
        .await?;
        server.command(Command::Drop)?;
        loop {
            match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
                Event::Disconnected(DisconnectReason::ConnectionLost(_)) => return Ok(()),
                Event::Disconnected(other) => return Err(format!("unexpected reason {other:?}").into()),
                _ => {}
            }
        }
    })
}

#[test]
fn server_disconnect_reports_its_reason() -> TestResult {
    run(config(Security::Tls), |server| async move {
        let mut session = connect(
            server.addr(),
            server.client_config().with_security(async_rdp::Security::Tls),
        )
        .await?;
        server.command(Command::Disconnect)?;
        loop {
            match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
                Event::Disconnected(DisconnectReason::Server(reason)) => {
                    assert!(!reason.is_empty());
                    return Ok(());
                }
                Event::Disconnected(other) => return Err(format!("unexpected reason {other:?}").into()),
                _ => {}
            }
        }
    })
}

#[test]
fn next_event_is_cancel_safe_in_a_select() -> TestResult {
    run(config(Security::Tls), |_server| async move {
        let server = _server;
        let mut session = connect(
            server.addr(),
            server.client_config().with_security(async_rdp::Security::Tls),
        )
        .await?;
        // Race every call against a very short timer, so that many calls are cancelled in
        // the middle of a frame; the picture must still come out exact.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut cancelled = 0u32;
        let mut quiet = 0u32;
        loop {
            if std::time::Instant::now() > deadline {
                return Err("the picture never completed".into());
            }
            futures::select! {
                event = session.next_event().fuse() => {
                    quiet = 0;
                    if let Event::Disconnected(reason) = event? {
                        return Err(format!("disconnected: {reason:?}").into());
                    }
                }
                _ = async_std::task::sleep(Duration::from_micros(50)).fuse() => {
                    cancelled += 1;
                    quiet += 1;
                }
            }
            // Compare after a quiet spell only: a full comparison is slow in a debug build.
            if quiet >= 1000 {
                if first_mismatch(&session).is_none() {
                    break;
                }
                quiet = 0;
            }
        }
        assert!(
            cancelled > 0,
            "the race never cancelled a call; the test proves nothing"
        );
        Ok(())
    })
}

/// Display control: without the channel, `resize` says so at once.
#[test]
fn resize_without_display_control_is_unsupported() -> TestResult {
    run(config(Security::Nla), |server| async move {
        let config = server.client_config().with_channels(&[]);
        let mut session = connect(server.addr(), config).await?;
        let error = session
            .display()
            .resize(1024, 768)
            .expect_err("resized without the channel");
        assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
        assert_eq!(error.phase(), Some(async_rdp::Phase::Session));
        assert!(async_rdp::report(&error).contains("display control"), "{error}");
        Ok(())
    })
}

/// Display control offered but never opened by the server (the demo server has no dynamic
/// channels): the request is adjusted as MS-RDPEDISP requires and waits; nothing is sent.
#[test]
fn resize_waits_for_the_server_to_open_display_control() -> TestResult {
    run(config(Security::Nla), |server| async move {
        let mut session = connect(server.addr(), server.client_config()).await?;
        assert_eq!(
            session.display().resize(1023, 100)?,
            (1022, 200),
            "even width, at least 200 high"
        );
        wait_for_pattern(&mut session).await?;
        assert!(!session.display().is_ready());
        assert_eq!(session.display().requests_sent(), 0);
        Ok(())
    })
}
