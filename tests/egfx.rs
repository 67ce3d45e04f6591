//! The graphics pipeline (issue 13) against the demo server: the demo pattern drawn through
//! the pipeline by each codec the demo server encodes, a ResetGraphics that resizes, and the
//! edge cases a server can send (cache slots out of range, a surface larger than the output,
//! a frame that never ends, thousands of frames sent without waiting for acknowledgements, a
//! command for an unknown surface, garbage ZGFX); and the legacy path when the pipeline is
//! not offered.
//!
//! The demo server joins `drdynvc` and serves no dynamic channel itself: each test speaks for
//! it with a [`Pipeline`] (IronRDP's server side), whose `drdynvc` messages go out as
//! `Command::Channel`s and which reads every `drdynvc` message the client sends back (the
//! Capabilities Advertise, Frame Acknowledges). The session starts on the legacy path (the
//! demo server's fast-path bitmaps) and moves to the pipeline when the test opens it; its
//! ResetGraphics clears the framebuffer, so a pattern seen afterwards was drawn by the pipeline.

use std::time::Duration;

use async_rdp::channels::GraphicsPath;
use async_rdp::ironrdp_connector::DesktopSize;
use async_rdp::{Channel, ClientSession, ErrorKind, Event};
use async_rdp_demo_server::channel::dvc;
use async_rdp_demo_server::channel::egfx::{self, Pipeline};
use async_rdp_demo_server::encode::Picture;
use async_rdp_demo_server::testing::{
    capture_warnings, driving, first_mismatch, run, warnings_with, Server, TestResult,
};
use async_rdp_demo_server::{pattern_pixel, ChannelSend, Command, Config, Security, ServerEvent};
use ironrdp_egfx::pdu::Color;
use ironrdp_egfx::pdu::{
    CacheToSurfacePdu, Codec1Type, EndFramePdu, GfxPdu, PixelFormat, Point, SolidFillPdu, StartFramePdu,
    SurfaceToCachePdu, Timestamp, WireToSurface1Pdu,
};
use ironrdp_pdu::geometry::ExclusiveRectangle;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// How long a test waits for one client event or server report.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// The dynamic channel id the tests open the pipeline on.
const GRAPHICS: u32 = 7;

/// The dynamic channel id of [`ping`]'s Create Requests.
const PING: u32 = 99;

/// The demo desktop.
const WIDTH: u16 = 320;
const HEIGHT: u16 = 240;

fn config() -> Config {
    capture_warnings();
    Config {
        security: Security::Tls,
        desktop: DesktopSize {
            width: WIDTH,
            height: HEIGHT,
        },
        ..Config::default()
    }
}

async fn connect(server: &Server, channels: Option<&[Channel]>) -> TestResult<ClientSession> {
    let mut config = server.client_config().with_security(async_rdp::Security::Tls);
    if let Some(channels) = channels {
        config = config.with_channels(channels);
    }
    let mut session = async_rdp::connect(server.addr(), config).await?;
    let first = async {
        loop {
            match session.next_event().await? {
                Event::Graphics(_) => return Ok::<_, async_rdp::Error>(()),
                Event::Disconnected(reason) => return Err(disconnected(reason)),
                _ => {}
            }
        }
    };
    async_std::future::timeout(EVENT_WAIT, first).await??;
    Ok(session)
}

fn disconnected(reason: impl std::fmt::Debug) -> async_rdp::Error {
    async_rdp::Error::new(ErrorKind::Closed, "test").with_detail(format!("the session ended: {reason:?}"))
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Driving the client while the server side of a test runs

/// The next whole message the client sent on `drdynvc`.
async fn next_drdynvc(server: &mut Server) -> TestResult<Vec<u8>> {
    server
        .wait_for(|e| match e {
            ServerEvent::ChannelData { channel, data } if channel == "drdynvc" => Some(data.clone()),
            _ => None,
        })
        .await
}

fn send_all(server: &Server, messages: Vec<Vec<u8>>) -> TestResult {
    for message in messages {
        server.command(Command::Channel(ChannelSend::message("drdynvc", message)))?;
    }
    Ok(())
}

/// The server side of a test: the demo server, the pipeline, and the client's events.
struct Side<'a> {
    server: &'a mut Server,
    pipeline: Pipeline,
    events: Vec<Event>,
}

