//! `async_rdp::runtime`: the one-thread executor and reactor, on real sockets on loopback.
//!
//! The thread-count test must be alone in its process (other tests here start threads, the
//! demo server starts async-io's), so it re-executes this binary: once as the client, which
//! runs that test alone and measures, and from there once more as the demo server. The role
//! comes from the `ASYNC_RDP_LOCAL_RUNTIME_ROLE` environment variable; without it,
//! `server_child` does nothing and the measuring test only launches the client process.
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::future::Future as _;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_rdp::{connect, net, runtime, ClientConfig, Error, ErrorKind, Timeouts};
use async_rdp_demo_server::testing::{client_config_for, first_graphics, TestResult};
use futures::{AsyncReadExt, AsyncWriteExt};

const ROLE: &str = "ASYNC_RDP_LOCAL_RUNTIME_ROLE";

// ---------------------------------------------------------------------------------------------
// 1. A whole session on one OS thread.

/// The process's threads: (id, name) from `/proc/self/task`.
fn threads() -> std::io::Result<Vec<(String, String)>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        // A thread may exit between the listing and the read.
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        threads.push((
            entry.file_name().to_string_lossy().into_owned(),
            name.trim_end().to_owned(),
        ));
    }
    threads.sort();
    Ok(threads)
}

/// The demo server, in a child process (it runs on async-std, whose reactor thread would
/// otherwise land in the process being measured). Killed when dropped, whatever happened.
struct ServerChild {
    child: Child,
    addr: String,
    certificate: Vec<u8>,
}

impl ServerChild {
    fn spawn() -> TestResult<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--exact", "server_child", "--nocapture", "--test-threads=1"])
            .env(ROLE, "server")
            // The server exits when this end closes: no orphan, even if this process dies
            // without running the guard.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Guarded from here on: a failure below still kills the child.
        let mut server = ServerChild {
            child,
            addr: String::new(),
            certificate: Vec::new(),
        };
        let mut lines = BufReader::new(stdout).lines();
        while server.addr.is_empty() || server.certificate.is_empty() {
            let line = lines
                .next()
                .ok_or("the server child exited before announcing itself")??;
            // libtest may print "test server_child ... " on the same line first.
            if let Some((_, addr)) = line.split_once("ADDR ") {
                server.addr = addr.to_owned();
            } else if let Some((_, hex)) = line.split_once("CERT ") {
                server.certificate = from_hex(hex)?;
            }
        }
        // The server prints nothing more; the pipe's read end goes with `lines`.
        Ok(server)
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> TestResult<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return Err("odd-length hex".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(hex.get(i..i + 2).ok_or("not ascii hex")?, 16)?))
        .collect()
}

/// Only with the server role: runs the demo server, announcing its address and certificate
/// on stdout, until killed or until its stdin closes.
#[test]
fn server_child() -> TestResult {
    if std::env::var(ROLE).as_deref() != Ok("server") {
        return Ok(());
    }
    let _ = env_logger::try_init();
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    async_std::task::block_on(async {
        let server = async_rdp_demo_server::DemoServer::bind(async_rdp_demo_server::Config::default()).await?;
        println!("ADDR {}", server.local_addr()?);
        println!("CERT {}", to_hex(server.certificate()));
        std::io::stdout().flush()?;
        server.serve_forever().await?;
        Ok(())
    })
}

