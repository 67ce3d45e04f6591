//! `Framed<S>`: reads whole RDP frames (TPKT/X.224, fast-path, or whatever a connector hint
//! describes) from a stream into one reusable buffer, and writes whole PDUs.
//!
//! The buffer is laid out as `[frame bytes | scratch]`. Socket reads land directly in the scratch
//! tail, which is kept initialised so that no `unsafe` and no bounce buffer is needed: each byte
//! of scratch is zeroed once when the buffer grows, then read into once. Complete frames are
//! split off the front without copying.

use std::future::poll_fn;
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::io::{AsyncRead, AsyncWrite};
use ironrdp_connector::MonotonicInstant;
use ironrdp_pdu::{Action, PduHint};

use super::stream::{FramedRead, FramedWrite, LocalStream, SendStream, StreamWrapper, SyncStream};
use crate::{Error, ErrorKind, Result};

/// The largest frame accepted by default: a TPKT length field is 16 bits, and a fast-path
/// length is 15 ([MS-RDPBCGR] 2.2.9.1.2), so no RDP frame is longer than this.
///
/// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
pub const MAX_FRAME_SIZE: usize = u16::MAX as usize;

/// How much room a read is given when the frame being read does not need more: big enough to
/// take many small frames in one system call, small enough for a board with little memory.
pub const READ_CHUNK: usize = 16 * 1024;

/// How many bytes of fast-path output
/// [`read_by_hint_keeping_output`](Framed::read_by_hint_keeping_output) keeps while it waits
/// for an activation frame: one uncompressed 32-bit picture of 2560x1600 (a server that draws
/// early does so in the short time the client takes to finish the sequence), and a bound on
/// what a hostile server can make the client buffer.
pub const MAX_HELD_OUTPUT: usize = 16 << 20;

/// The shortest TPKT frame: its own 4-byte header ([T.123] 8).
const TPKT_HEADER_LEN: usize = 4;

/// A frame lent by the buffer, its action, and when the read that completed it returned.
pub(crate) type LentFrame<'a> = (Action, &'a [u8], Option<MonotonicInstant>);

/// A [`Framed`] over the default `!Send` [`LocalStream`] wrapper.
pub type LocalFramed<S> = Framed<LocalStream<S>>;
/// A [`Framed`] over the `Send` [`SendStream`] wrapper.
pub type SendFramed<S> = Framed<SendStream<S>>;
/// A [`Framed`] over the `Send + Sync` [`SyncStream`] wrapper.
pub type SyncFramed<S> = Framed<SyncStream<S>>;

/// A stream plus the buffer that assembles frames from it.
///
/// ```no_run
/// # futures::executor::block_on(async {
/// use async_rdp::framing::LocalFramed;
/// use async_std::net::TcpStream;
///
/// let tcp = TcpStream::connect("127.0.0.1:3389").await?;
/// let mut framed = LocalFramed::new(tcp);
/// let (action, frame) = framed.read_pdu().await?;
/// println!("{action:?} frame of {} bytes", frame.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug)]
pub struct Framed<S> {
    stream: S,
    /// `buf[..start]` holds frames already returned by reference, `buf[start..start + filled]`
    /// received bytes not yet returned, and the rest is initialised scratch space that the
    /// next read writes into.
    buf: BytesMut,
    start: usize,
    filled: usize,
    max_frame_size: usize,
    last_read_at: Option<MonotonicInstant>,
    /// Fast-path output kept during an activation sequence: whole frames at the front of the
    /// unread bytes ([`read_by_hint_keeping_output`](Framed::read_by_hint_keeping_output)).
    kept: Kept,
}

/// What an activation read has kept so far.
#[derive(Debug, Default, Clone, Copy)]
struct Kept {
    /// Bytes of whole kept frames at the front of the unread bytes.
    len: usize,
    /// A frame was dropped past [`MAX_HELD_OUTPUT`]: later ones are dropped too, so that the
    /// session never sees output with a hole in it.
    dropping: bool,
}

impl<S> Framed<S> {
    /// The bytes received but not yet returned as a frame.
    pub fn peek(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.filled]
    }

    /// When the most recent socket read that returned data completed, on this crate's
    /// monotonic clock; `None` before the first read.
    ///
    /// A frame served from the buffer arrived at the read that filled the buffer, so this is
    /// what the connection sequence is given as the arrival time of every frame.
    pub fn last_read_at(&self) -> Option<MonotonicInstant> {
        self.last_read_at
    }

    /// The frame bound in force (see [`with_max_frame_size`](Self::with_max_frame_size)).
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Sets the largest frame accepted, [`MAX_FRAME_SIZE`] by default.
    ///
    /// The buffer never grows past this bound plus one read ([`READ_CHUNK`]), plus the
    /// fast-path output kept during an activation sequence ([`MAX_HELD_OUTPUT`]); a frame
    /// header announcing more, or a hint that keeps asking for more bytes past it, is an error.
    #[must_use]
    pub fn with_max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size.max(TPKT_HEADER_LEN);
        self
    }

    /// The buffer's capacity from its current start: buffered bytes plus room to read into.
    ///
    /// Frames already returned may still share the same allocation until they are dropped,
    /// so the allocation itself can be larger by what they hold.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn take(&mut self, len: usize) -> BytesMut {
        debug_assert!(len <= self.filled);
        self.forget_returned();
        self.filled -= len;
        self.kept.len = self.kept.len.saturating_sub(len);
        self.buf.split_to(len)
    }

    /// Returns the next `len` buffered bytes by reference: they stay in the buffer (and stay
    /// initialised, so reading into that space later needs no zeroing) until the next read.
    fn take_ref(&mut self, len: usize) -> &[u8] {
        debug_assert!(len <= self.filled);
        let start = self.start;
        self.start += len;
        self.filled -= len;
        self.kept.len = self.kept.len.saturating_sub(len);
        &self.buf[start..start + len]
    }

    /// Drops the frames returned by reference from the front of the buffer, so that
    /// `buf[..filled]` is the buffered data. Cheap: it moves the view, not the bytes.
    fn forget_returned(&mut self) {
        if self.start > 0 {
            bytes::Buf::advance(&mut self.buf, self.start);
            self.start = 0;
        }
    }
}

