//! The demo server's active session against a raw IronRDP client: the connector driven by
//! async-rdp's public drivers, then `ironrdp_session::ActiveStage` decoding into a
//! `DecodedImage`, over loopback TCP and TLS with NLA. Nothing here uses async-rdp's own
//! session client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_rdp::connector::drive_step;
use async_rdp::framing::LocalFramed;
use async_rdp::ironrdp_connector::connection_activation::ConnectionActivationState;
use async_rdp::ironrdp_connector::{ConnectionOutcome, ConnectionResult, Sequence as _};
use async_rdp::{ClientConfig, ErrorKind};
use async_rdp_demo_server::testing::{
    connect_with_drivers, pattern_mismatches, BoxError, DriverStream, Serving, TestResult,
};
use async_rdp_demo_server::{
    animated_region, pattern_pixel, Command, Config, DemoServer, MouseButton, Security, ServerEvent,
};
use futures::channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures::{pin_mut, select_biased, FutureExt as _, StreamExt as _};
use ironrdp_core::WriteBuf;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};
use ironrdp_pdu::input::fast_path::{FastPathInput, FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::input::mouse_x::PointerXFlags;
use ironrdp_pdu::input::{scan_code, InputEvent, InputEventPdu, MousePdu, MouseXPdu, ScanCodePdu};
use ironrdp_pdu::rdp::headers::ShareDataPdu;
use ironrdp_pdu::Action;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput, GracefulDisconnectReason};

/// No test takes anywhere near this long; it turns a hang into a failure.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A minimal RDP client: IronRDP's state machines on async-rdp's framing.
struct Client {
    framed: LocalFramed<DriverStream>,
    result: ConnectionResult,
    stage: ActiveStage,
    image: DecodedImage,
    /// Pixels updated since the last [`Client::reset_coverage`], and how many.
    covered: Vec<bool>,
    covered_count: usize,
    /// Every graphics update region since the last reset.
    regions: Vec<InclusiveRectangle>,
    /// Outputs other than response frames and graphics updates, in order.
    outputs: Vec<ActiveStageOutput>,
    /// A Server Deactivate All was seen: the next frames belong to the reactivation.
    deactivated: bool,
}

impl Client {
    async fn connect(server: &DemoServer) -> TestResult<Self> {
        let d = server.config();
        let config = ClientConfig::new(&d.username, d.password.as_str())
            .with_security(if d.security == Security::Nla {
                async_rdp::Security::Any
            } else {
                async_rdp::Security::Tls
            })
            .with_desktop_size(1024, 768);
        let (framed, outcome) = connect_with_drivers(server, config).await?;
        let ConnectionOutcome::Connected(mut result) = outcome else {
            return Err("expected a connection, got a redirection".into());
        };
        let stage = ActiveStageBuilder {
            static_channels: std::mem::take(&mut result.static_channels),
            user_channel_id: result.user_channel_id,
            io_channel_id: result.io_channel_id,
            message_channel_id: result.message_channel_id,
            share_id: result.share_id,
            compression_type: result.compression_type,
            enable_server_pointer: result.enable_server_pointer,
            pointer_software_rendering: result.pointer_software_rendering,
        }
        .build();
        let (w, h) = (result.desktop_size.width, result.desktop_size.height);
        Ok(Self {
            framed,
            result,
            stage,
            image: DecodedImage::new(PixelFormat::RgbA32, w, h),
            covered: vec![false; usize::from(w) * usize::from(h)],
            covered_count: 0,
            regions: Vec::new(),
            outputs: Vec::new(),
            deactivated: false,
        })
    }

    fn size(&self) -> (u16, u16) {
        (self.image.width(), self.image.height())
    }

    fn reset_coverage(&mut self) {
        self.covered.iter_mut().for_each(|c| *c = false);
        self.covered_count = 0;
        self.regions.clear();
    }

    fn fully_covered(&self) -> bool {
        self.covered_count == self.covered.len()
    }