/// A full session — TCP, TLS, NLA, the first graphics update, shutdown — under
/// `runtime::block_on` adds no OS thread to the process, and never an `async-io` one.
#[test]
fn a_session_in_the_runtime_uses_one_thread() -> TestResult {
    match std::env::var(ROLE).as_deref() {
        Ok("client") => measure_session(),
        Ok(_) => Ok(()),
        Err(_) => {
            let output = Command::new(std::env::current_exe()?)
                .args([
                    "--exact",
                    "a_session_in_the_runtime_uses_one_thread",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE, "client")
                .stdin(Stdio::null())
                .output()?;
            print!("{}", String::from_utf8_lossy(&output.stdout));
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            assert!(
                output.status.success(),
                "the measuring client process failed: {}",
                output.status
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains("threads:"),
                "the client process did not run the measurement"
            );
            Ok(())
        }
    }
}

fn measure_session() -> TestResult {
    let before = threads()?;
    let server = ServerChild::spawn()?;
    let certificate = rustls::pki_types::CertificateDer::from(server.certificate.clone());
    let config = client_config_for(&async_rdp_demo_server::Config::default(), &certificate)
        // Runs the session's resettable idle timer too.
        .with_timeouts(Timeouts::default().with(async_rdp::Phase::Session, Duration::from_secs(30)));

    let mut samples = Vec::new();
    runtime::block_on(async {
        let mut session = connect(&server.addr, config)
            .await
            .map_err(|e| format!("connect: {}", async_rdp::report(&e)))?;
        samples.push(("connected", threads()?));
        // No async-std timeout here: its timer would run on async-io's reactor thread.
        first_graphics(&mut session, None)
            .await
            .map_err(|e| format!("session: {}", async_rdp::report(&*e)))?;
        samples.push(("first graphics update", threads()?));
        // The demo server, in its own process here, closes right after our Disconnect Provider
        // Ultimatum without reading our close_notify, so its kernel may reset the connection;
        // `shutdown` takes that as the end it was waiting for.
        session
            .shutdown(Duration::from_secs(5))
            .await
            .map_err(|e| format!("shutdown: {}", async_rdp::report(&e)))?;
        samples.push(("shut down", threads()?));
        TestResult::Ok(())
    })?;
    let after = threads()?;
    drop(server);

    let counts: Vec<String> = samples.iter().map(|(when, t)| format!("{} {when}", t.len())).collect();
    println!(
        "threads: {} before, {}, {} after runtime::block_on",
        before.len(),
        counts.join(", "),
        after.len()
    );
    for (when, sample) in samples.iter().chain([&("after", after)]) {
        assert!(
            sample.iter().all(|(_, name)| name != "async-io"),
            "an async-io thread runs ({when}): {sample:?}"
        );
        assert_eq!(sample, &before, "the session changed the process's threads ({when})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Timers.

/// A loopback server that accepts connections and never answers, until dropped.
struct Silent {
    addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let held = listener.accept();
            // Holds the connection open, silent, until told to stop.
            let _ = stopped.recv();
            drop(held);
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        drop(self.stop.take());
        // Unblocks the accept if nobody connected.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn with_timeout_fires_against_a_silent_server() -> TestResult {
    let server = Silent::start()?;
    let addr = server.addr.to_string();
    runtime::block_on(async {
        let mut tcp = net::connect(&addr, Duration::from_secs(5)).await?;
        let start = Instant::now();
        let mut byte = [0u8; 1];
        let read = async { tcp.read(&mut byte).await.map_err(|e| Error::io("read", e)) };
        let error = net::with_timeout(Duration::from_millis(200), "read", read)
            .await
            .expect_err("the silent server answered");
        let took = start.elapsed();
        assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "took {took:?}"
        );
        Ok(())
    })
}

#[test]
fn connect_times_out_in_negotiation_against_a_silent_server() -> TestResult {
    let server = Silent::start()?;
    let timeouts = Timeouts::default().with(async_rdp::Phase::Negotiation, Duration::from_millis(300));
    let config = ClientConfig::new("user", "password").with_timeouts(timeouts);
    let start = Instant::now();
    let error = runtime::block_on(connect(&server.addr.to_string(), config)).expect_err("connected to nothing");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    Ok(())
}

#[test]
fn sleep_sleeps_about_the_requested_time() {
    runtime::block_on(async {
        for ms in [0, 10, 150] {
            let start = Instant::now();
            net::sleep(Duration::from_millis(ms)).await;
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(ms) && took < Duration::from_millis(ms + 500),
                "sleep({ms} ms) took {took:?}"
            );
        }
    });
}

#[test]
fn a_reset_timer_fires_at_its_new_deadline() {
    runtime::block_on(async {
        // Earlier, before the first poll.
        let start = Instant::now();
        let mut timer = net::Timer::after(Duration::from_secs(30));
        timer.set_after(Duration::from_millis(100));
        (&mut timer).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(2),
            "took {took:?}"
        );

        // Later, once registered with the reactor: the old deadline must not fire it.
        let start = Instant::now();
        let mut timer = net::Timer::after(Duration::from_millis(50));
        let polled = futures::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut timer).poll(cx))).await;
        assert!(polled.is_pending());
        timer.set_after(Duration::from_millis(300));
        (&mut timer).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "took {took:?}"
        );

        // Fired timers stay quiet until set again, then fire again.
        let polled = futures::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut timer).poll(cx))).await;
        assert!(polled.is_pending(), "a fired timer fired again");
        timer.set_after(Duration::from_millis(20));
        (&mut timer).await;
    });
}

