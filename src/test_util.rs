//! Mock streams and frame builders shared by the in-module tests.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};

/// What a [`ScriptStream`] does once its chunks run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Report end of stream.
    Eof,
    /// Stay pending forever (a stalled peer).
    Pending,
}

/// A stream that returns at most one scripted chunk per read, then EOF or pending forever.
#[derive(Debug)]
pub(crate) struct ScriptStream {
    pub(crate) chunks: VecDeque<Vec<u8>>,
    pub(crate) end: End,
    pub(crate) written: Vec<u8>,
    pub(crate) reads: usize,
}

impl ScriptStream {
    pub(crate) fn new(chunks: impl IntoIterator<Item = Vec<u8>>, end: End) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
            end,
            written: Vec::new(),
            reads: 0,
        }
    }

    /// `data` cut into chunks whose sizes come from a seeded generator (1..=max bytes).
    pub(crate) fn random_chunks(data: &[u8], seed: u64, max: usize, end: End) -> Self {
        let mut rng = XorShift(seed | 1);
        let mut chunks = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = (rng.next() as usize % max + 1).min(rest.len());
            chunks.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        Self::new(chunks, end)
    }
}

impl AsyncRead for ScriptStream {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.reads += 1;
        match self.chunks.pop_front() {
            Some(mut chunk) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.chunks.push_front(chunk.split_off(n));
                }
                Poll::Ready(Ok(n))
            }
            None if self.end == End::Eof => Poll::Ready(Ok(0)),
            None => Poll::Pending,
        }
    }
}

impl AsyncWrite for ScriptStream {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Accept at most 3 bytes per call so that callers must loop.
        let n = buf.len().min(3);
        self.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A small deterministic generator (xorshift64) so random tests replay from their seed.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A TPKT frame of `len` bytes in all ([T.123] 8), filled with `fill`.
pub(crate) fn x224_frame(len: usize, fill: u8) -> Vec<u8> {
    let len16 = u16::try_from(len).expect("test frame fits a TPKT length");
    let mut f = vec![0x03, 0x00];
    f.extend_from_slice(&len16.to_be_bytes());
    f.resize(len, fill);
    f
}

/// A fast-path output frame of `len` bytes in all ([MS-RDPBCGR] 2.2.9.1.2), short or long
/// length form as `len` requires.
pub(crate) fn fastpath_frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![0x00];
    if len < 0x80 {
        f.push(u8::try_from(len).expect("short form"));
    } else {
        let len16 = u16::try_from(len).expect("test frame fits 15 bits");
        assert!(len16 < 0x8000);
        f.extend_from_slice(&(len16 | 0x8000).to_be_bytes());
    }
    f.resize(len, fill);
    f
}