impl<S: StreamWrapper> Framed<S> {
    /// Wraps a stream with an empty buffer.
    pub fn new(stream: S::Inner) -> Self {
        Self::new_with_leftover(stream, BytesMut::new())
    }

    /// Wraps a stream whose first bytes were already read into `leftover` (by an earlier
    /// `Framed`, for instance); they are returned before anything read from the stream.
    pub fn new_with_leftover(stream: S::Inner, leftover: BytesMut) -> Self {
        let filled = leftover.len();
        Self {
            stream: S::from_inner(stream),
            buf: leftover,
            start: 0,
            filled,
            max_frame_size: MAX_FRAME_SIZE,
            last_read_at: None,
            kept: Kept::default(),
        }
    }

    /// Returns the stream and the bytes buffered but not yet returned.
    pub fn into_inner(mut self) -> (S::Inner, BytesMut) {
        self.forget_returned();
        let mut buf = self.buf;
        buf.truncate(self.filled);
        (self.stream.into_inner(), buf)
    }

    /// Returns the stream, or an [`ErrorKind::Leftover`] error if bytes are still buffered
    /// (they would be lost).
    pub fn into_inner_no_leftover(self) -> Result<S::Inner> {
        match self.filled {
            0 => Ok(self.stream.into_inner()),
            n => Err(Error::new(ErrorKind::Leftover, "release stream")
                .with_detail(format!("{n} received bytes were not consumed and would be lost"))),
        }
    }

    /// The stream and the buffered bytes.
    pub fn get_inner(&self) -> (&S::Inner, &[u8]) {
        (self.stream.get_ref(), &self.buf[self.start..self.start + self.filled])
    }

    /// The stream (mutably) and the buffered bytes.
    pub fn get_inner_mut(&mut self) -> (&mut S::Inner, &[u8]) {
        (self.stream.get_mut(), &self.buf[self.start..self.start + self.filled])
    }
}

impl<S: FramedRead> Framed<S> {
    /// Reads one whole RDP frame, X.224 (TPKT) or fast-path, told apart by its first byte.
    ///
    /// Errors: [`ErrorKind::Closed`] if the peer closed the connection between frames,
    /// [`ErrorKind::UnexpectedEof`] (saying how many bytes were missing) if it closed inside
    /// one, [`ErrorKind::InvalidFrame`] for a malformed header, [`ErrorKind::FrameTooLarge`]
    /// past the frame bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, bytes already read stay in
    /// the buffer and the next call picks up where this one stopped.
    pub async fn read_pdu(&mut self) -> Result<(Action, BytesMut)> {
        poll_fn(|cx| self.poll_read_pdu(cx)).await
    }

    /// The poll form of [`read_pdu`](Self::read_pdu), for hand-written futures.
    pub fn poll_read_pdu(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Action, BytesMut)>> {
        let (action, len) = ready!(self.poll_whole_frame(cx))?;
        Poll::Ready(Ok((action, self.take(len))))
    }

