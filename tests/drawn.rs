//! Issue 10: "the screen is drawn" must mean pixels were drawn and no frame is half sent.
//!
//! The demo server plays scripts ([`Connection::play`]) over real loopback TCP and TLS: a
//! server that stalls before its first update, one that sends only frame markers, one that
//! begins a frame and then sends its bitmaps slowly, and one that sends an update in slow
//! fragments. [`Session::wait_until_drawn`](async_rdp::Session::wait_until_drawn), which the
//! screenshot examples use, must fail when nothing was drawn and must not return between the
//! pieces of a frame.

use std::time::{Duration, Instant};

use async_rdp::{connect, Drawn, ErrorKind};
use async_rdp_demo_server::encode::{
    bitmap_updates, frame_marker, refragment, split_pdus, BitmapCodec, FrameAction, Picture,
};
use async_rdp_demo_server::testing::{block_on, client_config, BoxError, Serving, TestResult};
use async_rdp_demo_server::{pattern_pixel, Config, DemoServer, Scripted, Security};
use ironrdp_connector::DesktopSize;

const WIDTH: u16 = 256;
const HEIGHT: u16 = 128;
/// The quiet period the client waits for; every pause in the scripts is longer.
const QUIET: Duration = Duration::from_millis(200);
const PAUSE: Duration = Duration::from_millis(450);

/// What the client saw: how `wait_until_drawn` ended, when, and the framebuffer then.
struct Seen {
    drawn: async_rdp::Result<Drawn>,
    elapsed: Duration,
    /// Pixels that differ from the demo pattern.
    wrong_pixels: usize,
}

/// Connects to a demo server that plays `script`, and waits for the screen to be drawn with
/// [`QUIET`] and `deadline`. Client and server share this thread.
fn play(script: Vec<Scripted>, deadline: Duration) -> TestResult<Seen> {
    let desktop = DesktopSize {
        width: WIDTH,
        height: HEIGHT,
    };
    let config = Config {
        security: Security::Tls,
        desktop,
        ..Config::default()
    };
    block_on(Duration::from_secs(60), async move {
        let server = DemoServer::bind(config).await?;
        let addr = server.local_addr()?.to_string();
        let client_config = client_config(&server).with_desktop_size(WIDTH, HEIGHT);
        let mut serving = Serving::new(async {
            server.accept().await?.play(&script).await?;
            Ok::<(), BoxError>(())
        });
        let client = async {
            let mut session = connect(&addr, client_config).await?;
            let started = Instant::now();
            let drawn = session.wait_until_drawn(QUIET, deadline).await;
            let elapsed = started.elapsed();
            let fb = session.framebuffer();
            let mut wrong_pixels = 0;
            for y in 0..fb.height {
                for x in 0..fb.width {
                    wrong_pixels += usize::from(fb.pixel(x, y) != Some(pattern_pixel(x, y, WIDTH, HEIGHT)));
                }
            }
            Ok::<Seen, BoxError>(Seen {
                drawn,
                elapsed,
                wrong_pixels,
            })
        };
        let seen = serving.alongside(client).await;
        // A server that failed is the failure to report, whatever the client saw.
        serving.ended().transpose()?;
        seen
    })
}

/// The demo pattern at the test's size as uncompressed Bitmap Updates, one PDU per tile row.
fn picture_pdus() -> TestResult<Vec<Vec<u8>>> {
    let mut bgrx = Vec::with_capacity(usize::from(WIDTH) * usize::from(HEIGHT) * 4);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let [r, g, b, _] = pattern_pixel(x, y, WIDTH, HEIGHT);
            bgrx.extend_from_slice(&[b, g, r, 0]);
        }
    }
    let updates = bitmap_updates(&Picture::new(&bgrx, WIDTH, HEIGHT)?, BitmapCodec::Uncompressed)?;
    let pdus: Vec<Vec<u8>> = split_pdus(&updates)?.into_iter().map(<[u8]>::to_vec).collect();
    assert!(
        pdus.len() >= 3,
        "the picture should take several PDUs, took {}",
        pdus.len()
    );
    Ok(pdus)
}

