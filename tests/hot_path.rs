//! Hot-path hygiene of a running session: a screen update costs memory in proportion to the
//! damaged rectangle, never a copy of the whole framebuffer.
//!
//! A counting global allocator records, for the client's thread only, how many bytes it
//! allocates and the largest single allocation while the session decodes a stream of small
//! updates (the demo server's clock animation) into a 1920x1080 framebuffer. The server runs on
//! its own thread so that its allocations are not counted.

use std::sync::mpsc;
use std::time::Duration;

use async_rdp::{connect, Event};
use async_rdp_demo_server::testing::{client_config_for, BoxError, TestResult};
use async_rdp_demo_server::{animated_region, Config, DemoServer, Security};
use ironrdp_connector::DesktopSize;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const WIDTH: u16 = 1920;
const HEIGHT: u16 = 1080;
const UPDATES: usize = 30;

#[test]
fn small_updates_cost_memory_in_proportion_to_the_damage() -> TestResult {
    let config = Config {
        desktop: DesktopSize {
            width: WIDTH,
            height: HEIGHT,
        },
        security: Security::Tls,
        animate: Some(Duration::from_millis(5)),
        ..Config::default()
    };
    let (ready, started) = mpsc::channel();
    // The server gets its own thread (and its own allocations, not counted).
    let server_thread = std::thread::spawn(move || {
        async_std::task::block_on(async move {
            let server = DemoServer::bind(config).await?;
            let _ = ready.send((
                server.local_addr()?,
                server.certificate().clone(),
                server.config().clone(),
            ));
            let (events, _reported) = futures::channel::mpsc::unbounded();
            let (_commands, received) = futures::channel::mpsc::unbounded();
            server.serve_one(events, received).await?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
    });
    let (addr, certificate, server_config) = started.recv_timeout(Duration::from_secs(30))?;

    let clock = animated_region(WIDTH, HEIGHT);
    let framebuffer_bytes = usize::from(WIDTH) * usize::from(HEIGHT) * 4;
    let (updates, bytes, largest, calls) = async_std::task::block_on(async {
        let config = client_config_for(&server_config, &certificate).with_desktop_size(WIDTH, HEIGHT);
        let mut session = connect(&addr.to_string(), config).await?;
        // The first frame covers the whole desktop; the animation starts after it, and from
        // then on every update lies inside the clock box.
        let mut updates = 0;
        loop {
            match session.next_event().await? {
                Event::Graphics(rect) if inside(&rect, &clock) => {
                    updates += 1;
                    if updates == 3 {
                        break;
                    }
                }
                Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                _ => {}
            }
        }
        counting_alloc::start();
        let mut counted = 0;
        while counted < UPDATES {
            match session.next_event().await {
                Ok(Event::Graphics(rect)) => {
                    assert!(inside(&rect, &clock), "update {rect:?} outside the clock box {clock:?}");
                    counted += 1;
                }
                Ok(Event::Disconnected(reason)) => {
                    counting_alloc::stop();
                    return Err(format!("disconnected: {reason:?}").into());
                }
                Ok(_) => {}
                Err(e) => {
                    counting_alloc::stop();
                    return Err(e.into());
                }
            }
        }
        let counts = counting_alloc::stop();
        let measured = (counted, counts.bytes, counts.largest, counts.calls);
        session.shutdown(Duration::from_secs(5)).await?;
        Ok::<_, BoxError>(measured)
    })?;
    let _ = server_thread.join();

    let damage = (usize::from(clock.right - clock.left) + 1) * (usize::from(clock.bottom - clock.top) + 1) * 4;
    println!(
        "{updates} updates of a {}x{} box ({damage} bytes of pixels each) into a {WIDTH}x{HEIGHT} framebuffer \
         ({framebuffer_bytes} bytes): {} bytes allocated per update in {:.1} calls, largest allocation {largest} bytes",
        clock.right - clock.left + 1,
        clock.bottom - clock.top + 1,
        bytes / updates,
        calls as f64 / updates as f64,
    );
    // Decoding an update may allocate a few buffers the size of the damaged rectangle (the
    // decoder's own conversion buffers), never anything near the whole framebuffer.
    assert!(
        largest < framebuffer_bytes / 16,
        "an update allocated {largest} bytes at once: a framebuffer-sized copy ({framebuffer_bytes} bytes)?"
    );
    assert!(
        bytes / updates < 8 * damage,
        "{} bytes allocated per update of {damage} bytes of pixels",
        bytes / updates
    );
    Ok(())
}

fn inside(rect: &async_rdp::Rect, area: &ironrdp_pdu::geometry::InclusiveRectangle) -> bool {
    rect.x >= area.left
        && rect.y >= area.top
        && u32::from(rect.x) + u32::from(rect.width) <= u32::from(area.right) + 1
        && u32::from(rect.y) + u32::from(rect.height) <= u32::from(area.bottom) + 1
}