    /// Like [`read_pdu`](Self::read_pdu), but the frame is lent, not handed over: it borrows
    /// the buffer until the next call. This is the session loop's read: no reference count is
    /// touched, and since the frame's bytes never leave the buffer, the space they took is
    /// read into again without being zeroed first. Use [`read_pdu`](Self::read_pdu) to keep
    /// a frame.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use async_rdp::framing::LocalFramed;
    /// use futures::io::Cursor;
    ///
    /// // Two fast-path frames of 4 bytes each.
    /// let mut framed = LocalFramed::new(Cursor::new(vec![0x00, 0x04, 0xAA, 0xBB, 0x00, 0x04, 0xCC, 0xDD]));
    /// let (_action, frame) = framed.read_pdu_ref().await?;
    /// assert_eq!(frame, [0x00, 0x04, 0xAA, 0xBB]);
    /// let (_action, frame) = framed.read_pdu_ref().await?;
    /// assert_eq!(frame, [0x00, 0x04, 0xCC, 0xDD]);
    /// # Ok::<(), async_rdp::Error>(())
    /// # });
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`read_pdu`](Self::read_pdu).
    pub async fn read_pdu_ref(&mut self) -> Result<(Action, &[u8])> {
        let (action, len) = poll_fn(|cx| self.poll_whole_frame(cx)).await?;
        Ok((action, self.take_ref(len)))
    }

    /// The poll form of [`read_pdu_ref`](Self::read_pdu_ref).
    pub fn poll_read_pdu_ref(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Action, &[u8])>> {
        self.poll_read_pdu_ref_at(cx)
            .map_ok(|(action, frame, _)| (action, frame))
    }

    /// [`poll_read_pdu_ref`](Self::poll_read_pdu_ref) with the frame's arrival time (which
    /// the caller cannot ask for separately while it holds the frame).
    pub(crate) fn poll_read_pdu_ref_at(&mut self, cx: &mut Context<'_>) -> Poll<Result<LentFrame<'_>>> {
        let (action, len) = ready!(self.poll_whole_frame(cx))?;
        let received_at = self.last_read_at;
        Poll::Ready(Ok((action, self.take_ref(len), received_at)))
    }

    /// Reads until a whole TPKT or fast-path frame is buffered; returns its action and length.
    fn poll_whole_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Action, usize)>> {
        self.shrink_after_kept_output();
        loop {
            let info = ironrdp_pdu::find_size(self.peek()).map_err(|e| {
                Error::new(ErrorKind::InvalidFrame, "read frame")
                    .with_detail(format!("malformed frame header {:02x?}", head(self.peek())))
                    .with_source(e)
            })?;
            match info {
                Some(info) => {
                    if info.action == Action::X224 && info.length < TPKT_HEADER_LEN {
                        return Poll::Ready(Err(Error::new(ErrorKind::InvalidFrame, "read frame")
                            .with_detail(format!("TPKT length {} is shorter than its header", info.length))));
                    }
                    self.check_frame_len(info.length, "read frame")?;
                    if self.filled >= info.length {
                        return Poll::Ready(Ok((info.action, info.length)));
                    }
                    ready!(self.poll_fill(cx, Some(info.length), "read frame"))?;
                }
                None => {
                    ready!(self.poll_fill(cx, None, "read frame"))?;
                }
            }
        }
    }

    /// Once the output kept during an activation sequence has been read, gives back what the
    /// buffer grew for it, rather than keeping up to [`MAX_HELD_OUTPUT`] for the session's
    /// life. (Frames lent earlier are done with: this runs before the next one is lent.)
    fn shrink_after_kept_output(&mut self) {
        let steady = self.max_frame_size + 2 * READ_CHUNK;
        if self.kept.len > 0 || self.buf.len() - self.start <= steady || self.filled > self.max_frame_size {
            return;
        }
        let mut smaller = BytesMut::with_capacity(self.filled + READ_CHUNK);
        smaller.extend_from_slice(self.peek());
        smaller.resize(self.filled + READ_CHUNK, 0);
        self.buf = smaller;
        self.start = 0;
    }

    /// Reads the next frame as described by a connection-sequence hint (X.224, CredSSP, ...).
    ///
    /// Frames the hint reports as not matching are dropped (logged at debug level). A hint
    /// that keeps asking for more bytes fails with [`ErrorKind::FrameTooLarge`] once the
    /// frame bound is passed, so a malformed reply cannot make the buffer grow without bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`read_pdu`](Self::read_pdu).
    pub async fn read_by_hint(&mut self, hint: &dyn PduHint) -> Result<Bytes> {
        poll_fn(|cx| self.poll_read_by_hint(cx, hint)).await
    }

    /// The poll form of [`read_by_hint`](Self::read_by_hint).
    pub fn poll_read_by_hint(&mut self, cx: &mut Context<'_>, hint: &dyn PduHint) -> Poll<Result<Bytes>> {
        self.poll_read_hinted(cx, hint, false)
    }

    /// [`read_by_hint`](Self::read_by_hint) for the activation sequence: fast-path frames that
    /// arrive before the frame the hint waits for stay buffered, in order, and are what the next
    /// [`read_pdu`](Self::read_pdu) returns once the sequence is done.
    ///
    /// A server may start drawing as soon as it has the client's Confirm Active, before it
    /// sends its own finalization PDUs (xrdp does after a resize), and a RemoteFX stream sends
    /// its codec headers only in its first frame: dropping that frame would make every later
    /// one undecodable. What is kept is bounded by [`MAX_HELD_OUTPUT`]: the fast-path frame
    /// that does not fit and every one after it until the awaited frame are dropped (the session
    /// never sees output with a hole in it), as is any other frame the hint does not expect.
    /// The kept output is found again at the next call without being read twice, and once the
    /// session has read it the buffer gives back the room it took.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`read_pdu`](Self::read_pdu).
    pub async fn read_by_hint_keeping_output(&mut self, hint: &dyn PduHint) -> Result<Bytes> {
        poll_fn(|cx| self.poll_read_hinted(cx, hint, true)).await
    }

    /// The poll form of [`read_by_hint_keeping_output`](Self::read_by_hint_keeping_output).
    pub fn poll_read_by_hint_keeping_output(
        &mut self,
        cx: &mut Context<'_>,
        hint: &dyn PduHint,
    ) -> Poll<Result<Bytes>> {
        self.poll_read_hinted(cx, hint, true)
    }

    /// Finds the first frame after the kept output that the hint expects. The frames before
    /// it are kept (fast-path output, when `keep_output`, within the bound) or dropped.
    fn poll_read_hinted(&mut self, cx: &mut Context<'_>, hint: &dyn PduHint, keep_output: bool) -> Poll<Result<Bytes>> {
        // Dropped bytes right after the kept ones: removed in one move, before the next read,
        // with the awaited frame, or here when the scan stops on an error, so that a flood of
        // small frames costs linear time and an error leaves only the bytes it is about.
        let mut dropped = 0;
        let scanned = self.scan_hinted(cx, hint, keep_output, &mut dropped);
        self.remove_after_kept(dropped);
        scanned
    }

    /// The scan of [`poll_read_hinted`](Self::poll_read_hinted); `dropped` is what it skipped
    /// and has not removed yet.
    fn scan_hinted(
        &mut self,
        cx: &mut Context<'_>,
        hint: &dyn PduHint,
        keep_output: bool,
        dropped: &mut usize,
    ) -> Poll<Result<Bytes>> {
        loop {
            let at = self.kept.len + *dropped;
            let rest = &self.peek()[at..];
            let found = hint.find_size(rest).map_err(|e| {
                Error::new(ErrorKind::InvalidFrame, "read frame by hint")
                    .with_detail(format!("{hint:?} rejected {:02x?}", head(rest)))
                    .with_source(e)
            })?;
            let Some((matched, len)) = found else {
                if self.filled - at >= self.max_frame_size {
                    return Poll::Ready(Err(Error::new(ErrorKind::FrameTooLarge, "read frame by hint")
                        .with_detail(format!(
                            "{hint:?} still wants more after {} bytes (bound {})",
                            self.filled - at,
                            self.max_frame_size
                        ))));
                }
                self.remove_after_kept(std::mem::take(dropped));
                ready!(self.poll_fill(cx, None, "read frame by hint"))?;
                continue;
            };
            if len == 0 {
                // Taking a zero-length frame consumes nothing, so the loop would spin forever
                // without ever reading; refuse instead of hanging.
                return Poll::Ready(Err(Error::new(ErrorKind::InvalidFrame, "read frame by hint")
                    .with_detail(format!("{hint:?} reported a zero-length frame"))));
            }
            self.check_frame_len(len, "read frame by hint")?;
            if self.filled < at + len {
                self.remove_after_kept(std::mem::take(dropped));
                ready!(self.poll_fill(cx, Some(self.kept.len + len), "read frame by hint"))?;
                continue;
            }
            if matched {
                return Poll::Ready(Ok(self.cut_awaited(std::mem::take(dropped), len)));
            }
            let output = keep_output && is_fast_path(rest, len);
            if output && !self.kept.dropping && self.kept.len + len <= MAX_HELD_OUTPUT {
                self.remove_after_kept(std::mem::take(dropped));
                self.kept.len += len;
                continue;
            }
            self.kept.dropping |= output;
            *dropped += len;
            log::debug!("Dropped a {len}-byte frame that {hint:?} does not expect");
        }
    }

    /// Takes the awaited frame of `len` bytes, found after the kept output and `dropped`
    /// bytes, out of the buffer with those dropped bytes; the kept output stays in front.
    fn cut_awaited(&mut self, dropped: usize, len: usize) -> Bytes {
        self.kept.dropping = false;
        if self.kept.len == 0 {
            drop(self.take(dropped));
            return self.take(len).freeze();
        }
        log::debug!(
            "Kept {} bytes of fast-path output that came before the awaited frame",
            self.kept.len
        );
        let from = self.start + self.kept.len + dropped;
        let frame = Bytes::copy_from_slice(&self.buf[from..from + len]);
        self.remove_after_kept(dropped + len);
        frame
    }

    /// Removes `len` buffered bytes that follow the kept output. The tail moves over them; the
    /// bytes after it stay initialised scratch.
    fn remove_after_kept(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        if self.kept.len == 0 {
            drop(self.take(len));
            return;
        }
        let from = self.start + self.kept.len;
        self.buf.copy_within(from + len..self.start + self.filled, from);
        self.filled -= len;
    }

    /// Waits until at least one more byte is buffered, without consuming anything.
    ///
    /// Useful to wait for input while another future owns the writer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read are kept in the buffer.
    pub async fn fill_buf(&mut self) -> Result<&[u8]> {
        poll_fn(|cx| self.poll_fill(cx, None, "read")).await?;
        Ok(self.peek())
    }

    fn check_frame_len(&self, len: usize, context: &'static str) -> Result<()> {
        if len > self.max_frame_size {
            return Err(Error::new(ErrorKind::FrameTooLarge, context).with_detail(format!(
                "frame of {len} bytes exceeds the bound of {}",
                self.max_frame_size
            )));
        }
        Ok(())
    }

    /// Reads once into the scratch tail. `frame_len` is the length of the frame being
    /// assembled, if its header has been seen; it sizes the read and the EOF message.
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        frame_len: Option<usize>,
        context: &'static str,
    ) -> Poll<Result<usize>> {
        // Room for the rest of the frame being assembled, if its length is known. Grow only
        // when the scratch cannot hold that or has shrunk below a quarter chunk, and then by
        // at least a whole chunk, so that a large frame arriving in small reads grows the
        // buffer once, not once per read.
        let needed = frame_len.map_or(0, |len| len.saturating_sub(self.filled));
        let room = needed.max(READ_CHUNK / 4);
        if self.start > 0 && self.buf.len() - self.start - self.filled < room && self.buf.len() - self.filled >= room {
            // The frames lent by reference are done with: move the partial frame behind them
            // to the front. The space after it is still initialised, so nothing is zeroed.
            self.buf.copy_within(self.start..self.start + self.filled, 0);
            self.start = 0;
        }
        if self.buf.len() - self.start - self.filled < room {
            self.forget_returned();
            let mut want = needed.max(READ_CHUNK);
            if self.filled > self.max_frame_size {
                // Only output kept during an activation sequence gets here: grow it
                // geometrically, within its bound, so keeping n bytes copies O(n), not O(n²).
                let bound = MAX_HELD_OUTPUT + self.max_frame_size + READ_CHUNK;
                want = want.max(self.filled.min(bound.saturating_sub(self.filled)));
            }
            // Drop the stale scratch first so that compacting moves only buffered frame bytes.
            self.buf.truncate(self.filled);
            if !self.buf.try_reclaim(want) {
                // `BytesMut::reserve` may double the allocation; allocate exactly what the
                // frame bound allows instead, so the buffer never exceeds it.
                let mut grown = BytesMut::with_capacity(self.filled + want);
                grown.extend_from_slice(&self.buf);
                self.buf = grown;
            }
            // The new room is zeroed once here, then read into; it stays initialised.
            self.buf.resize(self.filled + want, 0);
        }
        let end = self.start + self.filled;
        let n = ready!(self.stream.poll_read(cx, &mut self.buf[end..])).map_err(|e| Error::io(context, e))?;
        if n == 0 {
            return Poll::Ready(Err(self.eof_error(frame_len, context)));
        }
        self.filled += n;
        self.last_read_at = Some(monotonic_now());
        Poll::Ready(Ok(n))
    }

    fn eof_error(&self, frame_len: Option<usize>, context: &'static str) -> Error {
        match (frame_len, self.filled) {
            (_, 0) => Error::new(ErrorKind::Closed, context),
            (Some(len), got) => Error::new(ErrorKind::UnexpectedEof, context).with_detail(format!(
                "peer closed the connection {} bytes short of a {len}-byte frame ({got} received)",
                len - got
            )),
            (None, got) => Error::new(ErrorKind::UnexpectedEof, context).with_detail(format!(
                "peer closed the connection inside a frame header ({got} bytes received)"
            )),
        }
    }
}

