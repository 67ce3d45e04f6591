//! The runtime edge: sockets and timers, the only module that names async-std.
//!
//! Everything else in the crate is generic over `futures::io`. Each function here checks,
//! when first polled, whether it runs inside [`runtime::block_on`]:
//! there it uses that one-thread reactor (no thread ever started), anywhere else async-std /
//! async-io as before (whose reactor runs an extra `async-io` thread).

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};

pub use async_std::net::{ToSocketAddrs, UdpSocket};

#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::runtime;
use crate::{Error, ErrorKind, Result};

/// A TCP stream: async-std's, or one registered with [`runtime::block_on`]'s reactor when
/// [`connect`] ran there.
///
/// It implements [`futures::io::AsyncRead`] and [`AsyncWrite`]. Wrap your own async-std stream
/// with `From` to hand it to APIs that take this type.
///
/// A stream opened inside `runtime::block_on` can only be read and written inside
/// `runtime::block_on` on the same thread (one call or a later one); anywhere else its reads
/// and writes fail with an [`io::Error`] saying so. Its address, option and shutdown methods
/// work anywhere.
///
/// [`runtime::block_on`]: crate::runtime::block_on
pub struct TcpStream(Inner);

enum Inner {
    AsyncStd(async_std::net::TcpStream),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Runtime(runtime::Registered),
}

impl TcpStream {
    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            Inner::AsyncStd(s) => s.local_addr(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.get_ref().local_addr(),
        }
    }

    /// The remote address of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            Inner::AsyncStd(s) => s.peer_addr(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.get_ref().peer_addr(),
        }
    }

    /// Sets `TCP_NODELAY` (Nagle's algorithm off when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match &self.0 {
            Inner::AsyncStd(s) => s.set_nodelay(nodelay),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.get_ref().set_nodelay(nodelay),
        }
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        match &self.0 {
            Inner::AsyncStd(s) => s.nodelay(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.get_ref().nodelay(),
        }
    }

    /// Shuts down the read half, the write half or both (it never waits).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match &self.0 {
            Inner::AsyncStd(s) => s.shutdown(how),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.get_ref().shutdown(how),
        }
    }
}

impl From<async_std::net::TcpStream> for TcpStream {
    fn from(stream: async_std::net::TcpStream) -> Self {
        Self(Inner::AsyncStd(stream))
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::AsyncStd(s) => f.debug_tuple("TcpStream").field(s).finish(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => f.debug_tuple("TcpStream").field(s).finish(),
        }
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::AsyncStd(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.poll_read(cx, buf),
        }
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::AsyncStd(s) => Pin::new(s).poll_read_vectored(cx, bufs),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.poll_read_vectored(cx, bufs),
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::AsyncStd(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::AsyncStd(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => s.poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::AsyncStd(s) => Pin::new(s).poll_flush(cx),
            // Writes go straight to the socket: there is nothing to flush.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::AsyncStd(s) => Pin::new(s).poll_close(cx),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Runtime(s) => Poll::Ready(s.close()),
        }
    }
}

/// A resettable timer: a future that completes, with its deadline, once the deadline has
/// passed, and then stays pending until it is set again.
///
/// Polled inside [`runtime::block_on`] it waits on that reactor;
/// anywhere else on async-io's, as `async_io::Timer` does. It may move between the two.
///
/// ```no_run
/// # async_rdp::runtime::block_on(async {
/// use std::time::Duration;
/// let mut timer = async_rdp::net::Timer::after(Duration::from_secs(30));
/// timer.set_after(Duration::from_secs(5)); // the deadline is now 5 s away
/// timer.await;
/// # });
/// ```
///
/// # Cancel safety
///
/// Cancel safe: polling it again after a drop of the future awaiting it (`&mut timer`) waits
/// for the same deadline.
#[derive(Debug)]
pub struct Timer {
    /// `None`: never fires (fired already, or the deadline overflowed).
    when: Option<Instant>,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    /// Not registered anywhere yet (registration waits for a poll, which knows the waker
    /// and the runtime).
    Idle,
    AsyncIo(async_io::Timer),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Runtime(runtime::TimerEntry),
}

impl Timer {
    /// A timer firing `duration` from now (never, if that overflows `Instant`).
    pub fn after(duration: Duration) -> Self {
        Self {
            when: Instant::now().checked_add(duration),
            backend: Backend::Idle,
        }
    }

    /// A timer firing at `deadline`.
    pub fn at(deadline: Instant) -> Self {
        Self {
            when: Some(deadline),
            backend: Backend::Idle,
        }
    }

