//! Readiness of a file descriptor the application owns (a window system's connection, a pipe,
//! an input device), so that one `block_on` can wait for it alongside the session's sockets.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use super::current;
use super::socket::{foreign, Registered};

/// A file descriptor watched for readability by the reactor of the running
/// [`block_on`](super::block_on).
///
/// It exists to put a toolkit's event loop on the session's thread: register the window
/// system's connection (X11's socket, Wayland's display fd), and wait for *either* the session
/// or the toolkit without polling on a timer. The descriptor is duplicated: the original stays
/// the caller's, and nothing is ever read from it here — readiness only tells the caller when
/// to run its own (nonblocking) event dispatch.
///
/// ```no_run
/// use std::os::fd::AsFd;
/// use async_rdp::runtime::{self, WatchedFd};
///
/// let (reader, _writer) = std::io::pipe()?;
/// runtime::block_on(async {
///     let watched = WatchedFd::new(reader.as_fd())?;
///     watched.readable().await?; // returns once the pipe has data (or is closed)
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct WatchedFd(Registered<OwnedFd>);

impl WatchedFd {
    /// Registers a duplicate of `fd` with the running reactor.
    ///
    /// # Errors
    ///
    /// Outside `block_on` (nothing would drive the wait), or when duplicating or registering
    /// the descriptor fails.
    pub fn new(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let reactor = current().ok_or_else(foreign)?;
        Ok(Self(Registered::new(reactor, fd.try_clone_to_owned()?)?))
    }

    /// Waits until the descriptor is readable (or hung up). Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Polls for readability: `Ready` when the descriptor has data (or is closed) now, else
    /// arranges for `cx`'s waker to be woken when it does.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_io(cx, false, |fd| is_readable(fd.as_fd()))
    }
}

/// A zero-timeout `poll(2)`: `Ok` when readable or hung up, `WouldBlock` otherwise.
fn is_readable(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};

    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, Some(&rustix::event::Timespec::default())) {
        Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
