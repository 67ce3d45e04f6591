//! Hostile virtual channel input (issue 12): what a server sends on the clipboard and the
//! dynamic channels gives the application a clear error or is dropped with a warning, the
//! session goes on, nothing panics, and the client's memory stays bounded.
//!
//! The demo server carries the channels and each test speaks for it with `Command::Channel`:
//! well-formed PDUs (`channel::cliprdr`, `channel::dvc`) or any bytes, in whole messages or in
//! chunks whose Channel PDU Header declares what the test likes. Memory is measured with the
//! counting allocator of `tests/alloc.rs`: the largest single allocation made on the test's
//! thread (client and server both run there) while the hostile data arrives. IronRDP's
//! reassembly grows one buffer for a whole message, so a client that accumulated would show
//! it there.

use std::time::Duration;

use async_rdp::ironrdp_connector::DesktopSize;
use async_rdp::{ClientSession, Event, KeyState, Scancode};
use async_rdp_demo_server::channel::{cliprdr, dvc, FLAG_FIRST, FLAG_LAST};
use async_rdp_demo_server::testing::{
    capture_warnings, driving, run, wait_for_pattern, warnings_with, Server, TestResult,
};
use async_rdp_demo_server::{ChannelData, ChannelSend, ChannelTarget, Command, Config, Security, ServerEvent};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// How long a test waits for one client event.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// The largest single allocation a test tolerates while hostile data arrives: far below the
/// megabytes sent, far above one chunk.
const ALLOCATION_BOUND: usize = 1 << 20;

/// The clipboard data cap (`DEFAULT_MAX_CLIPBOARD_BYTES`).
const CLIPBOARD_CAP: usize = async_rdp::channels::DEFAULT_MAX_CLIPBOARD_BYTES;

/// The MCS id of a channel nobody joined.
const UNJOINED: u16 = 1100;

/// The dynamic channel id the tests open display control on.
const DISPLAY: u32 = 1;

/// The dynamic channel id of [`dvc_ping`]'s Create Requests.
const PING: u32 = 99;

fn config() -> Config {
    Config {
        security: Security::Tls,
        desktop: DesktopSize {
            width: 320,
            height: 240,
        },
        ..Config::default()
    }
}

async fn connect(server: &mut Server) -> TestResult<ClientSession> {
    let config = server.client_config().with_security(async_rdp::Security::Tls);
    let mut session = async_rdp::connect(server.addr(), config).await?;
    until(&mut session, |e| matches!(e, Event::Graphics(_)).then_some(())).await?;
    Ok(session)
}

// ---------------------------------------------------------------------------------------------
// Driving the client while the server side of a test runs

/// The first client event `pick` accepts, within [`EVENT_WAIT`].
async fn until<T>(session: &mut ClientSession, mut pick: impl FnMut(&Event) -> Option<T>) -> TestResult<T> {
    let wait = async {
        loop {
            match session.next_event().await? {
                Event::Disconnected(reason) => return Err(format!("the session ended: {reason:?}").into()),
                event => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                }
            }
        }
    };
    async_std::future::timeout(EVENT_WAIT, wait).await?
}

fn send(server: &Server, send: ChannelSend) -> TestResult {
    server.command(Command::Channel(send))
}

/// The next message the client sent on `channel` that `pick` accepts.
async fn client_sent<T>(server: &mut Server, channel: &str, mut pick: impl FnMut(&[u8]) -> Option<T>) -> TestResult<T> {
    server
        .wait_for(|e| match e {
            ServerEvent::ChannelData { channel: c, data } if c == channel => pick(data),
            _ => None,
        })
        .await
}