#[test]
fn a_timer_reset_while_a_task_waits_on_it_wakes_that_task() {
    // One task waits on the timer; another moves its deadline without polling it. The waiting
    // task must be woken at the new deadline with no further poll (found in review: the reset
    // used to drop the registration, waker and all, and the wait never ended).
    let timer = std::cell::RefCell::new(net::Timer::after(Duration::from_secs(30)));
    let start = Instant::now();
    let outcome = runtime::block_on(net::with_timeout(Duration::from_secs(5), "reset timer", async {
        let wait = futures::future::poll_fn(|cx| std::pin::Pin::new(&mut *timer.borrow_mut()).poll(cx));
        let reset = async {
            net::sleep(Duration::from_millis(50)).await;
            timer.borrow_mut().set_after(Duration::from_millis(100));
        };
        futures::join!(wait, reset);
        Ok(())
    }));
    let took = start.elapsed();
    assert!(outcome.is_ok(), "the waiting task was never woken: {outcome:?}");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[test]
fn a_timer_moves_between_the_runtime_and_other_executors() {
    let mut timer = net::Timer::after(Duration::from_millis(150));
    // Registered with the runtime, then left pending there.
    runtime::block_on(async {
        let polled = futures::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut timer).poll(cx))).await;
        assert!(polled.is_pending());
    });
    // Finished on async-io's reactor, under an executor that knows nothing of ours.
    let start = Instant::now();
    futures::executor::block_on(&mut timer);
    assert!(start.elapsed() < Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// 3. Connecting.

#[test]
fn connecting_to_a_closed_port_is_refused_at_once() -> TestResult {
    // A port that was just free: nothing listens on it any more.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    let start = Instant::now();
    let error =
        runtime::block_on(net::connect(&addr, Duration::from_secs(10))).expect_err("connected to a closed port");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert_eq!(error.kind(), ErrorKind::Io, "{error}");
    let io = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .ok_or_else(|| format!("no io error under {error}"))?;
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
    assert!(
        error.to_string().contains(&addr),
        "the error does not name the address: {error}"
    );
    Ok(())
}

/// Bytes both ways over a runtime stream, on IPv4 and (where the host has it) IPv6.
#[test]
fn runtime_streams_carry_bytes_over_ipv4_and_ipv6() -> TestResult {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let Ok(listener) = TcpListener::bind(bind) else {
            println!("skipping {bind}: cannot bind");
            continue;
        };
        let addr = listener.local_addr()?;
        // An echo server, on a plain std thread, for 1 MiB: enough to fill the socket
        // buffers, so that both directions really wait for readiness.
        let echo = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut tcp, _) = listener.accept()?;
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = tcp.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                tcp.write_all(&buf[..n])?;
            }
        });
        let sent: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let received = runtime::block_on(async {
            let tcp = net::connect(&addr.to_string(), Duration::from_secs(5)).await?;
            assert_eq!(tcp.peer_addr()?, addr);
            assert!(tcp.nodelay()?);
            let (mut reader, mut writer) = tcp.split();
            let write = async {
                writer.write_all(&sent).await?;
                writer.close().await
            };
            let mut received = Vec::new();
            let read = reader.read_to_end(&mut received);
            let (written, read) = futures::join!(write, read);
            written?;
            read?;
            TestResult::Ok(received)
        })?;
        echo.join().map_err(|_| "the echo thread panicked")??;
        assert!(received == sent, "{bind}: the echo differs");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. A runtime stream polled elsewhere.