/// The deadline error: nothing was drawn, said so, at the deadline.
fn assert_nothing_drawn(seen: &Seen, deadline: Duration, what: &str) {
    let error = match &seen.drawn {
        Ok(drawn) => panic!("{what}: reported as drawn: {drawn:?}"),
        Err(e) => e,
    };
    let text = async_rdp::report(error);
    assert_eq!(error.kind(), ErrorKind::Timeout, "{what}: {text}");
    assert!(
        text.contains("nothing") || text.contains("drew nothing"),
        "{what}: {text}"
    );
    assert!(
        seen.elapsed >= deadline,
        "{what}: gave up early, after {:?}",
        seen.elapsed
    );
}

#[test]
fn issue_10_a_server_that_stalls_before_its_first_update_is_an_error() -> TestResult {
    let deadline = Duration::from_millis(1500);
    let seen = play(Vec::new(), deadline)?;
    assert_nothing_drawn(&seen, deadline, "stalled server");
    Ok(())
}

#[test]
fn issue_10_frame_markers_alone_are_not_a_picture() -> TestResult {
    let deadline = Duration::from_millis(1500);
    let script = vec![
        Scripted::Send(frame_marker(FrameAction::Begin, 1)?),
        Scripted::Send(frame_marker(FrameAction::End, 1)?),
        Scripted::Send(frame_marker(FrameAction::Begin, 2)?),
        Scripted::Send(frame_marker(FrameAction::End, 2)?),
    ];
    let seen = play(script, deadline)?;
    assert_nothing_drawn(&seen, deadline, "frame markers only");
    Ok(())
}

#[test]
fn issue_10_a_begun_frame_sent_slowly_is_waited_for() -> TestResult {
    // Begin, then each tile row after a pause longer than the quiet period, then end.
    let pdus = picture_pdus()?;
    let rows = pdus.len();
    let mut script = vec![Scripted::Send(frame_marker(FrameAction::Begin, 1)?)];
    for pdu in pdus {
        script.push(Scripted::Pause(PAUSE));
        script.push(Scripted::Send(pdu));
    }
    script.push(Scripted::Pause(PAUSE));
    script.push(Scripted::Send(frame_marker(FrameAction::End, 1)?));
    let seen = play(script, Duration::from_secs(30))?;
    let drawn = seen.drawn.map_err(|e| async_rdp::report(&e))?;
    assert!(drawn.settled.is_some(), "{drawn:?}");
    assert_eq!(
        drawn.updates as usize, rows,
        "one update per tile row, none for the markers"
    );
    assert_eq!(
        seen.wrong_pixels, 0,
        "returned before the frame was complete: {drawn:?}"
    );
    Ok(())
}

#[test]
fn issue_10_an_update_in_slow_fragments_is_waited_for() -> TestResult {
    // Every tile row but the last whole, at once, then the last row's update cut into three
    // fragments, with pauses between them longer than the quiet period.
    let mut pdus = picture_pdus()?;
    let last = pdus.pop().ok_or("no PDUs")?;
    let mut script: Vec<Scripted> = pdus.into_iter().map(Scripted::Send).collect();
    for (i, fragment) in split_pdus(&refragment(&last, 3)?)?.into_iter().enumerate() {
        if i > 0 {
            script.push(Scripted::Pause(PAUSE));
        }
        script.push(Scripted::Send(fragment.to_vec()));
    }
    let seen = play(script, Duration::from_secs(30))?;
    let drawn = seen.drawn.map_err(|e| async_rdp::report(&e))?;
    assert!(drawn.settled.is_some(), "{drawn:?}");
    assert_eq!(seen.wrong_pixels, 0, "returned between fragments: {drawn:?}");
    Ok(())
}