impl<S: FramedWrite> Framed<S> {
    /// Writes some of `buf`, returning how many bytes the stream accepted; the building block
    /// for callers that keep their own queue of outgoing bytes across cancellations.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize>> {
        self.stream.poll_write(cx, buf).map_err(|e| Error::io("write", e))
    }

    /// The poll form of [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.stream.poll_flush(cx).map_err(|e| Error::io("flush", e))
    }

    /// Writes all of `buf` and flushes it, so that the PDU leaves now.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped, part of `buf` may have been written and the
    /// peer will see a truncated PDU. Drive writes to completion.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let mut written = 0;
        while written < buf.len() {
            let n = poll_fn(|cx| self.stream.poll_write(cx, &buf[written..]))
                .await
                .map_err(|e| Error::io("write frame", e))?;
            if n == 0 {
                return Err(Error::io("write frame", std::io::ErrorKind::WriteZero.into()));
            }
            written += n;
        }
        self.flush().await
    }

    /// Flushes buffered writes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the data buffered in the stream.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.stream.poll_flush(cx))
            .await
            .map_err(|e| Error::io("flush", e))
    }

    /// Flushes and shuts down the write direction (a TCP FIN, a TLS close_notify).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense that it may be called again to finish the close.
    pub async fn close(&mut self) -> Result<()> {
        poll_fn(|cx| self.stream.poll_close(cx))
            .await
            .map_err(|e| Error::io("close", e))
    }
}

