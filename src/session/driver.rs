//! The session's driver: one poll reads and decodes server frames (or steps a
//! reactivation), writes queued output, and hands out events, within a budget per wake-up.

use std::future::{poll_fn, Future as _};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};
use ironrdp_session::ActiveStageOutput;

use super::output::session_error;
use super::{DisconnectReason, Event, Idle, Session, State};
use crate::channels::Verdict;
use crate::framing::{FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Result};

/// How many frames one poll of [`Session::next_event`] may process without producing an event
/// before it yields, so that a burst of buffered frames cannot starve the other futures on the
/// thread.
const FRAMES_PER_POLL: usize = 64;

impl<S: FramedRead + FramedWrite> Session<S> {
    /// Waits for the next event, processing server frames and writing queued output meanwhile.
    ///
    /// A connection that closes or breaks becomes an [`Event::Disconnected`]; after that event,
    /// this returns [`ErrorKind::Closed`]. A malformed frame or a protocol violation is an
    /// error, and the session should then be dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: frames read and bytes queued are kept in the session, so the future may
    /// be dropped (by a `select!`) and the call made again without losing anything.
    pub async fn next_event(&mut self) -> Result<Event> {
        poll_fn(|cx| self.poll_next_event(cx)).await
    }

    /// The poll form of [`next_event`](Self::next_event).
    pub fn poll_next_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        // All decoding happens in here: keep the dependencies' logs redacted (see `redact`).
        crate::redact::scoped(|| self.poll_events(cx)).map_err(in_session)
    }

    fn poll_events(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        for _ in 0..FRAMES_PER_POLL {
            // Channel requests that became due (a coalesced resize) join the output first.
            self.send_display_request()?;
            self.display.poll_retry(cx);
            // A blocked write does not stop reading: the server may be waiting for us to read
            // before it reads what we write. The write's waker will call us back.
            let _ = self.poll_send(cx)?;
            if let Some(event) = self.next_queued_event()? {
                return Poll::Ready(Ok(event));
            }
            self.poll_idle(cx)?;
            if self.activation.is_some() {
                ready!(self.poll_reactivation_step(cx))?;
            } else {
                ready!(self.poll_frame(cx))?;
            }
        }
        // Budget spent without an event: let the other futures on this thread run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The next event to hand out, or the error of a session that has ended.
    fn next_queued_event(&mut self) -> Result<Option<Event>> {
        if let Some(event) = self.events.pop_front() {
            if matches!(event, Event::Disconnected(_)) {
                self.state = State::Closed;
            }
            return Ok(Some(event));
        }
        if self.state == State::Closed {
            return Err(Error::new(ErrorKind::Closed, "session").with_detail("the session has ended"));
        }
        Ok(None)
    }

    /// Reads one server frame and decodes it into the framebuffer, events and output.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        // The frame is lent from the framing buffer (no reference count, no re-zeroing).
        let (action, frame, received_at) = match ready!(self.framed.poll_read_pdu_ref_at(cx)) {
            Ok(read) => read,
            Err(e) => return Poll::Ready(self.lost_or_fail(e.in_context("session"))),
        };
        let observed = self.frames.observe(action, frame);
        // Virtual channel data passes the guard first: what it drops, IronRDP never sees.
        let channel = match self.guard.inspect(action, frame) {
            Verdict::Drop(refusal) => {
                self.channel_refused(refusal);
                return Poll::Ready(Ok(()));
            }
            verdict => verdict.channel(),
        };
        // IronRDP's decoders can panic on hostile input (arithmetic overflow in RemoteFX
        // clipping and tile placement, found by our fuzzing); a server must not be able to
        // crash the application. The decoder state is then suspect, so the session ends.
        let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.stage.process(&mut self.image, action, frame, received_at)
        }));
        let mut outputs = match (processed, channel) {
            // A channel's bad message costs that message, not the session (`channels::guard`).
            (Ok(Err(e)), Some(id)) => {
                self.channel_failed(id, &e);
                Vec::new()
            }
            (Ok(outputs), _) => outputs.map_err(|e| session_error("process server frame", e))?,
            (Err(panic), _) => {
                self.state = State::Closed;
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Poll::Ready(Err(Error::new(ErrorKind::Session, "session").with_detail(format!(
                    "the decoder failed on a malformed {action:?} frame of {} bytes ({what})",
                    frame.len()
                ))));
            }
        };
        if observed.draws_nothing {
            // IronRDP reports surface commands that drew nothing (frame markers alone) as an
            // empty rectangle, which reads as the pixel at (0, 0): not a change.
            outputs.retain(|o| !matches!(o, ActiveStageOutput::GraphicsUpdate(r) if *r == InclusiveRectangle::empty()));
        }
        self.handle_outputs(outputs)?;
        self.compose_graphics()?;
        #[cfg(feature = "clipboard")]
        self.drive_clipboard()?;
        #[cfg(feature = "audio")]
        self.drive_audio();
        if self.stage.take_bitmap_recovery_request() {
            log::debug!("Decoder dropped a malformed bitmap; asking for a redraw");
            self.queue_full_redraw()?;
        }
        Poll::Ready(Ok(()))
    }

    /// A transport failure ends the session with an event; anything else is an error.
    pub(super) fn lost_or_fail(&mut self, error: Error) -> Result<()> {
        let lost = matches!(
            error.kind(),
            ErrorKind::Closed | ErrorKind::UnexpectedEof | ErrorKind::Io
        );
        if lost && self.state == State::Active {
            self.end(DisconnectReason::ConnectionLost(crate::report(&error)));
            return Ok(());
        }
        self.state = State::Closed;
        Err(error)
    }

    /// Writes queued output; `Ready` once the queue is empty and flushed.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.out_pos < self.out.len() {
            let n =
                ready!(self.framed.poll_write(cx, &self.out[self.out_pos..])).map_err(|e| e.in_context("session"))?;
            if n == 0 {
                return Poll::Ready(Err(Error::io("session", std::io::ErrorKind::WriteZero.into())));
            }
            self.out_pos += n;
        }
        ready!(self.framed.poll_flush(cx)).map_err(|e| e.in_context("session"))?;
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Sends queued input and responses now, without waiting for the next event.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: unsent bytes stay queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_send(cx)).await.map_err(in_session)
    }
}

impl<S> Session<S> {
    /// Fails [`next_event`](Self::next_event) with [`ErrorKind::Timeout`] when the server sends
    /// nothing for `timeout` (`None`: wait forever).
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle = timeout.map(|timeout| Idle {
            timeout,
            timer: crate::net::Timer::after(timeout),
            seen: self.framed.last_read_at(),
        });
    }

    /// Checks the idle deadline, re-arming it if bytes arrived since the last check.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Result<()> {
        let Some(idle) = self.idle.as_mut() else { return Ok(()) };
        let seen = self.framed.last_read_at();
        if seen != idle.seen {
            idle.seen = seen;
            idle.timer.set_after(idle.timeout);
        }
        if std::pin::Pin::new(&mut idle.timer).poll(cx).is_ready() {
            self.state = State::Closed;
            return Err(Error::new(ErrorKind::Timeout, "session")
                .with_detail(format!("the server sent nothing for {:?}", idle.timeout)));
        }
        Ok(())
    }
}

/// Labels an error of the running session with its phase (errors that came up from the
/// connection's own phases keep theirs).
pub(super) fn in_session(error: Error) -> Error {
    match error.phase() {
        Some(_) => error,
        None => error.with_phase(crate::Phase::Session),
    }
}