    /// Moves the deadline to `duration` from now, whether or not the timer has fired.
    pub fn set_after(&mut self, duration: Duration) {
        match Instant::now().checked_add(duration) {
            Some(deadline) => self.set_at(deadline),
            None => {
                self.when = None;
                self.backend = Backend::Idle;
            }
        }
    }

    /// Moves the deadline to `deadline`, whether or not the timer has fired.
    pub fn set_at(&mut self, deadline: Instant) {
        self.when = Some(deadline);
        match &mut self.backend {
            // async-io re-registers with the waker it holds, as before this type existed.
            Backend::AsyncIo(timer) => timer.set_at(deadline),
            Backend::Idle => {}
            // Moved with its waker, so that a task waiting on it needs no new poll.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Runtime(entry) => entry.reset(deadline),
        }
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let this = self.get_mut();
        let Some(when) = this.when else {
            return Poll::Pending;
        };
        if Instant::now() >= when {
            this.when = None;
            this.backend = Backend::Idle;
            return Poll::Ready(when);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if runtime::is_running() {
            match &this.backend {
                Backend::Runtime(entry) if entry.is_current_for(when) => entry.set_waker(cx.waker()),
                _ => {
                    // Drops (deregisters) whatever was there before registering anew.
                    this.backend = Backend::Idle;
                    if let Some(entry) = runtime::TimerEntry::register(when, cx.waker()) {
                        this.backend = Backend::Runtime(entry);
                    }
                }
            }
            return Poll::Pending;
        }
        if !matches!(this.backend, Backend::AsyncIo(_)) {
            this.backend = Backend::AsyncIo(async_io::Timer::at(when));
        }
        let Backend::AsyncIo(timer) = &mut this.backend else {
            unreachable!("set just above")
        };
        match Pin::new(timer).poll(cx) {
            Poll::Ready(fired) => {
                this.when = None;
                this.backend = Backend::Idle;
                Poll::Ready(fired)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Waits for `duration`.
///
/// # Cancel safety
///
/// Cancel safe: nothing happens but the wait.
pub async fn sleep(duration: Duration) {
    Timer::after(duration).await;
}

/// Opens a TCP connection with a deadline and Nagle's algorithm off (RDP input PDUs are
/// small and latency-sensitive).
///
/// Inside [`runtime::block_on`], the connection is made on that
/// reactor: IP literals (`127.0.0.1:3389`, `[::1]:3389`) need no resolution; a host name is
/// resolved with std's blocking resolver, which blocks the thread (and the runtime with it)
/// during the lookup, and is not bounded by `timeout`. Elsewhere, async-std connects (and
/// resolves host names on its blocking thread pool).
///
/// ```no_run
/// # async_std::task::block_on(async {
/// use std::time::Duration;
/// let tcp = async_rdp::net::connect("127.0.0.1:3389", Duration::from_secs(5)).await?;
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the future abandons the connection attempt.
pub async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    with_timeout(timeout, "tcp connect", connect_unbounded(addr)).await
}

/// [`connect`] without a timeout of its own (the caller bounds it).
pub(crate) async fn connect_unbounded(addr: &str) -> Result<TcpStream> {
    let stream = open(addr)
        .await
        .map_err(|e| Error::io("tcp connect", e).with_detail(addr.to_owned()))?;
    stream.set_nodelay(true).map_err(|e| Error::io("tcp connect", e))?;
    Ok(stream)
}

/// Connects on the runtime that polls this future.
async fn open(addr: &str) -> io::Result<TcpStream> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if runtime::is_running() {
        return runtime::connect(addr).await.map(|s| TcpStream(Inner::Runtime(s)));
    }
    async_std::net::TcpStream::connect(addr).await.map(TcpStream::from)
}

/// Runs `future`, failing with [`ErrorKind::Timeout`] in `context` if it takes longer than
/// `timeout`. The future is dropped when the timer fires.
///
/// # Cancel safety
///
/// As cancel safe as `future` is: when the timer fires, `future` is dropped mid-way.
pub async fn with_timeout<T>(
    timeout: Duration,
    context: &'static str,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let timer = Timer::after(timeout);
    futures::pin_mut!(future);
    match futures::future::select(future, timer).await {
        futures::future::Either::Left((result, _)) => result,
        futures::future::Either::Right(_) => {
            Err(Error::new(ErrorKind::Timeout, context).with_detail(format!("no answer within {timeout:?}")))
        }
    }
}
