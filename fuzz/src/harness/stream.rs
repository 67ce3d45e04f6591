//! In-memory streams for the targets: a reader that hands out its bytes in chunks of chosen
//! sizes (and can stall before each read), and a tap that records what a real stream reads.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};

/// Hands out `data` in chunks: the n-th read returns at most `sizes[n % sizes.len()]` bytes
/// (no limit but the caller's buffer when `sizes` is empty), then end of stream. With `stall`,
/// every read is first answered `Pending` once (the waker is woken), as a socket with nothing
/// ready yet would. Writes are accepted whole and counted.
#[derive(Debug)]
pub struct ChunkedStream<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: Vec<usize>,
    reads: usize,
    stall: bool,
    stalled: bool,
    /// How many times a read answered `Pending`.
    pub pendings: usize,
    /// How many bytes were written.
    pub written: usize,
}

impl<'a> ChunkedStream<'a> {
    /// A stream over `data`, read in chunks of `sizes` (each at least 1 byte).
    pub fn new(data: &'a [u8], sizes: Vec<usize>, stall: bool) -> Self {
        assert!(sizes.iter().all(|&s| s > 0), "harness: a chunk size of 0");
        Self {
            data,
            pos: 0,
            sizes,
            reads: 0,
            stall,
            stalled: false,
            pendings: 0,
            written: 0,
        }
    }

    /// How many bytes the stream has handed out so far.
    pub fn delivered(&self) -> usize {
        self.pos
    }
}

impl AsyncRead for ChunkedStream<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // A read into an empty buffer can only return 0, which means end of stream.
        assert!(!buf.is_empty(), "invariant: a read was given an empty buffer");
        if self.stall && !self.stalled {
            self.stalled = true;
            self.pendings += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.stalled = false;
        let limit = match self.sizes.len() {
            0 => usize::MAX,
            len => self.sizes[self.reads % len],
        };
        self.reads += 1;
        let n = limit.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for ChunkedStream<'_> {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Passes everything through to `inner` and appends every byte read to a shared log.
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    log: Rc<RefCell<Vec<u8>>>,
}

impl<S> Tap<S> {
    /// Records what is read from `inner` into `log`.
    pub fn new(inner: S, log: Rc<RefCell<Vec<u8>>>) -> Self {
        Self { inner, log }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.log.borrow_mut().extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