impl<S> Framed<S>
where
    S: StreamWrapper,
    S::Inner: AsyncRead + AsyncWrite,
{
    /// Splits into a read half, which keeps the buffer, and a write half, usable from two
    /// tasks on one thread (or two threads, with the `Send` wrappers).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use async_rdp::framing::LocalFramed;
    /// use futures::io::Cursor;
    ///
    /// let framed = LocalFramed::new(Cursor::new(vec![0x03, 0x00, 0x00, 0x04]));
    /// let (mut reader, writer) = framed.split();
    /// let (_action, frame) = reader.read_pdu().await?;
    /// assert_eq!(frame.len(), 4);
    /// let _framed = reader.unsplit(writer).expect("halves of one stream");
    /// # Ok::<(), async_rdp::Error>(())
    /// # });
    /// ```
    #[expect(
        clippy::type_complexity,
        reason = "the halves are named by the wrapper they came from"
    )]
    pub fn split(
        mut self,
    ) -> (
        Framed<S::Rewrap<futures::io::ReadHalf<S::Inner>>>,
        Framed<S::Rewrap<futures::io::WriteHalf<S::Inner>>>,
    ) {
        self.forget_returned();
        let max_frame_size = self.max_frame_size;
        let last_read_at = self.last_read_at;
        let kept = self.kept;
        let (read, write) = futures::io::AsyncReadExt::split(self.stream.into_inner());
        let reader = Framed {
            stream: <S::Rewrap<_> as StreamWrapper>::from_inner(read),
            buf: self.buf,
            start: 0,
            filled: self.filled,
            max_frame_size,
            last_read_at,
            kept,
        };
        let writer = Framed::<S::Rewrap<_>>::new(write);
        (reader, writer)
    }
}

impl<R, T> Framed<R>
where
    R: StreamWrapper<Inner = futures::io::ReadHalf<T>>,
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Joins halves made by [`split`](Self::split) back into one `Framed` holding exactly
    /// the bytes the reader had buffered. Halves of different streams are returned unchanged.
    #[expect(clippy::type_complexity, reason = "both halves are handed back on mismatch")]
    pub fn unsplit<W>(self, writer: Framed<W>) -> std::result::Result<Framed<R::Rewrap<T>>, Box<(Self, Framed<W>)>>
    where
        W: StreamWrapper<Inner = futures::io::WriteHalf<T>>,
    {
        let Framed {
            stream,
            buf,
            start,
            filled,
            max_frame_size,
            last_read_at,
            kept,
        } = self;
        let read = stream.into_inner();
        let write = writer.stream.into_inner();
        match read.reunite(write) {
            Ok(inner) => Ok(Framed {
                stream: <R::Rewrap<T> as StreamWrapper>::from_inner(inner),
                buf,
                start,
                filled,
                max_frame_size,
                last_read_at,
                kept,
            }),
            Err(futures::io::ReuniteError(read, write)) => Err(Box::new((
                Framed {
                    stream: R::from_inner(read),
                    buf,
                    start,
                    filled,
                    max_frame_size,
                    last_read_at,
                    kept,
                },
                Framed::new(write),
            ))),
        }
    }
}

