//! Stream wrappers: one read/write trait pair over `futures::io`, in a `!Send` flavour (the
//! default), a `Send` one and a `Send + Sync` one, plus the replaying [`Prefixed`] stream.
//!
//! The wrappers differ only in the bounds they demand of the inner stream and in the auto traits
//! they promise, so code written against [`LocalStream`] never silently starts relying on `Send`.
//! Every method is poll-based: nothing is boxed and no future is allocated per read.

use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures::io::{AsyncRead, AsyncWrite};

/// The read half of the trait pair that [`Framed`](crate::framing::Framed) drives.
pub trait FramedRead {
    /// Reads into `buf`, returning how many bytes were written to it (0 at end of stream).
    ///
    /// Same contract as [`AsyncRead::poll_read`]: on `Pending` nothing was read.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

/// The write half of the trait pair that [`Framed`](crate::framing::Framed) drives.
pub trait FramedWrite {
    /// Writes some of `buf`, returning how many bytes were accepted.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes buffered bytes down to the transport.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Flushes and shuts the write direction down.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A wrapper that turns a `futures::io` stream into a [`FramedRead`]/[`FramedWrite`].
pub trait StreamWrapper: Sized {
    /// The wrapped stream.
    type Inner;
    /// The same kind of wrapper around another stream (used by [`Framed::split`](crate::framing::Framed::split)).
    type Rewrap<T>: StreamWrapper<Inner = T>;

    /// Wraps `inner`.
    fn from_inner(inner: Self::Inner) -> Self;
    /// Unwraps the stream.
    fn into_inner(self) -> Self::Inner;
    /// The wrapped stream.
    fn get_ref(&self) -> &Self::Inner;
    /// The wrapped stream, mutably.
    fn get_mut(&mut self) -> &mut Self::Inner;
}

macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident { $($marker:ident: $marker_ty:ty)? } where $($bound:path),*) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<S> {
            inner: S,
            $($marker: $marker_ty,)?
        }

        impl<S> StreamWrapper for $name<S> {
            type Inner = S;
            type Rewrap<T> = $name<T>;

            fn from_inner(inner: S) -> Self {
                Self { inner, $($marker: PhantomData,)? }
            }
            fn into_inner(self) -> S {
                self.inner
            }
            fn get_ref(&self) -> &S {
                &self.inner
            }
            fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }
        }

        impl<S> FramedRead for $name<S>
        where
            S: AsyncRead + Unpin $(+ $bound)*,
        {
            fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_read(cx, buf)
            }
        }

        impl<S> FramedWrite for $name<S>
        where
            S: AsyncWrite + Unpin $(+ $bound)*,
        {
            fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_close(cx)
            }
        }
    };
}

wrapper!(
    /// The default wrapper: accepts any `Unpin` stream and is itself neither `Send` nor `Sync`.
    ///
    /// This is what single-threaded applications and the examples use. It is deliberately
    /// `!Send` even around a `Send` stream, so that code built on it keeps working when the
    /// stream is swapped for one that is `!Send` (an `Rc`-based transport, say).
    ///
    /// ```compile_fail
    /// fn assert_send<T: Send>() {}
    /// assert_send::<async_rdp::LocalStream<std::io::Cursor<Vec<u8>>>>();
    /// ```
    LocalStream { _not_send: PhantomData<*const ()> } where
);
wrapper!(
    /// A wrapper for `Send` streams that may move between threads (not share).
    SendStream {} where Send
);
wrapper!(
    /// A wrapper for `Send + Sync` streams.
    SyncStream {} where Send, Sync
);

/// A stream that first yields bytes buffered earlier, then reads from the inner stream.
///
/// This is how bytes read ahead by a [`Framed`](crate::framing::Framed) before a TLS upgrade reach the
/// TLS layer: they are TLS records and must be replayed into it, never handed to the post-TLS
/// framing as plaintext. Writes go straight to the inner stream.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: BytesMut,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Replays `prefix` before reading from `inner`.
    pub fn new(inner: S, prefix: BytesMut) -> Self {
        Self { prefix, inner }
    }

    /// Bytes of the prefix not yet read.
    pub fn pending_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner stream and the prefix bytes not yet read.
    pub fn into_inner(self) -> (S, BytesMut) {
        (self.inner, self.prefix)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::{AsyncReadExt, Cursor};

    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}

    #[test]
    fn auto_traits() {
        assert_send::<SendStream<Cursor<Vec<u8>>>>();
        assert_send::<SyncStream<Cursor<Vec<u8>>>>();
        assert_sync::<SyncStream<Cursor<Vec<u8>>>>();
        assert_send::<crate::framing::SendFramed<Cursor<Vec<u8>>>>();
        assert_sync::<crate::framing::SyncFramed<Cursor<Vec<u8>>>>();
    }

    #[test]
    fn prefixed_replays_then_reads_inner() {
        futures::executor::block_on(async {
            let mut s = Prefixed::new(Cursor::new(b"world".to_vec()), BytesMut::from(&b"hello "[..]));
            let mut small = [0u8; 4];
            assert_eq!(s.read(&mut small).await.unwrap(), 4);
            assert_eq!(&small, b"hell");
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"o world");
            assert!(s.pending_prefix().is_empty());
        });
    }
}