impl Side<'_> {
    /// Drives the client, feeding every `drdynvc` message it sends to the pipeline (and
    /// sending the pipeline's answers), until `done` accepts one; returns it.
    async fn pump(
        &mut self,
        session: &mut ClientSession,
        mut done: impl FnMut(&Pipeline, &[u8]) -> bool,
    ) -> TestResult<Vec<u8>> {
        loop {
            let message = driving(session, keep(&mut self.events), next_drdynvc(self.server)).await?;
            let replies = self.pipeline.receive(&message)?;
            send_all(self.server, replies)?;
            if done(&self.pipeline, &message) {
                return Ok(message);
            }
        }
    }

    /// A Create Request for a channel the client does not have, and its refusal: once it
    /// comes back, the client has processed everything sent before it on `drdynvc`.
    async fn ping(&mut self, session: &mut ClientSession) -> TestResult {
        send_all(self.server, vec![dvc::create_request(PING, "Test::Ping")?])?;
        self.pump(session, |_, m| {
            dvc::create_response(m).is_some_and(|(id, _)| id == PING)
        })
        .await?;
        Ok(())
    }

    /// Sends what the pipeline's server queued.
    fn flush(&mut self) -> TestResult {
        let messages = self.pipeline.drain()?;
        send_all(self.server, messages)
    }

    fn send(&self, pdus: &[GfxPdu]) -> TestResult {
        send_all(self.server, self.pipeline.pdus(pdus)?)
    }
}

/// Opens the pipeline: the Create Request, the client's Capabilities Advertise, the Confirm.
async fn open<'a>(server: &'a mut Server, session: &mut ClientSession) -> TestResult<Side<'a>> {
    let pipeline = Pipeline::new(GRAPHICS);
    send_all(server, pipeline.open()?)?;
    let mut side = Side {
        server,
        pipeline,
        events: Vec::new(),
    };
    side.pump(session, |p, _| p.is_ready()).await?;
    Ok(side)
}

/// Opens the pipeline and creates a `width` x `height` surface mapped at the origin of a
/// `WIDTH` x `HEIGHT` output (the first ResetGraphics).
async fn open_with_surface<'a>(
    server: &'a mut Server,
    session: &mut ClientSession,
    width: u16,
    height: u16,
) -> TestResult<(Side<'a>, u16)> {
    let mut side = open(server, session).await?;
    let gfx = side.pipeline.server();
    gfx.set_output_dimensions(WIDTH, HEIGHT);
    let surface = gfx.create_surface(width, height).ok_or("create surface")?;
    assert!(gfx.map_surface_to_output(surface, 0, 0), "map the surface");
    side.flush()?;
    Ok((side, surface))
}

fn pattern(width: u16, height: u16) -> Vec<u8> {
    egfx::pattern_bgrx(width, height)
}

/// Sends the demo pattern as one planar frame on `surface`, and waits for its acknowledgement.
async fn planar_frame(side: &mut Side<'_>, session: &mut ClientSession, surface: u16) -> TestResult {
    let data = pattern(WIDTH, HEIGHT);
    let planar = egfx::planar(&Picture::new(&data, WIDTH, HEIGHT)?)?;
    let acked = side.pipeline.acknowledged();
    side.pipeline
        .server()
        .send_planar_frame(surface, &planar, WIDTH, HEIGHT, 0)
        .ok_or("send a planar frame")?;
    side.flush()?;
    side.pump(session, |p, _| p.acknowledged() > acked).await?;
    Ok(())
}

fn codec_count(session: &ClientSession, codec: &str) -> u32 {
    let report = session.graphics_report();
    report.codecs.iter().find(|(c, _)| *c == codec).map_or(0, |(_, n)| *n)
}

fn assert_egfx(session: &ClientSession) {
    let report = session.graphics_report();
    assert!(
        matches!(&report.path, GraphicsPath::Egfx { version } if version == "10.7"),
        "{report}"
    );
    assert!(report.to_string().starts_with("egfx v10.7"), "{report}");
}

fn timestamp() -> Timestamp {
    Timestamp {
        milliseconds: 0,
        seconds: 0,
        minutes: 0,
        hours: 0,
    }
}

