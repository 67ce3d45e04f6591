//! Ending a session: the graceful shutdown exchange, and redraw requests.

use std::time::Duration;

use super::driver::in_session;
use super::output::session_error;
use super::{Session, State};
use crate::framing::{FramedRead, FramedWrite};
use crate::{ErrorKind, Result};

impl<S: FramedRead + FramedWrite> Session<S> {
    /// Ends the session gracefully: asks the server to shut down, waits for it to agree and
    /// close, and closes our side, all within `timeout`. Events that arrive meanwhile are
    /// dropped.
    ///
    /// Returns [`ErrorKind::Timeout`] if the server did not finish in time (the connection is
    /// closed on our side either way).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: it may stop between the shutdown request and the close.
    pub async fn shutdown(&mut self, timeout: Duration) -> Result<()> {
        crate::redact::future(self.goodbye(timeout)).await.map_err(in_session)
    }

    async fn goodbye(&mut self, timeout: Duration) -> Result<()> {
        if self.state == State::Active {
            self.shutdown_requested = true;
            let frames = self
                .stage
                .graceful_shutdown()
                .map_err(|e| session_error("shutdown request", e))?;
            self.handle_outputs(frames)?;
        }
        let exchange = async {
            while self.state != State::Closed {
                match self.next_event().await {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Closed => break,
                    Err(e) => return Err(e),
                }
            }
            let goodbye = async {
                // The disconnect ultimatum may still be queued.
                self.flush().await?;
                self.framed.close().await?;
                // Wait for the server to close its side too.
                loop {
                    match self.framed.fill_buf().await {
                        Ok(buf) => {
                            let n = buf.len();
                            log::trace!("Discarding {n} bytes after shutdown");
                            let _ = self.framed.read_by_hint(&DiscardAll).await;
                        }
                        Err(e) if matches!(e.kind(), ErrorKind::Closed | ErrorKind::UnexpectedEof) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            };
            match goodbye.await {
                // A server that closes as soon as it has our disconnect, without reading our
                // TLS close, makes its kernel reset the connection: the session did end.
                Err(e) if e.is_peer_gone() => {
                    log::debug!(
                        "The server reset the connection after our goodbye: {}",
                        crate::report(&e)
                    );
                    Ok(())
                }
                other => other,
            }
        };
        let result = crate::net::with_timeout(timeout, "shutdown", exchange).await;
        self.state = State::Closed;
        if result.is_err() {
            let _ = crate::net::with_timeout(Duration::from_millis(100), "shutdown", self.framed.close()).await;
        }
        result
    }

    /// Asks the server to redraw the whole desktop (with Suppress Output or Refresh Rect,
    /// whichever the server supports). Queued; sent by the next `next_event` or `flush`.
    pub fn request_full_redraw(&mut self) -> Result<()> {
        self.queue_full_redraw().map_err(in_session)
    }

    pub(crate) fn queue_full_redraw(&mut self) -> Result<()> {
        let frames = crate::redact::scoped(|| {
            self.stage.request_full_redraw(
                self.image.width(),
                self.image.height(),
                self.negotiated.refresh_rect_support,
                self.negotiated.suppress_output_support,
            )
        })
        .map_err(|e| session_error("redraw request", e))?;
        for frame in frames {
            self.queue_frame(&frame);
        }
        Ok(())
    }
}

/// A hint that takes whatever is buffered as one frame: used to drain a connection that is
/// closing.
#[derive(Debug)]
struct DiscardAll;

impl ironrdp_pdu::PduHint for DiscardAll {
    fn find_size(&self, bytes: &[u8]) -> ironrdp_core::DecodeResult<Option<(bool, usize)>> {
        Ok((!bytes.is_empty()).then_some((true, bytes.len())))
    }
}