/// Whether the `len` bytes at the front of `bytes` are one fast-path frame.
fn is_fast_path(bytes: &[u8], len: usize) -> bool {
    matches!(ironrdp_pdu::find_size(bytes), Ok(Some(info)) if info.action == Action::FastPath && info.length == len)
}

/// The first bytes of a buffer, for error messages about a bad header.
fn head(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(8)]
}

/// This crate's monotonic clock for [`MonotonicInstant`]s: milliseconds since first use.
fn monotonic_now() -> MonotonicInstant {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    MonotonicInstant::from_millis(u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::Waker;

    use futures::executor::block_on;
    use futures::FutureExt;

    use super::*;
    use crate::test_util::{fastpath_frame, x224_frame, End, ScriptStream};

    type Test = LocalFramed<ScriptStream>;

    fn framed(chunks: Vec<Vec<u8>>, end: End) -> Test {
        LocalFramed::new(ScriptStream::new(chunks, end))
    }

    /// A mix of sizes and both kinds, including both fast-path length forms and the largest
    /// TPKT frame.
    fn sample_frames() -> Vec<Vec<u8>> {
        vec![
            x224_frame(7, 1),
            fastpath_frame(2, 2),
            fastpath_frame(0x7f, 3),
            fastpath_frame(0x80, 4),
            x224_frame(1500, 5),
            fastpath_frame(0x7fff, 6),
            x224_frame(MAX_FRAME_SIZE, 7),
            fastpath_frame(3, 8),
        ]
    }

    fn read_all(f: &mut Test, count: usize) -> Vec<Vec<u8>> {
        block_on(async {
            let mut out = Vec::new();
            for _ in 0..count {
                let (action, frame) = f.read_pdu().await.expect("frame");
                let expected = if frame[0] == 0x03 {
                    Action::X224
                } else {
                    Action::FastPath
                };
                assert_eq!(action, expected);
                out.push(frame.to_vec());
            }
            out
        })
    }

    #[test]
    fn every_prefix_needs_more() {
        for frame in sample_frames() {
            for k in 0..frame.len() {
                let mut f = Test::new_with_leftover(ScriptStream::new([], End::Pending), BytesMut::from(&frame[..k]));
                let mut cx = Context::from_waker(Waker::noop());
                assert!(f.poll_read_pdu(&mut cx).is_pending(), "prefix {k} of {}", frame.len());
                assert_eq!(f.peek(), &frame[..k], "nothing consumed");
            }
            let mut f = Test::new_with_leftover(ScriptStream::new([], End::Pending), BytesMut::from(&frame[..]));
            let mut cx = Context::from_waker(Waker::noop());
            match f.poll_read_pdu(&mut cx) {
                Poll::Ready(Ok((_, got))) => assert_eq!(got, frame),
                other => panic!("whole frame not returned: {other:?}"),
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let frames = sample_frames();
        let data: Vec<u8> = frames.concat();
        let mut f = framed(data.iter().map(|b| vec![*b]).collect(), End::Eof);
        assert_eq!(read_all(&mut f, frames.len()), frames);
        let err = block_on(f.read_pdu()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
    }

    #[test]
    fn seeded_random_chunks() {
        let frames = sample_frames();
        let data: Vec<u8> = frames.concat();
        for seed in 1..=16 {
            for max in [1, 5, 100, 4096, 70_000] {
                let mut f = LocalFramed::new(ScriptStream::random_chunks(&data, seed, max, End::Eof));
                assert_eq!(read_all(&mut f, frames.len()), frames, "seed {seed} max {max}");
            }
        }
    }

    #[test]
    fn several_frames_in_one_read() {
        let frames = vec![x224_frame(10, 1), fastpath_frame(20, 2), x224_frame(30, 3)];
        let mut f = framed(vec![frames.concat()], End::Eof);
        assert_eq!(read_all(&mut f, 3), frames);
        assert_eq!(f.get_inner().0.reads, 1, "one read served all three frames");
    }

    #[test]
    fn cancelled_read_resumes() {
        let frame = fastpath_frame(1000, 9);
        let mut f = framed(vec![frame[..300].to_vec()], End::Pending);
        {
            let mut fut = pin!(f.read_pdu());
            assert!(fut.as_mut().now_or_never().is_none());
        } // dropped mid-frame
        assert_eq!(f.peek(), &frame[..300], "bytes read before the cancel are kept");
        f.get_inner_mut().0.chunks.push_back(frame[300..].to_vec());
        let (_, got) = block_on(f.read_pdu()).unwrap();
        assert_eq!(got, frame);
    }

    #[test]
    fn eof_mid_frame_says_how_much_is_missing() {
        let frame = x224_frame(100, 1);
        let mut f = framed(vec![frame[..60].to_vec()], End::Eof);
        let err = block_on(f.read_pdu()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("40 bytes short of a 100-byte frame"), "{err}");
        assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::UnexpectedEof);

        let mut f = framed(vec![vec![0x00]], End::Eof);
        let err = block_on(f.read_pdu()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("header"), "{err}");
    }

    #[test]
    fn garbage_headers_are_errors() {
        for garbage in [
            vec![0x01, 0x02, 0x03, 0x04],
            vec![0x03, 0x00, 0x00, 0x02],
            vec![0x02, 0x00, 0x00, 0x10],
            vec![0x04, 0x00, 0x00, 0x10],
            vec![0x00, 0x01],
        ] {
            // End at EOF so that a header wrongly taken as valid fails the assertion, not hangs.
            let mut f = framed(vec![garbage.clone()], End::Eof);
            let err = block_on(f.read_pdu()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidFrame, "{garbage:02x?}: {err}");
        }
    }

    #[test]
    fn frame_bound_on_headers() {
        let mut f = framed(vec![x224_frame(2000, 1)], End::Pending).with_max_frame_size(1000);
        let err = block_on(f.read_pdu()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FrameTooLarge);
    }

    /// A hint that never finds a frame, like sspi's TsRequest hint on a malformed reply.
    #[derive(Debug)]
    struct NeverEnough;
    impl PduHint for NeverEnough {
        fn find_size(&self, _: &[u8]) -> ironrdp_core::DecodeResult<Option<(bool, usize)>> {
            Ok(None)
        }
    }

    #[test]
    fn hint_that_never_finds_a_frame_is_bounded() {
        let endless = (0..1000).map(|_| vec![0x30; 4096]);
        let mut f = framed(endless.collect(), End::Pending);
        let err = block_on(f.read_by_hint(&NeverEnough)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FrameTooLarge);
        assert!(
            f.buffer_capacity() <= MAX_FRAME_SIZE + READ_CHUNK,
            "capacity {}",
            f.buffer_capacity()
        );
        assert!(f.peek().len() <= MAX_FRAME_SIZE + READ_CHUNK);
    }

    #[derive(Debug)]
    struct Fixed(bool, usize);
    impl PduHint for Fixed {
        fn find_size(&self, _: &[u8]) -> ironrdp_core::DecodeResult<Option<(bool, usize)>> {
            Ok(Some((self.0, self.1)))
        }
    }

    #[test]
    fn zero_length_hint_is_an_error_not_a_spin() {
        let mut f = framed(vec![vec![1, 2, 3]], End::Pending);
        let err = block_on(f.read_by_hint(&Fixed(false, 0))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFrame);
    }

    #[test]
    fn read_by_hint_takes_exactly_the_hinted_length() {
        let mut f = framed(vec![vec![1, 2, 3, 4, 5, 6, 7]], End::Pending);
        let got = block_on(f.read_by_hint(&Fixed(true, 5))).unwrap();
        assert_eq!(&got[..], &[1, 2, 3, 4, 5]);
        assert_eq!(f.peek(), &[6, 7]);
        assert!(f.last_read_at().is_some());
    }

    /// Fast-path output around the TPKT frame an activation sequence waits for.
    fn output_around_activation() -> Vec<Vec<u8>> {
        vec![
            fastpath_frame(10, 1),
            fastpath_frame(0x80, 2),
            x224_frame(20, 3),
            fastpath_frame(5, 4),
        ]
    }

    #[test]
    fn activation_read_keeps_fast_path_output_in_order() {
        let frames = output_around_activation();
        let data = frames.concat();
        for seed in 1..=8 {
            for max in [1, 7, 4096] {
                let mut f = LocalFramed::new(ScriptStream::random_chunks(&data, seed, max, End::Eof));
                let got = block_on(f.read_by_hint_keeping_output(&ironrdp_pdu::X224_HINT)).expect("x224");
                assert_eq!(&got[..], &frames[2][..], "seed {seed} max {max}");
                let rest = read_all(&mut f, 3);
                assert_eq!(rest, [frames[0].clone(), frames[1].clone(), frames[3].clone()]);
            }
        }
    }

    #[test]
    fn plain_hinted_read_still_drops_what_it_skips() {
        let frames = output_around_activation();
        let mut f = framed(vec![frames.concat()], End::Eof);
        let got = block_on(f.read_by_hint(&ironrdp_pdu::X224_HINT)).expect("x224");
        assert_eq!(&got[..], &frames[2][..]);
        assert_eq!(read_all(&mut f, 1), [frames[3].clone()]);
    }

    #[test]
    fn kept_output_is_bounded_without_holes() {
        let len = 0x7fff;
        let kept = MAX_HELD_OUTPUT / len;
        // Past the bound: 8 frames that do not fit, then one small enough to fit the space
        // left, which must go too (the session must not see output with a hole in it).
        let mut frames: Vec<Vec<u8>> = (0..kept + 8).map(|i| fastpath_frame(len, i as u8)).collect();
        frames.push(fastpath_frame(6, 0xaa));
        frames.push(x224_frame(9, 0xee));
        frames.push(fastpath_frame(6, 0xff));
        let data = frames.concat();
        for chunks in [
            frames.clone(),
            ScriptStream::random_chunks(&data, 7, 70_000, End::Eof).chunks.into(),
        ] {
            let mut f = framed(chunks, End::Eof);
            let got = block_on(f.read_by_hint_keeping_output(&ironrdp_pdu::X224_HINT)).expect("x224");
            assert_eq!(&got[..], &frames[kept + 9][..]);
            assert!(
                f.buffer_capacity() <= MAX_HELD_OUTPUT + MAX_FRAME_SIZE + READ_CHUNK,
                "capacity {}",
                f.buffer_capacity()
            );
            let rest = read_all(&mut f, kept + 1);
            assert_eq!(rest[..kept], frames[..kept]);
            assert_eq!(rest[kept], frames[kept + 10]);
            // Read out, the kept output gives its room back.
            assert!(
                f.buffer_capacity() <= MAX_FRAME_SIZE + 2 * READ_CHUNK,
                "capacity {}",
                f.buffer_capacity()
            );
        }
    }

    #[test]
    fn leftover_handoff() {
        let mut f = framed(vec![[x224_frame(8, 1), vec![0xAA, 0xBB]].concat()], End::Pending);
        block_on(f.read_pdu()).unwrap();
        let (stream, leftover) = f.into_inner();
        assert_eq!(&leftover[..], &[0xAA, 0xBB]);

        let f = Test::new_with_leftover(stream, leftover);
        assert_eq!(f.peek(), &[0xAA, 0xBB]);
        let err = f.into_inner_no_leftover().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Leftover);
        assert!(err.to_string().contains("2 received bytes"), "{err}");

        let f = framed(vec![], End::Pending);
        assert!(f.into_inner_no_leftover().is_ok());
    }

    #[test]
    fn writes_loop_until_done() {
        let mut f = framed(vec![], End::Pending);
        let pdu: Vec<u8> = (0..100).collect();
        block_on(f.write_all(&pdu)).unwrap();
        assert_eq!(f.get_inner().0.written, pdu);
    }

    #[test]
    fn split_and_unsplit_round_trip() {
        let frames = [x224_frame(50, 1), fastpath_frame(40, 2)];
        let data = frames.concat();
        // The first read brings the first frame and part of the second.
        let mut f = framed(vec![data[..70].to_vec(), data[70..].to_vec()], End::Pending);
        block_on(async {
            assert_eq!(f.read_pdu().await.unwrap().1, frames[0]);
            let before = f.peek().to_vec();
            let (reader, mut writer) = f.split();
            assert_eq!(reader.peek(), &before[..], "the buffer goes to the reader");
            assert!(writer.peek().is_empty());
            writer.write_all(b"ping").await.unwrap();
            let f = reader.unsplit(writer).expect("same stream");
            assert_eq!(f.peek(), &before[..], "unsplit gives back exactly what was buffered");
            let (mut reader, writer) = f.split();
            assert_eq!(reader.read_pdu().await.unwrap().1, frames[1]);
            let f = reader.unsplit(writer).expect("same stream");
            assert!(f.peek().is_empty());
            assert_eq!(f.get_inner().0.written, b"ping");
        });
    }

    #[test]
    fn unsplit_refuses_halves_of_different_streams() {
        let (r1, _w1) = framed(vec![], End::Pending).split();
        let (_r2, w2) = framed(vec![], End::Pending).split();
        assert!(r1.unsplit(w2).is_err());
    }

    #[test]
    fn steady_state_reuses_the_buffer() {
        // Frames that are dropped as soon as they are read let the buffer reclaim its space,
        // so a long stream runs in one allocation of bounded size.
        let data: Vec<u8> = (0..2000).flat_map(|i| fastpath_frame(1000 + i % 7, 1)).collect();
        let mut f = LocalFramed::new(ScriptStream::random_chunks(&data, 7, 9000, End::Eof));
        block_on(async {
            for _ in 0..2000 {
                f.read_pdu().await.unwrap();
            }
        });
        assert!(
            f.buffer_capacity() <= 2 * READ_CHUNK,
            "capacity {}",
            f.buffer_capacity()
        );
    }

    #[test]
    fn lent_and_owned_frames_interleave_over_random_chunks() {
        // Lent frames leave their bytes in the buffer; owned frames are split off it. Mixed in
        // any order over any chunking, both must return exactly the frames sent, and the
        // leftover handed back at the end must be exactly what was not returned.
        let frames: Vec<Vec<u8>> = (0..40).flat_map(|_| sample_frames()).collect();
        let data: Vec<u8> = frames.concat();
        for seed in 0..8 {
            let mut f = LocalFramed::new(ScriptStream::random_chunks(&data, seed, 40_000, End::Eof));
            block_on(async {
                for (i, expected) in frames.iter().enumerate() {
                    if (i + seed as usize).is_multiple_of(3) {
                        let (_, frame) = f.read_pdu().await.expect("owned frame");
                        assert_eq!(&frame[..], &expected[..], "owned frame {i}, seed {seed}");
                    } else {
                        let (_, frame) = f.read_pdu_ref().await.expect("lent frame");
                        assert_eq!(frame, &expected[..], "lent frame {i}, seed {seed}");
                    }
                }
                assert_eq!(f.read_pdu_ref().await.expect_err("end").kind(), ErrorKind::Closed);
            });
            assert!(
                f.buffer_capacity() <= MAX_FRAME_SIZE + READ_CHUNK,
                "capacity {}",
                f.buffer_capacity()
            );
        }
    }

    #[test]
    fn leftover_after_lent_frames_is_exactly_the_unread_bytes() {
        let frames = sample_frames();
        let data = frames.concat();
        let mut f = framed(vec![data.clone()], End::Pending);
        block_on(async {
            for expected in &frames[..3] {
                assert_eq!(f.read_pdu_ref().await.expect("frame").1, &expected[..]);
            }
        });
        // What was read past the third frame, and only that, is buffered and handed back.
        let consumed: usize = frames[..3].iter().map(Vec::len).sum();
        let buffered = f.peek().len();
        assert!(buffered > 0);
        assert!(f.peek() == &data[consumed..consumed + buffered]);
        assert!(f.get_inner().1 == &data[consumed..consumed + buffered]);
        let (_, leftover) = f.into_inner();
        assert!(leftover[..] == data[consumed..consumed + buffered]);
    }
}