fn start(frame_id: u32) -> GfxPdu {
    GfxPdu::StartFrame(StartFramePdu {
        timestamp: timestamp(),
        frame_id,
    })
}

fn end(frame_id: u32) -> GfxPdu {
    GfxPdu::EndFrame(EndFramePdu { frame_id })
}

fn rect(left: u16, top: u16, right: u16, bottom: u16) -> ExclusiveRectangle {
    ExclusiveRectangle {
        left,
        top,
        right,
        bottom,
    }
}

fn pixel_rgba(session: &ClientSession, x: u16, y: u16) -> Option<[u8; 4]> {
    session.framebuffer().pixel(x, y)
}

// ---------------------------------------------------------------------------------------------
// The pattern through each codec

/// The demo pattern as one planar frame: every pixel exact, the report names the pipeline
/// (10.7, what both sides prefer) and planar, and the frame was acknowledged.
#[test]
fn planar_frame_draws_the_pattern_exactly() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        assert_eq!(session.graphics_report().path, GraphicsPath::Legacy);
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        planar_frame(&mut side, &mut session, surface).await?;
        side.ping(&mut session).await?;

        assert_eq!(first_mismatch(&session), None);
        assert_egfx(&session);
        assert_eq!(codec_count(&session, "planar"), 1);
        assert_eq!(session.graphics_report().frames, 1);
        assert_eq!(side.pipeline.acknowledged(), 1);
        assert!(!session.frame_in_progress());
        Ok(())
    })
}

/// Uncompressed, then a ResetGraphics to 400x300 and the pattern at that size: one
/// `Event::Resized` with the new size, a framebuffer of that size, every pixel exact (the
/// pattern depends on the size, so the old picture cannot pass).
#[test]
fn reset_graphics_resizes_and_uncompressed_draws_exactly() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        let acked = side.pipeline.acknowledged();
        let gfx = side.pipeline.server();
        gfx.send_uncompressed_frame(surface, &pattern(WIDTH, HEIGHT), WIDTH, HEIGHT, 0)
            .ok_or("send a frame")?;
        side.flush()?;
        side.pump(&mut session, |p, _| p.acknowledged() > acked).await?;
        assert_eq!(first_mismatch(&session), None);
        assert!(
            !side.events.iter().any(|e| matches!(e, Event::Resized { .. })),
            "no resize at the same size: {:?}",
            side.events
        );

        let (width, height) = (400, 300);
        let gfx = side.pipeline.server();
        gfx.resize(width, height);
        let surface = gfx.create_surface(width, height).ok_or("create surface")?;
        assert!(gfx.map_surface_to_output(surface, 0, 0));
        gfx.send_uncompressed_frame(surface, &pattern(width, height), width, height, 1)
            .ok_or("send a frame")?;
        side.flush()?;
        side.pump(&mut session, |p, _| p.acknowledged() > acked + 1).await?;
        side.ping(&mut session).await?;

        let resized: Vec<(u16, u16)> = side
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Resized { width, height } => Some((*width, *height)),
                _ => None,
            })
            .collect();
        assert_eq!(resized, [(width, height)], "one Resized, with the new size");
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height), (width, height));
        assert_eq!(first_mismatch(&session), None);
        assert_eq!(codec_count(&session, "uncompressed"), 2);
        assert_eq!(side.pipeline.acknowledged(), 2);
        Ok(())
    })
}

/// The largest and the mean difference, over the colour channels of every pixel, between
/// the framebuffer and the pattern.
fn difference(session: &ClientSession) -> (u8, f64) {
    let (mut largest, mut sum) = (0, 0u64);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let want = pattern_pixel(x, y, WIDTH, HEIGHT);
            let got = pixel_rgba(session, x, y).unwrap_or([0; 4]);
            for (w, g) in want.iter().zip(got).take(3) {
                largest = largest.max(w.abs_diff(g));
                sum += u64::from(w.abs_diff(g));
            }
        }
    }
    let samples = f64::from(u32::from(WIDTH) * u32::from(HEIGHT) * 3);
    (largest, sum as f64 / samples)
}

