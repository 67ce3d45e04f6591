//! What IronRDP's active stage produces, turned into the session's events and queued output.

use ironrdp_pdu::rdp::multitransport::MultitransportResponsePdu;
use ironrdp_session::{ActiveStageOutput, GracefulDisconnectReason, SessionError};

use super::{DisconnectReason, Event, PointerEvent, Rect, Session, State};
use crate::{Error, ErrorKind, Result};

impl<S> Session<S> {
    pub(crate) fn queue_frame(&mut self, frame: &[u8]) {
        // The decoder sometimes hands back empty response frames; writing them is pointless.
        if !frame.is_empty() {
            self.out.extend_from_slice(frame);
        }
    }

    pub(super) fn end(&mut self, reason: DisconnectReason) {
        if self.state == State::Active {
            log::info!("Session ended: {reason:?}");
            self.events.push_back(Event::Disconnected(reason));
            self.state = State::Ending;
        }
    }

    /// Turns the stage's outputs into events, queued frames and session state.
    pub(super) fn handle_outputs(&mut self, outputs: Vec<ActiveStageOutput>) -> Result<()> {
        for output in outputs {
            match output {
                ActiveStageOutput::ResponseFrame(frame) => self.queue_frame(&frame),
                ActiveStageOutput::GraphicsUpdate(rect) => {
                    // IronRDP reports a surface command's whole destination, which a hostile
                    // server can place outside the framebuffer: clip, so that an application
                    // slicing the framebuffer by the rectangle stays in bounds.
                    if let Some(rect) = Rect::from(&rect).clipped(self.image.width(), self.image.height()) {
                        self.events.push_back(Event::Graphics(rect));
                    }
                }
                ActiveStageOutput::PointerDefault => self.events.push_back(Event::Pointer(PointerEvent::Default)),
                ActiveStageOutput::PointerHidden => self.events.push_back(Event::Pointer(PointerEvent::Hidden)),
                ActiveStageOutput::PointerPosition { x, y } => {
                    self.events.push_back(Event::Pointer(PointerEvent::Position { x, y }));
                }
                ActiveStageOutput::PointerBitmap(pointer) => {
                    self.events.push_back(Event::Pointer(PointerEvent::Bitmap(pointer)));
                }
                // IronRDP calls an MCS "user requested" ultimatum user-initiated even when the
                // server sends it on its own (xrdp does, after a failed logon): only a shutdown
                // we asked for is ours.
                ActiveStageOutput::Terminate(reason) => self.end(match reason {
                    GracefulDisconnectReason::UserInitiated if self.shutdown_requested => DisconnectReason::Client,
                    GracefulDisconnectReason::UserInitiated => DisconnectReason::Server(
                        "the server closed the session (MCS disconnect ultimatum, reason \"user requested\")".into(),
                    ),
                    other => DisconnectReason::Server(other.description()),
                }),
                ActiveStageOutput::SaveSessionInfo { logon_complete } => {
                    if logon_complete {
                        self.events.push_back(Event::LogonComplete);
                    }
                }
                ActiveStageOutput::AutoReconnectCookie(cookie) => {
                    log::debug!("Received an auto-reconnect cookie");
                    self.auto_reconnect_cookie = Some(cookie);
                }
                ActiveStageOutput::DeactivateAll => {
                    log::debug!("Server deactivated the session; reactivating");
                    self.activation = Some(Box::new(self.negotiated.activation_factory.create()));
                }
                ActiveStageOutput::ServerRedirection(redirection) => {
                    self.end(DisconnectReason::Redirected(redirection));
                }
                ActiveStageOutput::MultitransportRequest(request) => {
                    // This crate carries RDP over TCP only: decline, and the server stays on TCP.
                    let response = MultitransportResponsePdu::abort(request.request_id);
                    let frame = self
                        .stage
                        .encode_multitransport_response(&response)
                        .map_err(|e| session_error("decline multitransport", e))?;
                    self.queue_frame(&frame);
                }
                other => log::debug!("Session output not surfaced: {other:?}"),
            }
        }
        Ok(())
    }
}

pub(crate) fn session_error(context: &'static str, error: SessionError) -> Error {
    let detail = error.to_string();
    Error::new(ErrorKind::Session, context)
        .with_detail(detail)
        .with_source(error)
}
