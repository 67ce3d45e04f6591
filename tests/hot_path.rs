//! Hot-path hygiene of a running session: a screen update costs memory in proportion to the
//! damaged rectangle, never a copy of the whole framebuffer.
//!
//! A counting global allocator records, for the client's thread only, how many bytes it
//! allocates and the largest single allocation while the session decodes a stream of small
//! updates (the demo server's clock animation) into a 1920x1080 framebuffer. The server runs on
//! its own thread so that its allocations are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_rdp::{connect, tls, ClientConfig, Event};
use async_rdp_demo_server::{animated_region, Config, DemoServer, Security};
use ironrdp_connector::DesktopSize;

/// Delegates to [`System`], recording allocations made while the current thread counts.
struct CountingAllocator;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` initialisation and no destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size, Ordering::Relaxed);
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with exactly the arguments it was given and returns
// what `System` returns, so the `GlobalAlloc` contract is upheld exactly as `System` upholds it.
// `record` only touches atomics and a const-initialised thread-local `Cell<bool>`, none of which
// allocates, unwinds or touches the memory being managed.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller upholds `alloc_zeroed`'s contract, forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is valid, as the caller
        // guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const WIDTH: u16 = 1920;
const HEIGHT: u16 = 1080;
const UPDATES: usize = 30;

#[test]
fn small_updates_cost_memory_in_proportion_to_the_damage() -> Result<(), Box<dyn std::error::Error>> {
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
        let config = ClientConfig::new(&server_config.username, server_config.password.as_str())
            .with_desktop_size(WIDTH, HEIGHT)
            .with_certificate_verifier(Arc::new(tls::Pinned::certificate(&certificate)));
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
        BYTES.store(0, Ordering::SeqCst);
        LARGEST.store(0, Ordering::SeqCst);
        CALLS.store(0, Ordering::SeqCst);
        COUNTING.with(|c| c.set(true));
        let mut counted = 0;
        while counted < UPDATES {
            match session.next_event().await {
                Ok(Event::Graphics(rect)) => {
                    assert!(inside(&rect, &clock), "update {rect:?} outside the clock box {clock:?}");
                    counted += 1;
                }
                Ok(Event::Disconnected(reason)) => {
                    COUNTING.with(|c| c.set(false));
                    return Err(format!("disconnected: {reason:?}").into());
                }
                Ok(_) => {}
                Err(e) => {
                    COUNTING.with(|c| c.set(false));
                    return Err(e.into());
                }
            }
        }
        COUNTING.with(|c| c.set(false));
        let measured = (
            counted,
            BYTES.load(Ordering::SeqCst),
            LARGEST.load(Ordering::SeqCst),
            CALLS.load(Ordering::SeqCst),
        );
        session.shutdown(Duration::from_secs(5)).await?;
        Ok::<_, Box<dyn std::error::Error>>(measured)
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