/// Input still reaches the server, and a redraw still reaches the client and draws the
/// server's picture.
async fn still_usable(server: &mut Server, session: &mut ClientSession) -> TestResult {
    session.key(Scancode::new(0x1e), KeyState::Down)?;
    let key = async {
        server
            .wait_for(|e| matches!(e, ServerEvent::Key { scancode: 0x1e, .. }).then_some(()))
            .await
    };
    driving(session, |_| Ok(()), key).await?;
    server.command(Command::Redraw)?;
    let redrawn = async {
        server
            .wait_for(|e| matches!(e, ServerEvent::FrameSent { .. }).then_some(()))
            .await
    };
    driving(session, |_| Ok(()), redrawn).await?;
    wait_for_pattern(session).await
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The clipboard

/// The clipboard's initialization: capabilities and Monitor Ready from the server, the client's
/// format list, the server's OK.
async fn clipboard_ready(server: &mut Server, session: &mut ClientSession) -> TestResult {
    send(server, ChannelSend::message("cliprdr", cliprdr::capabilities()?))?;
    send(server, ChannelSend::message("cliprdr", cliprdr::monitor_ready()?))?;
    let list = client_sent(server, "cliprdr", |m| {
        (cliprdr::message_name(m) == Some("CLIPRDR_FORMAT_LIST")).then_some(())
    });
    driving(session, |_| Ok(()), list).await?;
    send(
        server,
        ChannelSend::message("cliprdr", cliprdr::format_list_response(true)?),
    )
}

/// The server offers text; the client asks for it; the server sees the request.
async fn text_requested(server: &mut Server, session: &mut ClientSession) -> TestResult {
    let offer = cliprdr::format_list(&[(cliprdr::CF_UNICODETEXT, None)])?;
    send(server, ChannelSend::message("cliprdr", offer))?;
    until(session, |e| matches!(e, Event::ClipboardChanged { .. }).then_some(())).await?;
    request_text(server, session).await
}

async fn request_text(server: &mut Server, session: &mut ClientSession) -> TestResult {
    session.clipboard().request_text()?;
    let request = client_sent(server, "cliprdr", |m| {
        (cliprdr::message_name(m) == Some("CLIPRDR_FORMAT_DATA_REQUEST")).then_some(())
    });
    driving(session, |_| Ok(()), request).await
}

/// A Format Data Response declaring 100 MB, sent in 1600-byte chunks: the client refuses it
/// from its first chunk, with an error event naming the size and the cap, drops the 20 MiB of
/// chunks that follow without keeping them, and pastes again afterwards.
///
/// Without the guard, IronRDP's reassembly (ironrdp-svc) buffers every chunk up to the declared
/// length before the clipboard's own cap sees anything: a 100 MB message costs 100 MB.
#[test]
fn an_oversized_clipboard_response_is_refused_from_its_first_chunk() -> TestResult {
    capture_warnings();
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        clipboard_ready(&mut server, &mut session).await?;
        text_requested(&mut server, &mut session).await?;

        const DATA: u32 = 100 << 20;
        let declared = DATA + 8;
        // CLIPRDR_HEADER: Format Data Response, CB_RESPONSE_OK, the data length.
        let mut first = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
        first.extend_from_slice(&DATA.to_le_bytes());
        first.resize(1600, 0x41);

        counting_alloc::start();
        send(&server, ChannelSend::chunk("cliprdr", declared, FLAG_FIRST, first))?;
        // Only the first chunk is out: the error must come now.
        let error = until(&mut session, |e| match e {
            Event::ClipboardError(error) => Some(error.clone()),
            _ => None,
        })
        .await?;
        assert!(
            error.contains(&declared.to_string()) && error.contains(&CLIPBOARD_CAP.to_string()),
            "the error names the size and the cap: {error}"
        );

        // 20 MiB more, past the cap, then the last chunk: all dropped, quietly.
        let chunks = (20 << 20) / 1600;
        for i in 0..=chunks {
            let flags = if i == chunks { FLAG_LAST } else { 0 };
            send(
                &server,
                ChannelSend::chunk("cliprdr", declared, flags, vec![0x42; 1600]),
            )?;
        }
        // A paste behind them: once its text arrives, the client has read every chunk.
        session.clipboard().request_text()?;
        send(
            &server,
            ChannelSend::message("cliprdr", cliprdr::unicode_text_response("after 100 MB")?),
        )?;
        let mut errors = 0;
        let text = until(&mut session, |e| match e {
            Event::ClipboardError(_) => {
                errors += 1;
                None
            }
            Event::ClipboardText(text) => Some(text.as_str().to_owned()),
            _ => None,
        })
        .await?;
        let counts = counting_alloc::stop();
        assert_eq!(text, "after 100 MB");
        assert_eq!(errors, 0, "one error for one message");
        assert!(
            counts.largest < ALLOCATION_BOUND,
            "the client kept the chunks: an allocation of {} bytes",
            counts.largest
        );
        let warned = warnings_with(&["cliprdr", &declared.to_string()]);
        assert_eq!(
            warned.len(),
            1,
            "one warning naming the channel and the size: {warned:?}"
        );
        still_usable(&mut server, &mut session).await
    })
}