    async fn write(&mut self, frame: &[u8]) -> TestResult {
        self.framed.write_all(frame).await?;
        Ok(())
    }

    /// Feeds one server frame to the active stage and acts on its outputs.
    async fn process(&mut self, action: Action, frame: &[u8]) -> TestResult {
        if self.deactivated {
            return Err("a frame arrived for the active stage after Deactivate All".into());
        }
        let received_at = self.framed.last_read_at();
        let outputs = self.stage.process(&mut self.image, action, frame, received_at)?;
        for output in outputs {
            match output {
                ActiveStageOutput::ResponseFrame(frame) => {
                    if !frame.is_empty() {
                        self.write(&frame).await?;
                    }
                }
                ActiveStageOutput::GraphicsUpdate(region) => {
                    let width = usize::from(self.image.width());
                    for y in region.top..=region.bottom {
                        for x in region.left..=region.right {
                            let covered = &mut self.covered[usize::from(y) * width + usize::from(x)];
                            if !*covered {
                                *covered = true;
                                self.covered_count += 1;
                            }
                        }
                    }
                    self.regions.push(region);
                }
                ActiveStageOutput::DeactivateAll => {
                    self.deactivated = true;
                    self.outputs.push(ActiveStageOutput::DeactivateAll);
                }
                other => self.outputs.push(other),
            }
        }
        Ok(())
    }

    /// Reads and processes one server frame.
    async fn pump(&mut self) -> TestResult {
        let (action, frame) = self.framed.read_pdu().await?;
        self.process(action, &frame).await
    }

    /// The next server event, processing server frames meanwhile (so that the server never
    /// blocks on a full socket while the test waits).
    async fn next_event(&mut self, events: &mut UnboundedReceiver<ServerEvent>) -> TestResult<ServerEvent> {
        loop {
            if self.deactivated {
                return events.next().await.ok_or_else(|| "the server stopped reporting".into());
            }
            let frame = {
                let read = self.framed.read_pdu().fuse();
                pin_mut!(read);
                select_biased! {
                    event = events.next() => return event.ok_or_else(|| "the server stopped reporting".into()),
                    frame = read => frame?,
                }
            };
            self.process(frame.0, &frame.1).await?;
        }
    }

    async fn expect_event(&mut self, events: &mut UnboundedReceiver<ServerEvent>, expected: ServerEvent) -> TestResult {
        let got = self.next_event(events).await?;
        assert_eq!(got, expected);
        Ok(())
    }

    /// Processes frames until every pixel has been updated since the last reset.
    async fn until_covered(&mut self) -> TestResult {
        while !self.fully_covered() {
            self.pump().await?;
        }
        Ok(())
    }