#[test]
fn a_runtime_stream_polled_elsewhere_fails_clearly() -> TestResult {
    let server = Silent::start()?;
    let mut tcp = runtime::block_on(net::connect(&server.addr.to_string(), Duration::from_secs(5)))?;
    let mut byte = [0u8; 1];

    let read = futures::executor::block_on(tcp.read(&mut byte)).expect_err("read outside the runtime");
    assert!(read.to_string().contains("runtime::block_on"), "{read}");
    let write = futures::executor::block_on(tcp.write(b"x")).expect_err("write outside the runtime");
    assert!(write.to_string().contains("runtime::block_on"), "{write}");
    // What never waits works anywhere.
    assert_eq!(tcp.peer_addr()?, server.addr);

    // Back inside a (later) runtime::block_on on the same thread, it works again.
    runtime::block_on(tcp.write_all(b"hello"))?;

    // On another thread, even inside its own runtime::block_on, it is not that thread's.
    let other = std::thread::spawn(move || runtime::block_on(async { tcp.write(b"x").await }))
        .join()
        .map_err(|_| "the thread panicked")?;
    let other = other.expect_err("write on another thread's runtime");
    assert!(other.to_string().contains("runtime::block_on"), "{other}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. Wake-ups.

#[test]
fn a_wake_from_another_thread_completes_block_on() {
    let (tx, rx) = futures::channel::oneshot::channel();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tx.send(42).expect("the receiver is gone");
    });
    assert_eq!(runtime::block_on(rx), Ok(42));
    sender.join().expect("the sender panicked");
}

/// Wakes racing the poll — from another thread while the future is being polled, and from
/// the future itself — are never lost.
#[test]
fn wakes_during_the_poll_are_not_lost() {
    for _ in 0..200 {
        let mut polls = 0;
        runtime::block_on(futures::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                let waker = cx.waker().clone();
                std::thread::spawn(move || waker.wake());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
    }
    // A future that yields a thousand times, waking itself each time.
    let mut left = 1000;
    runtime::block_on(futures::future::poll_fn(|cx| {
        if left == 0 {
            return Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }));
}

#[test]
fn nested_block_on_is_refused_with_a_clear_panic() {
    let panic = std::panic::catch_unwind(|| runtime::block_on(async { runtime::block_on(async {}) }))
        .expect_err("a nested block_on ran");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains("inside another runtime::block_on"), "{message}");
    // The thread is usable again afterwards.
    assert_eq!(runtime::block_on(async { 7 }), 7);
}

/// The stream and the timer stay `Send + Sync + Unpin` like async-std's: a `SendStream` over
/// them can still move to other executors' threads, and async-h1 takes the KDC proxy's stream.
#[test]
fn the_runtime_edge_types_are_send_sync_unpin() {
    fn check<T: Send + Sync + Unpin>() {}
    check::<net::TcpStream>();
    check::<net::Timer>();
    check::<async_rdp::ClientStream>();
}

/// A toolkit's descriptor (here a pipe) watched on the session's thread: `readable` waits, in
/// `epoll`, until another party writes — no timer.
#[test]
fn a_watched_descriptor_wakes_the_one_thread_when_readable() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::fd::AsFd;

    use async_rdp::runtime::WatchedFd;

    let (mut reader, mut writer) = std::io::pipe()?;
    let waited = runtime::block_on(async {
        let watched = WatchedFd::new(reader.as_fd())?;
        // Nothing written yet: not readable.
        assert!(futures::poll!(std::pin::pin!(watched.readable())).is_pending());
        let writer_thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            writer.write_all(b"x")
        });
        let start = std::time::Instant::now();
        watched.readable().await?;
        let waited = start.elapsed();
        writer_thread.join().expect("writer thread")?;
        Ok::<_, std::io::Error>(waited)
    })?;
    assert!(
        waited >= Duration::from_millis(90),
        "readable before the write: {waited:?}"
    );
    let mut byte = [0u8; 1];
    reader.read_exact(&mut byte)?;
    assert_eq!(&byte, b"x", "the watch read nothing from the descriptor");
    // Outside block_on nothing would drive the wait: refused, not hung.
    assert!(WatchedFd::new(reader.as_fd()).is_err());
    Ok(())
}