/// A clipboard message whose chunks run past the length its first chunk declared (1 KiB
/// declared, 8 MiB sent): IronRDP rejects the chunk that overflows (an error the client
/// contains: one error event), the client drops the rest of the message without handing each
/// chunk to IronRDP to reject (no event or warning per chunk), and pastes again afterwards.
#[test]
fn a_clipboard_message_longer_than_declared_costs_one_error() -> TestResult {
    capture_warnings();
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        clipboard_ready(&mut server, &mut session).await?;
        text_requested(&mut server, &mut session).await?;

        let mut first = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
        first.extend_from_slice(&1016u32.to_le_bytes());
        first.resize(1000, 0x41);
        send(&server, ChannelSend::chunk("cliprdr", 1024, FLAG_FIRST, first))?;
        let chunks = (8 << 20) / 1600;
        for i in 0..=chunks {
            let flags = if i == chunks { FLAG_LAST } else { 0 };
            send(&server, ChannelSend::chunk("cliprdr", 1024, flags, vec![0x42; 1600]))?;
        }
        session.clipboard().request_text()?;
        send(
            &server,
            ChannelSend::message("cliprdr", cliprdr::unicode_text_response("in order")?),
        )?;
        let mut errors = Vec::new();
        let text = until(&mut session, |e| match e {
            Event::ClipboardError(error) => {
                errors.push(error.clone());
                None
            }
            Event::ClipboardText(text) => Some(text.as_str().to_owned()),
            _ => None,
        })
        .await?;
        assert_eq!(text, "in order");
        assert_eq!(errors.len(), 1, "errors, the first: {:?}", errors.first());
        assert!(errors[0].contains("cliprdr"), "{}", errors[0]);
        still_usable(&mut server, &mut session).await
    })
}

/// 10 000 Format List PDUs in a row: every one is acknowledged and reported, the last one
/// wins, memory stays flat, and the session is still usable.
#[test]
fn a_format_list_storm_leaves_the_last_list() -> TestResult {
    const LISTS: u32 = 10_000;
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        clipboard_ready(&mut server, &mut session).await?;

        let lists: Vec<Vec<u8>> = (0..LISTS)
            .map(|i| cliprdr::format_list(&[(cliprdr::CF_UNICODETEXT, None), (0xC000 + i, Some(&format!("f{i}")))]))
            .collect::<Result<_, _>>()?;
        counting_alloc::start();
        for list in lists {
            send(&server, ChannelSend::message("cliprdr", list))?;
        }
        let (mut changes, mut last) = (0, None);
        let acknowledged = async {
            let mut responses = 0;
            while responses < LISTS {
                client_sent(&mut server, "cliprdr", |m| {
                    (cliprdr::message_name(m) == Some("CLIPRDR_FORMAT_LIST_RESPONSE")).then_some(())
                })
                .await?;
                responses += 1;
            }
            Ok(())
        };
        driving(
            &mut session,
            |e| {
                if let Event::ClipboardChanged { formats } = e {
                    changes += 1;
                    last = Some(formats);
                }
                Ok(())
            },
            acknowledged,
        )
        .await?;
        // The client answered every list; the events of the last frames may still be queued.
        while changes < LISTS {
            let formats = until(&mut session, |e| match e {
                Event::ClipboardChanged { formats } => Some(formats.clone()),
                _ => None,
            })
            .await?;
            changes += 1;
            last = Some(formats);
        }
        let counts = counting_alloc::stop();
        assert!(
            counts.largest < ALLOCATION_BOUND,
            "an allocation of {} bytes",
            counts.largest
        );

        let last = last.ok_or("no ClipboardChanged")?;
        let wanted = 0xC000 + LISTS - 1;
        assert!(
            last.iter()
                .any(|f| f.id == wanted && f.name.as_deref() == Some(&*format!("f{}", LISTS - 1))),
            "the last list wins: {last:?}"
        );
        assert_eq!(session.clipboard().remote_formats(), &last[..]);
        still_usable(&mut server, &mut session).await
    })
}

