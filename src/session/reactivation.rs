//! Deactivation-reactivation ([MS-RDPBCGR] 1.3.1.3): the server changes the desktop (a
//! resize) mid-session; the session runs the activation sequence again and rebuilds its
//! decoder state and framebuffer.
//!
//! [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/

use std::task::{ready, Context, Poll};

use ironrdp_connector::connection_activation::ConnectionActivationState;
use ironrdp_connector::Sequence;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_session::image::DecodedImage;

use super::{DisconnectReason, Event, Session};
use crate::connector::connector_error;
use crate::framing::{FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Result};

impl<S: FramedRead + FramedWrite> Session<S> {
    /// One step of a running reactivation: reads the frame it waits for, steps it, queues its
    /// reply, and finishes the reactivation when the sequence does.
    pub(super) fn poll_reactivation_step(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(activation) = self.activation.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        self.scratch.clear();
        let written = match activation.next_pdu_hint() {
            Some(hint) => {
                // Graphics for the new desktop that come before the sequence ends are kept for
                // the new decoder (a RemoteFX stream's codec headers come only in its first frame).
                let pdu = match ready!(self.framed.poll_read_by_hint_keeping_output(cx, hint)) {
                    Ok(pdu) => pdu,
                    Err(e) => return Poll::Ready(self.lost_or_fail(e.in_context("session"))),
                };
                activation.step(&pdu, self.framed.last_read_at(), &mut self.scratch)
            }
            None => activation.step_no_input(&mut self.scratch),
        }
        .map_err(|e| connector_error("session", e))?;
        if let Some(len) = written.size() {
            self.out.extend_from_slice(&self.scratch.filled()[..len]);
        }
        let state = activation.connection_activation_state();
        Poll::Ready(self.finish_reactivation(state))
    }
}

impl<S> Session<S> {
    /// Completes a deactivation-reactivation sequence: rebuilds the decoder state and the
    /// framebuffer with what the server now announces.
    pub(super) fn finish_reactivation(&mut self, state: ConnectionActivationState) -> Result<()> {
        match state {
            ConnectionActivationState::Finalized {
                desktop_size,
                share_id,
                input_flags,
                static_channel_chunk_size,
                enable_server_pointer,
                pointer_software_rendering,
                refresh_rect_support,
                suppress_output_support,
                ..
            } => {
                let n = &mut self.negotiated;
                if !self.stage.reactivate(
                    n.io_channel_id,
                    n.user_channel_id,
                    share_id,
                    enable_server_pointer,
                    pointer_software_rendering,
                    static_channel_chunk_size,
                ) {
                    return Err(Error::new(ErrorKind::Session, "session").with_detail(format!(
                        "server sent an invalid channel chunk size {static_channel_chunk_size}"
                    )));
                }
                n.input_flags = input_flags;
                n.refresh_rect_support = refresh_rect_support;
                n.suppress_output_support = suppress_output_support;
                self.image = DecodedImage::new(PixelFormat::RgbA32, desktop_size.width, desktop_size.height);
                self.frames.reset();
                self.display.answered();
                self.activation = None;
                log::info!("Session reactivated at {}x{}", desktop_size.width, desktop_size.height);
                self.events.push_back(Event::Resized {
                    width: desktop_size.width,
                    height: desktop_size.height,
                });
            }
            ConnectionActivationState::Redirected { redirection } => {
                self.activation = None;
                self.end(DisconnectReason::Redirected(redirection));
            }
            _ => {}
        }
        Ok(())
    }
}