/// The pattern as one RemoteFX Progressive frame (simple tiles, no quantisation): lossy only
/// through the colour conversion and the wavelet's rounding, so every pixel within a few
/// levels; the report counts one progressive PDU and no uncompressed update (the decoded
/// tiles come to the handler as uncompressed).
#[test]
fn progressive_frame_draws_the_pattern_within_the_codec_loss() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        let data = pattern(WIDTH, HEIGHT);
        let stream = egfx::progressive(&Picture::new(&data, WIDTH, HEIGHT)?, 0)?;
        side.pipeline
            .server()
            .send_remotefx_progressive_frame(surface, 0, stream, 0)
            .ok_or("send a progressive frame")?;
        side.flush()?;
        side.pump(&mut session, |p, _| p.acknowledged() > 0).await?;
        side.ping(&mut session).await?;

        let (largest, mean) = difference(&session);
        assert!(
            largest <= PROGRESSIVE_LARGEST && mean <= PROGRESSIVE_MEAN,
            "pixels off by {largest} at most, {mean:.2} on average"
        );
        assert_egfx(&session);
        assert_eq!(codec_count(&session, "progressive"), 1);
        assert_eq!(codec_count(&session, "uncompressed"), 0);
        assert_eq!(session.graphics_report().dropped, 0);
        Ok(())
    })
}

/// How far a progressive pixel may be from the pattern: the integer wavelet rounds at every
/// level, which shows at the pattern's sharpest edges; on average it is nearly exact. (A
/// misplaced or garbled tile is off by far more: about 4 on average was measured.)
const PROGRESSIVE_LARGEST: u8 = 48;
const PROGRESSIVE_MEAN: f64 = 6.0;

// ---------------------------------------------------------------------------------------------
// Edge cases

/// SurfaceToCache and CacheToSurface with slot 0 and slots past the 4096 of the negotiated
/// small cache (and a CacheToSurface from a slot never filled): no error, no panic, the
/// session goes on, a slot never filled draws nothing; a slot in range copies the tile.
/// IronRDP keeps out-of-range slots like any other (its byte budget bounds the cache), so
/// slot 0 and slot 5000 copy too.
#[test]
fn cache_slots_out_of_range_are_harmless() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        planar_frame(&mut side, &mut session, surface).await?;

        let tile = rect(0, 0, 16, 16);
        let to_cache = |slot| {
            GfxPdu::SurfaceToCache(SurfaceToCachePdu {
                surface_id: surface,
                cache_key: u64::from(slot),
                cache_slot: slot,
                source_rectangle: tile.clone(),
            })
        };
        let to_surface = |slot, x, y| {
            GfxPdu::CacheToSurface(CacheToSurfacePdu {
                cache_slot: slot,
                surface_id: surface,
                destination_points: vec![Point { x, y }],
            })
        };
        side.send(&[
            start(100),
            to_cache(0),
            to_cache(1),
            to_cache(5000),
            to_cache(u16::MAX),
            to_surface(1, 100, 100),
            to_surface(0, 140, 100),
            to_surface(5000, 180, 100),
            to_surface(4097, 220, 100),
            end(100),
        ])?;
        side.pump(&mut session, |p, _| p.acknowledged() > 1).await?;
        side.ping(&mut session).await?;

        for (x, y) in [(0, 0), (5, 9), (15, 15)] {
            let cached = pattern_pixel(x, y, WIDTH, HEIGHT);
            for left in [100, 140, 180] {
                assert_eq!(
                    pixel_rgba(&session, left + x, 100 + y),
                    Some(cached),
                    "copied to {left}"
                );
            }
            // Slot 4097 was never filled: the pattern is still there.
            assert_eq!(
                pixel_rgba(&session, 220 + x, 100 + y),
                Some(pattern_pixel(220 + x, 100 + y, WIDTH, HEIGHT))
            );
        }
        // The session goes on: a new frame draws the pattern again.
        planar_frame(&mut side, &mut session, surface).await?;
        side.ping(&mut session).await?;
        assert_eq!(first_mismatch(&session), None);
        assert_eq!(side.pipeline.acknowledged(), 3);
        Ok(())
    })
}