/// Malformed clipboard PDUs: a truncated CLIPRDR_HEADER, an unknown msgType, a dataLen larger
/// than the data, and a channel PDU too short for its own header. IronRDP fails the whole
/// session on the first three (its clipboard processor returns the decode error, ActiveStage
/// passes it up); the client drops each with a warning and an error event, and the clipboard
/// keeps working.
#[test]
fn malformed_clipboard_pdus_are_dropped_with_an_error_event() -> TestResult {
    capture_warnings();
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        clipboard_ready(&mut server, &mut session).await?;

        let mut long_data = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
        long_data.extend_from_slice(&1000u32.to_le_bytes());
        long_data.extend_from_slice(b"only ten b");
        let bogus_type = [0x77u8, 0x77, 0, 0, 0, 0, 0, 0].to_vec();
        let malformed = [
            ChannelSend::message("cliprdr", vec![0x02, 0x00, 0x00]),
            ChannelSend::message("cliprdr", bogus_type),
            ChannelSend::message("cliprdr", long_data),
            ChannelSend {
                to: ChannelTarget::Named("cliprdr".into()),
                data: ChannelData::Raw(vec![1, 2, 3]),
            },
        ];
        for pdu in malformed {
            let what = format!("{:?}", pdu.data);
            send(&server, pdu)?;
            let error = until(&mut session, |e| match e {
                Event::ClipboardError(error) => Some(error.clone()),
                _ => None,
            })
            .await
            .map_err(|e| format!("no error event for {what}: {e}"))?;
            assert!(error.contains("cliprdr"), "the error names the channel: {error}");
        }
        assert!(warnings_with(&["cliprdr", "IronRDP could not process"]).len() >= 3);
        assert!(!warnings_with(&["cliprdr", "too short for its channel header"]).is_empty());

        // The clipboard still works, both ways of it.
        text_requested(&mut server, &mut session).await?;
        send(
            &server,
            ChannelSend::message("cliprdr", cliprdr::unicode_text_response("still here")?),
        )?;
        let got = until(&mut session, |e| match e {
            Event::ClipboardText(text) => Some(text.as_str().to_owned()),
            _ => None,
        })
        .await?;
        assert_eq!(got, "still here");
        still_usable(&mut server, &mut session).await
    })
}

// ---------------------------------------------------------------------------------------------
// Channels nobody joined

/// Data on an MCS channel the client never joined: IronRDP ends the session ("unexpected
/// channel received"); the client drops it with a warning naming the channel and the size.
#[test]
fn data_on_a_channel_never_joined_is_dropped_with_a_warning() -> TestResult {
    capture_warnings();
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        let stray = ChannelSend::to_id(UNJOINED, ChannelData::Message(vec![0x5a; 100]));
        send(&server, stray)?;
        send(&server, ChannelSend::to_id(UNJOINED, ChannelData::Raw(vec![])))?;
        still_usable(&mut server, &mut session).await?;
        let warned = warnings_with(&[&format!("MCS channel {UNJOINED}"), "108 bytes", "did not join"]);
        assert_eq!(warned.len(), 1, "{warned:?}");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Dynamic channels and display control

/// Opens display control: DVC capabilities, a Create Request, then the display control
/// capabilities on it.
async fn open_display_control(server: &mut Server, session: &mut ClientSession) -> TestResult {
    send(server, ChannelSend::message("drdynvc", dvc::capabilities_request()?))?;
    send(
        server,
        ChannelSend::message("drdynvc", dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?),
    )?;
    let created = client_sent(server, "drdynvc", dvc::create_response);
    let (id, ok) = driving(session, |_| Ok(()), created).await?;
    assert_eq!((id, ok), (DISPLAY, true), "display control opened");
    let caps = dvc::data(DISPLAY, &dvc::display_control_caps(16, 8192, 8192)?)?;
    display_caps(server, session, caps).await
}

/// Sends display control capabilities (a DVC message made by `dvc`), until the client is ready.
async fn display_caps(server: &mut Server, session: &mut ClientSession, caps: Vec<u8>) -> TestResult {
    send(server, ChannelSend::message("drdynvc", caps))?;
    dvc_ping(server, session).await?;
    assert!(session.display().is_ready(), "display control is ready");
    Ok(())
}

/// A Create Request for a channel the client does not have, and its refusal: once it comes
/// back, the client has processed everything sent before it on `drdynvc`.
async fn dvc_ping(server: &mut Server, session: &mut ClientSession) -> TestResult {
    send(
        server,
        ChannelSend::message("drdynvc", dvc::create_request(PING, "Test::Ping")?),
    )?;
    let answer = client_sent(server, "drdynvc", |m| {
        dvc::create_response(m).filter(|(id, _)| *id == PING)
    });
    let (_, ok) = driving(session, |_| Ok(()), answer).await?;
    assert!(!ok, "no listener for the ping");
    Ok(())
}

/// The next monitor layout the client sends, as its desktop size.
async fn layout(server: &mut Server) -> TestResult<(u32, u32)> {
    client_sent(server, "drdynvc", dvc::monitor_layout).await
}

/// A second Create Request for display control (another id, then the same id), an unknown
/// channel name, and the capabilities twice: no panic. Display control is registered as a
/// factory (a server may close a channel and open it again), so each create of it gets a fresh
/// processor and is accepted; the unknown name is refused (NO_LISTENER). Resizing still works.
#[test]
fn display_control_created_twice_and_its_caps_sent_twice() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        open_display_control(&mut server, &mut session).await?;

        for (id, name) in [
            (2, dvc::DISPLAY_CONTROL),
            (DISPLAY, dvc::DISPLAY_CONTROL),
            (3, "Bogus::Channel"),
        ] {
            send(&server, ChannelSend::message("drdynvc", dvc::create_request(id, name)?))?;
            let created = client_sent(&mut server, "drdynvc", dvc::create_response);
            let answer = driving(&mut session, |_| Ok(()), created).await?;
            let accepted = name == dvc::DISPLAY_CONTROL;
            assert_eq!(answer, (id, accepted), "a create of {name} on {id}");
        }
        let caps = dvc::data(DISPLAY, &dvc::display_control_caps(1, 4096, 4096)?)?;
        display_caps(&mut server, &mut session, caps).await?;

        session.display().resize(400, 300)?;
        let size = driving(&mut session, |_| Ok(()), layout(&mut server)).await?;
        assert_eq!(size, (400, 300));
        still_usable(&mut server, &mut session).await
    })
}