    /// Asserts that every pixel outside the animated region is the test pattern's.
    fn assert_pattern(&self) {
        let (w, h) = self.size();
        let data = self.image.data();
        let wrong: Vec<_> = pattern_mismatches(w, h, |x, y| {
            let i = (usize::from(y) * usize::from(w) + usize::from(x)) * 4;
            data.get(i..i + 4)?.try_into().ok()
        })
        .collect();
        assert!(
            wrong.is_empty(),
            "{} pixels differ from the pattern at {w}x{h}, first: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }

    /// Drives a fresh activation sequence after Deactivate All and rebuilds the session state
    /// at the size it negotiated.
    async fn reactivate(&mut self) -> TestResult {
        assert!(self.deactivated, "no Deactivate All seen");
        let mut sequence = self.result.activation_factory.create();
        let mut buf = WriteBuf::new();
        while !sequence.state().is_terminal() {
            drive_step(&mut self.framed, &mut sequence, &mut buf, "client reactivation").await?;
        }
        let ConnectionActivationState::Finalized {
            desktop_size,
            share_id,
            enable_server_pointer,
            pointer_software_rendering,
            static_channel_chunk_size,
            ..
        } = sequence.connection_activation_state()
        else {
            return Err("reactivation did not finish".into());
        };
        assert!(self.stage.reactivate(
            self.result.io_channel_id,
            self.result.user_channel_id,
            share_id,
            enable_server_pointer,
            pointer_software_rendering,
            static_channel_chunk_size,
        ));
        self.image = DecodedImage::new(PixelFormat::RgbA32, desktop_size.width, desktop_size.height);
        self.covered = vec![false; usize::from(desktop_size.width) * usize::from(desktop_size.height)];
        self.reset_coverage();
        self.deactivated = false;
        Ok(())
    }

    /// Processes frames until the active stage reports a termination.
    async fn until_terminated(&mut self) -> TestResult<GracefulDisconnectReason> {
        loop {
            if let Some(reason) = self.outputs.iter().find_map(|o| match o {
                ActiveStageOutput::Terminate(reason) => Some(reason.clone()),
                _ => None,
            }) {
                return Ok(reason);
            }
            self.pump().await?;
        }
    }
}

struct Run<T> {
    served: Result<(), async_rdp::Error>,
    tested: TestResult<T>,
}

impl<T> Run<T> {
    /// The test body's result, once both it and the server succeeded.
    fn succeeded(self) -> TestResult<T> {
        let tested = self.tested?;
        self.served?;
        Ok(tested)
    }
}

/// Runs `body` against a client connected to a fresh server running `serve_one`, both on
/// this task, until both have ended.
async fn session<T, F, Fut>(config: Config, body: F) -> TestResult<Run<T>>
where
    F: FnOnce(Client, UnboundedReceiver<ServerEvent>, UnboundedSender<Command>) -> Fut,
    Fut: Future<Output = TestResult<T>>,
{
    let server = DemoServer::bind(config).await?;
    let (event_tx, events) = mpsc::unbounded();
    let (commands, command_rx) = mpsc::unbounded();
    let test = async {
        // Boxed: in a debug build, the connector's and the session's futures together are too
        // big for a test thread's stack.
        let client = Box::pin(Client::connect(&server)).await?;
        Box::pin(body(client, events, commands)).await
    };
    let mut serving = Serving::new(server.serve_one(event_tx, command_rx));
    let both = async move {
        let tested = serving.alongside(test).await;
        Run {
            served: serving.finish().await,
            tested,
        }
    };
    Ok(async_std::future::timeout(TEST_TIMEOUT, both).await?)
}

/// Waits for the connection and the first frame, and checks the frame.
async fn first_frame(client: &mut Client, events: &mut UnboundedReceiver<ServerEvent>) -> TestResult {
    let (width, height) = client.size();
    client
        .expect_event(events, ServerEvent::Connected { width, height })
        .await?;
    client
        .expect_event(events, ServerEvent::FrameSent { width, height })
        .await?;
    client.until_covered().await?;
    client.assert_pattern();
    Ok(())
}

#[async_std::test]
async fn first_frame_is_the_exact_pattern_after_logon_and_pointer() -> TestResult {
    session(Config::default(), |mut client, mut events, _commands| async move {
        first_frame(&mut client, &mut events).await?;
        assert_eq!(
            client.size(),
            (1280, 720),
            "the server's size, not the client's request"
        );

        // Without animation the clock box is the pattern too.
        let clock = animated_region(1280, 720);
        let i = (usize::from(clock.top) * 1280 + usize::from(clock.left) + 20) * 4;
        assert_eq!(
            client.image.data()[i..i + 4],
            pattern_pixel(clock.left + 20, clock.top, 1280, 720)
        );

        let mut session_id = None;
        let mut logon = Vec::new();
        let mut cookie = None;
        let mut pointer = None;
        let mut position = None;
        for output in &client.outputs {
            match output {
                ActiveStageOutput::SessionId(id) => session_id = Some(*id),
                ActiveStageOutput::SaveSessionInfo { logon_complete } => logon.push(*logon_complete),
                ActiveStageOutput::AutoReconnectCookie(c) => cookie = Some(c.clone()),
                ActiveStageOutput::PointerBitmap(p) => pointer = Some(Arc::clone(p)),
                ActiveStageOutput::PointerPosition { x, y } => position = Some((*x, *y)),
                other => panic!("unexpected output {other:?}"),
            }
        }
        // Logon Info v2 reports the completed logon; Logon Info Extended carries the cookie.
        assert_eq!(logon, [true, false]);
        let cookie = cookie.ok_or("no auto-reconnect cookie")?;
        assert_eq!(Some(cookie.logon_id), session_id);
        assert_ne!(cookie.random_bits, [0; 16]);
        assert_eq!(position, Some((640, 360)));
        let pointer = pointer.ok_or("no pointer shape")?;
        assert_eq!(
            (pointer.width, pointer.height, pointer.hotspot_x, pointer.hotspot_y),
            (32, 32, 0, 0)
        );
        // Top-left is the black outline of the tip; the bottom-right corner is transparent.
        assert_eq!(pointer.bitmap_data[..4], [0, 0, 0, 255]);
        assert_eq!(pointer.bitmap_data[pointer.bitmap_data.len() - 4..], [0, 0, 0, 0]);
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn tls_only_session_draws_the_pattern() -> TestResult {
    let config = Config {
        security: Security::Tls,
        ..Config::default()
    };
    session(config, |mut client, mut events, _commands| async move {
        first_frame(&mut client, &mut events).await
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn input_is_reported() -> TestResult {
    session(Config::default(), |mut client, mut events, _commands| async move {
        first_frame(&mut client, &mut events).await?;

        let input = FastPathInput::new(vec![
            FastPathInputEvent::KeyboardEvent(KeyboardFlags::empty(), 0x1E),
            FastPathInputEvent::MouseEvent(MousePdu {
                flags: PointerFlags::MOVE,
                number_of_wheel_rotation_units: 0,
                x_position: 100,
                y_position: 200,
            }),
        ])?;
        client.write(&ironrdp_core::encode_vec(&input)?).await?;
        client
            .expect_event(
                &mut events,
                ServerEvent::Key {
                    scancode: 0x1E,
                    extended: false,
                    pressed: true,
                },
            )
            .await?;
        client
            .expect_event(&mut events, ServerEvent::MouseMove { x: 100, y: 200 })
            .await?;

        let input = FastPathInput::new(vec![
            FastPathInputEvent::KeyboardEvent(KeyboardFlags::EXTENDED | KeyboardFlags::RELEASE, 0x1D),
            FastPathInputEvent::UnicodeKeyboardEvent(KeyboardFlags::empty(), 0x20AC),
            FastPathInputEvent::MouseEvent(MousePdu {
                flags: PointerFlags::LEFT_BUTTON | PointerFlags::DOWN,
                number_of_wheel_rotation_units: 0,
                x_position: 10,
                y_position: 20,
            }),
            FastPathInputEvent::MouseEvent(MousePdu {
                flags: PointerFlags::VERTICAL_WHEEL,
                number_of_wheel_rotation_units: -120,
                x_position: 10,
                y_position: 20,
            }),
            FastPathInputEvent::MouseEventEx(MouseXPdu {
                flags: PointerXFlags::BUTTON2,
                x_position: 11,
                y_position: 21,
            }),
        ])?;
        client.write(&ironrdp_core::encode_vec(&input)?).await?;
        for expected in [
            ServerEvent::Key {
                scancode: 0x1D,
                extended: true,
                pressed: false,
            },
            ServerEvent::Unicode {
                code: 0x20AC,
                pressed: true,
            },
            ServerEvent::MouseButton {
                button: MouseButton::Left,
                pressed: true,
                x: 10,
                y: 20,
            },
            ServerEvent::Wheel {
                vertical: true,
                delta: -120,
            },
            ServerEvent::MouseButton {
                button: MouseButton::X2,
                pressed: false,
                x: 11,
                y: 21,
            },
        ] {
            client.expect_event(&mut events, expected).await?;
        }

        // Slow-path input, in a Share Data PDU.
        let mut frame = WriteBuf::new();
        client.stage.encode_static(
            &mut frame,
            ShareDataPdu::Input(InputEventPdu(vec![InputEvent::ScanCode(ScanCodePdu {
                flags: scan_code::KeyboardFlags::RELEASE,
                key_code: 0x1E,
            })])),
        )?;
        client.write(frame.filled()).await?;
        client
            .expect_event(
                &mut events,
                ServerEvent::Key {
                    scancode: 0x1E,
                    extended: false,
                    pressed: false,
                },
            )
            .await?;
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn resize_runs_a_deactivation_reactivation_and_redraws() -> TestResult {
    session(Config::default(), |mut client, mut events, commands| async move {
        first_frame(&mut client, &mut events).await?;
        commands.unbounded_send(Command::Resize {
            width: 1024,
            height: 768,
        })?;
        while !client.deactivated {
            client.pump().await?;
        }
        assert!(matches!(client.outputs.last(), Some(ActiveStageOutput::DeactivateAll)));
        client.reactivate().await?;
        assert_eq!(client.size(), (1024, 768));
        client
            .expect_event(
                &mut events,
                ServerEvent::Resized {
                    width: 1024,
                    height: 768,
                },
            )
            .await?;
        client
            .expect_event(
                &mut events,
                ServerEvent::FrameSent {
                    width: 1024,
                    height: 768,
                },
            )
            .await?;
        client.until_covered().await?;
        client.assert_pattern();

        // A second resize, to an odd size that is not a multiple of the tile size.
        commands.unbounded_send(Command::Resize {
            width: 301,
            height: 257,
        })?;
        while !client.deactivated {
            client.pump().await?;
        }
        client.reactivate().await?;
        assert_eq!(client.size(), (301, 257));
        client
            .expect_event(
                &mut events,
                ServerEvent::Resized {
                    width: 301,
                    height: 257,
                },
            )
            .await?;
        client
            .expect_event(
                &mut events,
                ServerEvent::FrameSent {
                    width: 301,
                    height: 257,
                },
            )
            .await?;
        client.until_covered().await?;
        client.assert_pattern();
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn server_disconnect_terminates_the_client() -> TestResult {
    session(Config::default(), |mut client, mut events, commands| async move {
        first_frame(&mut client, &mut events).await?;
        commands.unbounded_send(Command::Disconnect)?;
        let reason = client.until_terminated().await?;
        // Set Error Info comes first: ERRINFO_RPC_INITIATED_DISCONNECT.
        assert!(matches!(reason, GracefulDisconnectReason::Other(_)), "{reason:?}");
        client.expect_event(&mut events, ServerEvent::Disconnected).await?;
        // Then the MCS ultimatum and a clean close.
        client.pump().await?;
        let err = client
            .framed
            .read_pdu()
            .await
            .err()
            .ok_or("the server kept the connection")?;
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn client_shutdown_is_denied_then_the_client_disconnects() -> TestResult {
    session(Config::default(), |mut client, mut events, _commands| async move {
        first_frame(&mut client, &mut events).await?;
        for output in client.stage.graceful_shutdown()? {
            if let ActiveStageOutput::ResponseFrame(frame) = output {
                client.write(&frame).await?;
            }
        }
        client.expect_event(&mut events, ServerEvent::ShutdownRequested).await?;
        // IronRDP answers Shutdown Denied with an MCS Disconnect Provider Ultimatum.
        let reason = client.until_terminated().await?;
        assert!(matches!(reason, GracefulDisconnectReason::UserInitiated), "{reason:?}");
        client.expect_event(&mut events, ServerEvent::Disconnected).await?;
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn refresh_rect_and_suppress_output_redraw() -> TestResult {
    session(Config::default(), |mut client, mut events, commands| async move {
        first_frame(&mut client, &mut events).await?;
        let (w, h) = client.size();
        for (refresh, suppress) in [(true, false), (true, true)] {
            client.reset_coverage();
            for frame in client.stage.request_full_redraw(w, h, refresh, suppress)? {
                client.write(&frame).await?;
            }
            client.expect_event(&mut events, ServerEvent::RefreshRequested).await?;
            client
                .expect_event(&mut events, ServerEvent::FrameSent { width: w, height: h })
                .await?;
            client.until_covered().await?;
            client.assert_pattern();
        }
        client.reset_coverage();
        commands.unbounded_send(Command::Redraw)?;
        client
            .expect_event(&mut events, ServerEvent::FrameSent { width: w, height: h })
            .await?;
        client.until_covered().await?;
        client.assert_pattern();
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn drop_closes_the_connection_without_goodbye() -> TestResult {
    let run = session(Config::default(), |mut client, mut events, commands| async move {
        first_frame(&mut client, &mut events).await?;
        commands.unbounded_send(Command::Drop)?;
        let err = client.pump().await.err().ok_or("a frame arrived after Drop")?;
        assert!(client
            .outputs
            .iter()
            .all(|o| !matches!(o, ActiveStageOutput::Terminate(_))));
        client.expect_event(&mut events, ServerEvent::Disconnected).await?;
        Ok(err.to_string())
    })
    .await?;
    let err = run.tested?;
    // rustls reports a TCP close without close_notify as an unexpected EOF.
    assert!(err.contains("closed"), "{err}");
    run.served?;
    Ok(())
}

#[async_std::test]
async fn a_client_that_goes_away_ends_the_session() -> TestResult {
    session(Config::default(), |mut client, mut events, _commands| async move {
        first_frame(&mut client, &mut events).await?;
        drop(client);
        assert_eq!(events.next().await, Some(ServerEvent::Disconnected));
        assert_eq!(events.next().await, None, "nothing after Disconnected");
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

#[async_std::test]
async fn a_misbehaving_client_is_an_error_not_a_panic() -> TestResult {
    let garbage: [&[u8]; 3] = [
        // A TPKT/X.224 data frame whose MCS PDU type does not exist.
        &[0x03, 0x00, 0x00, 0x08, 0x02, 0xF0, 0x80, 0xFF],
        // A fast-path input frame too short for its event count.
        &[0x04, 0x03, 0x01],
        // A Send Data Request on the I/O channel whose Share Control header is cut short.
        &[
            0x03, 0x00, 0x00, 0x10, 0x02, 0xF0, 0x80, 0x64, 0x00, 0x06, 0x03, 0xEB, 0x70, 0x02, 0x10, 0x00,
        ],
    ];
    for bytes in garbage {
        let run = session(Config::default(), |mut client, mut events, _commands| async move {
            first_frame(&mut client, &mut events).await?;
            client.write(bytes).await?;
            // The server gives up on the connection.
            while client.pump().await.is_ok() {}
            Ok(())
        })
        .await?;
        run.tested?;
        let err = run.served.err().ok_or("the server accepted garbage")?;
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidFrame,
            "{bytes:02x?}: {}",
            async_rdp::report(&err)
        );
    }
    Ok(())
}

#[async_std::test]
async fn animation_only_changes_the_clock() -> TestResult {
    let config = Config {
        animate: Some(Duration::from_millis(10)),
        desktop: async_rdp::ironrdp_connector::DesktopSize {
            width: 640,
            height: 400,
        },
        ..Config::default()
    };
    session(config, |mut client, mut events, _commands| async move {
        first_frame(&mut client, &mut events).await?;
        let clock = animated_region(640, 400);
        client.reset_coverage();
        while client.regions.len() < 5 {
            client.pump().await?;
        }
        for region in &client.regions {
            assert!(
                region.left >= clock.left
                    && region.right <= clock.right
                    && region.top >= clock.top
                    && region.bottom <= clock.bottom,
                "{region:?} is outside the clock {clock:?}"
            );
        }
        client.assert_pattern();
        // The clock is drawn (progress bar and time), so it is no longer the initial face.
        let (w, data) = (usize::from(clock.width()), client.image.data());
        let differs = (clock.top..=clock.bottom).any(|y| {
            (clock.left..=clock.right).any(|x| {
                let i = (usize::from(y) * 640 + usize::from(x)) * 4;
                data[i..i + 4] != pattern_pixel(x, y, 640, 400)
            })
        });
        assert!(differs && w > 0, "the clock did not change");
        Ok(())
    })
    .await?
    .succeeded()?;
    Ok(())
}

/// The test pattern, shifted `shift` pixels to the left, as BGRX.
fn shifted_pattern(width: u16, height: u16, shift: u16) -> Vec<u8> {
    let mut data = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
    for y in 0..height {
        for x in 0..width {
            let [r, g, b, _] = pattern_pixel((x + shift) % width, y, width, height);
            data.extend_from_slice(&[b, g, r, 0xFF]);
        }
    }
    data
}

#[async_std::test]
async fn replay_writes_the_frames_in_turn_then_says_goodbye() -> TestResult {
    use async_rdp::ironrdp_connector::DesktopSize;
    use async_rdp_demo_server::encode::{bitmap_updates, remotefx_surface_bits, BitmapCodec, Picture};

    let (w, h) = (256, 160);
    let config = Config {
        security: Security::Tls,
        desktop: DesktopSize { width: w, height: h },
        ..Config::default()
    };
    let server = DemoServer::bind(config).await?;
    let first = shifted_pattern(w, h, 0);
    let second = shifted_pattern(w, h, 37);

    let served = async {
        let connection = server.accept().await?;
        let offer = connection.remotefx_offer().ok_or("the client offered no RemoteFX")?;
        assert_eq!(offer.codec_id, 3, "IronRDP's client gives RemoteFX id 3");
        let frames = [
            bitmap_updates(&Picture::new(&first, w, h)?, BitmapCodec::Planar)?,
            remotefx_surface_bits(&Picture::new(&second, w, h)?, &offer, 0, true)?,
        ];
        // planar, RemoteFX, planar: the last frame is lossless.
        connection.replay(&frames, 3).await?;
        Ok::<(), BoxError>(())
    };
    let tested = async {
        let mut client = Box::pin(Client::connect(&server)).await?;
        // Set Error Info (ERRINFO_RPC_INITIATED_DISCONNECT) ends the frames...
        let reason = client.until_terminated().await?;
        assert!(matches!(reason, GracefulDisconnectReason::Other(_)), "{reason:?}");
        assert!(
            client
                .regions
                .iter()
                .any(|r| (r.left, r.top, r.right, r.bottom) == (0, 0, w - 1, h - 1)),
            "the RemoteFX frame updated the whole desktop at once"
        );
        // ...then the MCS ultimatum and a clean close.
        client.pump().await?;
        let err = client
            .framed
            .read_pdu()
            .await
            .err()
            .ok_or("the server kept the connection")?;
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        Ok::<_, BoxError>(client.image.data().to_vec())
    };
    let mut serving = Serving::new(served);
    let both = async move {
        let tested = serving.alongside(tested).await;
        (serving.finish().await, tested)
    };
    let (served, tested) = async_std::future::timeout(TEST_TIMEOUT, both).await?;
    served?;
    let image = tested?;
    for (i, (rgba, bgrx)) in image.chunks_exact(4).zip(first.chunks_exact(4)).enumerate() {
        assert_eq!(rgba, [bgrx[2], bgrx[1], bgrx[0], 0xFF], "pixel {i}");
    }
    Ok(())
}