/// A 400x300 surface mapped on a 320x240 output, the pattern of that size drawn on it: the
/// output shows the part that fits (the compositor clips), the framebuffer keeps its size.
#[test]
fn a_surface_larger_than_the_output_is_clipped() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (width, height) = (400, 300);
        let (mut side, surface) = open_with_surface(&mut server, &mut session, width, height).await?;
        side.pipeline
            .server()
            .send_uncompressed_frame(surface, &pattern(width, height), width, height, 0)
            .ok_or("send a frame")?;
        side.flush()?;
        side.pump(&mut session, |p, _| p.acknowledged() > 0).await?;
        side.ping(&mut session).await?;

        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height), (WIDTH, HEIGHT));
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                assert_eq!(
                    pixel_rgba(&session, x, y),
                    Some(pattern_pixel(x, y, width, height)),
                    "({x},{y})"
                );
            }
        }
        assert!(!side.events.iter().any(|e| matches!(e, Event::Resized { .. })));
        Ok(())
    })
}

/// A StartFrame and a drawing command, and no EndFrame: the frame is in progress, nothing is
/// shown, and `wait_until_drawn` says the server began a frame and has not finished it; its
/// EndFrame then shows it.
#[test]
fn a_frame_that_never_ends_is_reported_as_such() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        planar_frame(&mut side, &mut session, surface).await?;
        // The ResetGraphics and the frame were shown: nothing is left to draw.
        async_rdp_demo_server::testing::drain_until_quiet(&mut session, Duration::from_millis(200)).await?;

        let white = GfxPdu::SolidFill(SolidFillPdu {
            surface_id: surface,
            fill_pixel: Color {
                b: 0xff,
                g: 0xff,
                r: 0xff,
                xa: 0xff,
            },
            rectangles: vec![rect(0, 0, 32, 32)],
        });
        side.send(&[start(200), white])?;
        side.ping(&mut session).await?;
        assert!(session.frame_in_progress());
        assert_eq!(pixel_rgba(&session, 0, 0), Some(pattern_pixel(0, 0, WIDTH, HEIGHT)));

        let waited = session
            .wait_until_drawn(Duration::from_millis(200), Duration::from_millis(800))
            .await;
        let error = waited.err().ok_or("wait_until_drawn found the screen drawn")?;
        assert_eq!(error.kind(), ErrorKind::Timeout);
        let report = async_rdp::report(&error);
        assert!(report.contains("began a frame and has not finished it"), "{report}");

        side.send(&[end(200)])?;
        side.pump(&mut session, |p, _| p.acknowledged() > 1).await?;
        side.ping(&mut session).await?;
        assert!(!session.frame_in_progress());
        assert_eq!(pixel_rgba(&session, 0, 0), Some([0xff, 0xff, 0xff, 0xff]));
        Ok(())
    })
}

/// Frames sent without waiting for acknowledgements.
const FLOOD: u32 = 2000;

/// The largest single allocation the flood may cause: far below what was sent.
const ALLOCATION_BOUND: usize = 256 << 10;

/// [`FLOOD`] frames (StartFrame, a small solid fill, EndFrame) sent at once, without waiting
/// for any acknowledgement: the client acknowledges each one (the demo server counts the
/// Frame Acknowledge PDUs), its memory stays bounded (no allocation grows with the backlog),
/// and the last fill is shown.
#[test]
fn thousands_of_unacknowledged_frames_are_each_acknowledged() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        planar_frame(&mut side, &mut session, surface).await?;

        let mut messages = Vec::new();
        for i in 0..FLOOD {
            let shade = u8::try_from(i % 256)?;
            let fill = GfxPdu::SolidFill(SolidFillPdu {
                surface_id: surface,
                fill_pixel: Color {
                    b: shade,
                    g: 0x40,
                    r: 0x80,
                    xa: 0xff,
                },
                rectangles: vec![rect(8, 8, 24, 24)],
            });
            messages.extend(side.pipeline.pdus(&[start(1000 + i), fill, end(1000 + i)])?);
        }
        counting_alloc::start();
        send_all(side.server, messages)?;
        side.pump(&mut session, |p, _| p.acknowledged() > FLOOD).await?;
        let counts = counting_alloc::stop();
        side.ping(&mut session).await?;

        assert_eq!(side.pipeline.acknowledged(), FLOOD + 1);
        assert_eq!(session.graphics_report().frames, FLOOD + 1);
        assert!(
            counts.largest < ALLOCATION_BOUND,
            "an allocation of {} bytes",
            counts.largest
        );
        let shade = u8::try_from((FLOOD - 1) % 256)?;
        assert_eq!(pixel_rgba(&session, 10, 10), Some([0x80, 0x40, shade, 0xff]));
        assert!(!session.frame_in_progress());
        Ok(())
    })
}

