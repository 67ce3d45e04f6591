//! Sockets on the reactor: a nonblocking TCP connect, and a registered stream whose reads
//! and writes wait on the reactor (and fail, saying why, when polled outside it).

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::reactor::{Interest, Reactor};
use super::{current, is_current};
use polling::Event;

/// A nonblocking file descriptor registered with one thread's reactor: a TCP socket (the
/// default), or any other descriptor an application watches ([`WatchedFd`](super::WatchedFd)).
pub(crate) struct Registered<T: AsFd = std::net::TcpStream> {
    pub(super) reactor: Arc<Reactor>,
    pub(super) key: usize,
    /// Never moved out: `Registered` implements `Drop`, which deregisters it before it closes
    /// (see `Registered::new`).
    pub(super) io: T,
}

impl<T: AsFd> Registered<T> {
    /// Registers `io` (already nonblocking, or never read here) with the reactor of the
    /// running `block_on`, with no interest yet.
    pub(super) fn new(reactor: Arc<Reactor>, io: T) -> io::Result<Self> {
        let key = {
            let mut state = reactor.lock();
            let key = state.next_key;
            state.next_key += 1;
            state.sockets.insert(key, Interest::default());
            key
        };
        // SAFETY: `Poller::add` requires the source to be deleted from the poller before it is
        // closed. The fd belongs to `io`, which is moved into the `Registered` built right
        // below (nothing between can fail or panic) and stays there until it drops: the field
        // is private, never handed out by value, and cannot be moved out of a type that
        // implements `Drop`. `Registered::drop` calls `Poller::delete` and runs before the
        // fields are dropped, i.e. before the fd is closed; the poller itself is kept alive
        // by the `Arc<Reactor>` field, dropped only after that. (Should `delete` ever fail,
        // closing the fd still removes it from the epoll set, and polling's epoll backend
        // keeps no per-fd state that could dangle.)
        #[allow(unsafe_code)]
        let added = unsafe { reactor.poller.add(&io.as_fd(), Event::none(key)) };
        if let Err(e) = added {
            reactor.lock().sockets.remove(&key);
            return Err(e);
        }
        Ok(Self { reactor, key, io })
    }

    /// Runs the nonblocking `op`; on `WouldBlock`, stores the waker for its direction and
    /// (re)arms the socket's interest, then returns `Pending`.
    pub(super) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if !is_current(&self.reactor) {
            return Poll::Ready(Err(foreign()));
        }
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                result => return Poll::Ready(result),
            }
        }
        let mut state = self.reactor.lock();
        let Some(interest) = state.sockets.get_mut(&self.key) else {
            return Poll::Ready(Err(io::Error::other(
                "async_rdp::runtime: the socket is not registered",
            )));
        };
        let slot = if write { &mut interest.write } else { &mut interest.read };
        let replaced = match slot {
            Some(stored) if stored.will_wake(cx.waker()) => None,
            _ => slot.replace(cx.waker().clone()),
        };
        // Both directions, since re-arming replaces the whole (oneshot) interest. If the
        // socket became ready between `op` and here, epoll reports it on the next wait:
        // EPOLL_CTL_MOD checks readiness as it re-arms, so no wake-up is lost.
        let event = Event::new(self.key, interest.read.is_some(), interest.write.is_some());
        // A replaced waker is dropped with the lock released (its drop could reach this
        // reactor again; the lock is not reentrant).
        drop(state);
        drop(replaced);
        match self.reactor.poller.modify(self.io.as_fd(), event) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Registered {
    pub(crate) fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, false, |mut io| io.read(buf))
    }

    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, false, |mut io| io.read_vectored(bufs))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, true, |mut io| io.write(buf))
    }

    pub(crate) fn poll_write_vectored(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, true, |mut io| io.write_vectored(bufs))
    }

    /// The socket as a std stream, for the calls that never wait (addresses, options,
    /// shutdown).
    pub(crate) fn get_ref(&self) -> &std::net::TcpStream {
        &self.io
    }

    /// Shuts down the write half (what `poll_close` means for TCP). It never waits, so it
    /// works outside the runtime too.
    pub(crate) fn close(&self) -> io::Result<()> {
        self.io.shutdown(Shutdown::Write)
    }
}

impl<T: AsFd> Drop for Registered<T> {
    fn drop(&mut self) {
        // Deregister before `io` closes the fd: the contract of `Poller::add` (see `new`).
        // Dropping works from any thread: the poller and the tables are thread-safe.
        let _ = self.reactor.poller.delete(self.io.as_fd());
        let interest = self.reactor.lock().sockets.remove(&self.key);
        // Its wakers are dropped outside the lock.
        drop(interest);
    }
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for Registered<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}

/// The error a registered stream gives when polled where its reactor is not being driven.
pub(super) fn foreign() -> io::Error {
    io::Error::other(
        "this TcpStream was opened inside async_rdp::runtime::block_on and can only be polled inside \
         runtime::block_on on the same thread: nothing drives its readiness here",
    )
}

/// Opens a TCP connection on the running reactor: `addr` is an IP literal with a port
/// (`127.0.0.1:3389`, `[::1]:3389`), resolved without any system call, or a `host:port`,
/// resolved with std's blocking resolver (`getaddrinfo`), which blocks the thread — and with
/// it the whole runtime — for as long as the lookup takes. Each address is tried in turn;
/// the error of the last one is returned if none connects.
///
/// Must be called inside [`block_on`].
pub(crate) async fn connect(addr: &str) -> io::Result<Registered> {
    let addrs: Vec<SocketAddr> = match addr.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(addr)?.collect(),
    };
    let mut last = None;
    for addr in addrs {
        match connect_one(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to no address")))
}

/// A nonblocking connect: `connect(2)` returns `EINPROGRESS`, the socket turns writable when
/// the handshake ends, and `SO_ERROR` then tells success from failure.
async fn connect_one(addr: SocketAddr) -> io::Result<Registered> {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    let reactor = current().ok_or_else(|| io::Error::other("async_rdp::runtime::connect outside block_on"))?;
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    // Close-on-exec like every socket std opens, set atomically with the socket itself.
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    // Registered before connecting, so that dropping this future at any point (a timeout)
    // deregisters and closes the socket, abandoning the attempt.
    let stream = Registered::new(reactor, std::net::TcpStream::from(fd))?;
    match rustix::net::connect(&stream.io, &addr) {
        // EINTR on a nonblocking connect: the handshake goes on in the background, as with
        // EINPROGRESS.
        Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    poll_fn(|cx| stream.poll_io(cx, true, connected)).await?;
    Ok(stream)
}

/// Whether a nonblocking connect has finished: `Ok` once connected, the connect error if it
/// failed, `WouldBlock` while the handshake is still going on.
pub(super) fn connected(io: &std::net::TcpStream) -> io::Result<()> {
    if let Some(e) = io.take_error()? {
        return Err(e);
    }
    match io.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}