/// A dynamic channel message declaring 100 MB (Data First) on display control, then 20 MiB of
/// Data PDUs: IronRDP's DVC reassembly would buffer them all (up to the declared length); the
/// client drops the message with one warning, keeps nothing, and display control still works.
#[test]
fn an_oversized_dynamic_channel_message_is_dropped() -> TestResult {
    capture_warnings();
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        open_display_control(&mut server, &mut session).await?;

        let total = 100 << 20;
        counting_alloc::start();
        send(
            &server,
            ChannelSend::message("drdynvc", dvc::data_first(DISPLAY, total, &[0; 1500])?),
        )?;
        let block = dvc::data(DISPLAY, &[0x43; 1590])?;
        for _ in 0..(20 << 20) / 1590 {
            send(&server, ChannelSend::message("drdynvc", block.clone()))?;
        }
        // The capabilities again, as a whole message of its own (a Data First of its length,
        // which starts a new message on the channel, as it would in IronRDP).
        let caps = dvc::display_control_caps(16, 8192, 8192)?;
        let caps = dvc::data_first(DISPLAY, u32::try_from(caps.len())?, &caps)?;
        display_caps(&mut server, &mut session, caps).await?;
        let counts = counting_alloc::stop();
        assert!(
            counts.largest < ALLOCATION_BOUND,
            "an allocation of {} bytes",
            counts.largest
        );
        let warned = warnings_with(&["drdynvc", &format!("{total} bytes on dynamic channel {DISPLAY}")]);
        assert_eq!(warned.len(), 1, "{warned:?}");

        session.display().resize(400, 300)?;
        let size = driving(&mut session, |_| Ok(()), layout(&mut server)).await?;
        assert_eq!(size, (400, 300));
        still_usable(&mut server, &mut session).await
    })
}

/// Resize requests while one is in flight (sent, not yet answered with a reactivation): only
/// the first goes out at once; the others coalesce into the last, which goes out once the
/// server has answered (and settled).
#[test]
fn resize_requests_in_flight_are_coalesced() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        open_display_control(&mut server, &mut session).await?;

        session.display().resize(400, 300)?;
        let first = driving(&mut session, |_| Ok(()), layout(&mut server)).await?;
        assert_eq!(first, (400, 300));
        for (width, height) in [(420, 310), (440, 320), (640, 480)] {
            session.display().resize(width, height)?;
        }
        // Unanswered: nothing more goes out (for up to two seconds).
        let early = driving(&mut session, |_| Ok(()), async {
            match async_std::future::timeout(Duration::from_millis(800), layout(&mut server)).await {
                Ok(sent) => Ok(Some(sent?)),
                Err(_) => Ok(None),
            }
        })
        .await?;
        assert_eq!(early, None, "a request went out while one was in flight");

        // The server answers the first; the last request follows, alone.
        server.command(Command::Resize {
            width: 400,
            height: 300,
        })?;
        let next = driving(&mut session, |_| Ok(()), layout(&mut server)).await?;
        assert_eq!(next, (640, 480), "the last request wins");
        let more = driving(&mut session, |_| Ok(()), async {
            match async_std::future::timeout(Duration::from_millis(1500), layout(&mut server)).await {
                Ok(sent) => Ok(Some(sent?)),
                Err(_) => Ok(None),
            }
        })
        .await?;
        assert_eq!(more, None, "the coalesced requests went out once");
        assert_eq!(session.display().requests_sent(), 2);
        Ok(())
    })
}