/// A WireToSurface1 for a surface that was never created: IronRDP refuses the message; the
/// client logs a warning naming the graphics pipeline and the surface, asks for a redraw, and
/// goes on (no panic, no hang): the frame is still acknowledged, and the next one drawn.
#[test]
fn a_command_for_an_unknown_surface_is_logged_and_redrawn() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        let stray = GfxPdu::WireToSurface1(WireToSurface1Pdu {
            surface_id: 77,
            codec_id: Codec1Type::Uncompressed,
            pixel_format: PixelFormat::XRgb,
            destination_rectangle: rect(0, 0, 2, 2),
            bitmap_data: vec![0; 16],
        });
        side.send(&[start(1), stray, end(1)])?;
        refused_and_redrawn(&mut side, &mut session, surface, "unknown surface in WireToSurface1").await
    })
}

/// Bytes that are no ZGFX segment on the pipeline's channel: refused, logged naming the
/// graphics pipeline, a redraw asked for, and the session goes on.
#[test]
fn garbage_zgfx_is_logged_and_redrawn() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, None).await?;
        let (mut side, surface) = open_with_surface(&mut server, &mut session, WIDTH, HEIGHT).await?;
        // A multipart segment (0xE1) claiming far more than follows.
        let garbage: Vec<u8> = [0xE1, 0x24]
            .into_iter()
            .chain((0..200u8).map(|b| b.wrapping_mul(37)))
            .collect();
        send_all(side.server, side.pipeline.payload(&garbage)?)?;
        refused_and_redrawn(&mut side, &mut session, surface, "multipart segment claims").await
    })
}

/// After a message the pipeline refused: one warning naming the graphics pipeline and
/// `cause`, a redraw request, and a pipeline that still draws.
async fn refused_and_redrawn(
    side: &mut Side<'_>,
    session: &mut ClientSession,
    surface: u16,
    cause: &str,
) -> TestResult {
    let refreshed = side
        .server
        .wait_for(|e| matches!(e, ServerEvent::RefreshRequested).then_some(()));
    driving(session, keep(&mut side.events), refreshed).await?;
    let warned = warnings_with(&["graphics pipeline", cause]);
    assert_eq!(warned.len(), 1, "{warned:?}");
    planar_frame(side, session, surface).await?;
    side.ping(session).await?;
    assert_eq!(first_mismatch(session), None);
    Ok(())
}

/// A client configured without `Channel::Graphics`: it does not advertise the pipeline,
/// refuses the channel when the server opens it anyway, and stays on the legacy path.
#[test]
fn without_the_graphics_channel_the_legacy_path_is_used() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&server, Some(&[Channel::DisplayControl])).await?;
        let pipeline = Pipeline::new(GRAPHICS);
        send_all(&server, pipeline.open()?)?;
        let mut events = Vec::new();
        let refused = async {
            loop {
                let message = next_drdynvc(&mut server).await?;
                if let Some(answer) = dvc::create_response(&message) {
                    return Ok(answer);
                }
            }
        };
        let answer = driving(&mut session, keep(&mut events), refused).await?;
        assert_eq!(answer, (GRAPHICS, false), "the graphics channel is refused");

        server.command(Command::Redraw)?;
        let redrawn = server.wait_for(|e| matches!(e, ServerEvent::FrameSent { .. }).then_some(()));
        driving(&mut session, keep(&mut events), redrawn).await?;
        async_rdp_demo_server::testing::wait_for_pattern(&mut session).await?;
        let report = session.graphics_report();
        assert_eq!(report.path, GraphicsPath::Legacy);
        assert!(report.to_string().starts_with("legacy"), "{report}");
        Ok(())
    })
}

/// An event handler for `driving` that keeps every event in `events`.
fn keep(events: &mut Vec<Event>) -> impl FnMut(Event) -> TestResult + '_ {
    move |event| {
        events.push(event);
        Ok(())
    }
}
