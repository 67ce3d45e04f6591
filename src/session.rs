//! The active session: the server's graphics decoded into a framebuffer, protocol outputs
//! turned into [`Event`]s, input sent back; all driven from [`Session::next_event`] on the
//! caller's task.
//!
//! Outgoing bytes (input, responses the decoder asks for) go into a queue owned by the session
//! and are written as `next_event` (or [`Session::flush`]) is polled. Nothing is lost when a
//! `next_event` future is dropped, so the session can sit in a `select!` next to the
//! application's own futures.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ironrdp_connector::connection_activation::{
    ConnectionActivationFactory, ConnectionActivationSequence, ConnectionActivationState,
};
use ironrdp_connector::{ConnectionResult, Sequence};
use ironrdp_core::WriteBuf;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_graphics::pointer::DecodedPointer;
use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};
use ironrdp_pdu::input::fast_path::{FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::input::mouse_x::PointerXFlags;
use ironrdp_pdu::input::{scan_code, unicode, InputEvent, InputEventPdu, MousePdu, MouseXPdu};
use ironrdp_pdu::rdp::capability_sets::InputFlags;
use ironrdp_pdu::rdp::headers::ShareDataPdu;
use ironrdp_pdu::rdp::multitransport::MultitransportResponsePdu;
use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;
use ironrdp_pdu::rdp::session_info::ServerAutoReconnect;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput, GracefulDisconnectReason, SessionError};

use crate::connect::connector_error;
use crate::frame_progress::FrameProgress;
use crate::framed::Framed;
use crate::stream::{FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Result};

/// How many frames one poll of [`Session::next_event`] may process without producing an event
/// before it yields, so that a burst of buffered frames cannot starve the other futures on the
/// thread.
const FRAMES_PER_POLL: usize = 64;

/// A rectangle of the framebuffer, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width (at least 1).
    pub width: u16,
    /// Height (at least 1).
    pub height: u16,
}

impl From<&InclusiveRectangle> for Rect {
    fn from(r: &InclusiveRectangle) -> Self {
        Self {
            x: r.left,
            y: r.top,
            width: r.right.saturating_sub(r.left).saturating_add(1),
            height: r.bottom.saturating_sub(r.top).saturating_add(1),
        }
    }
}

/// What the server did to the pointer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PointerEvent {
    /// Show the system's default pointer.
    Default,
    /// Hide the pointer.
    Hidden,
    /// The server moved the pointer.
    Position {
        /// Horizontal position.
        x: u16,
        /// Vertical position.
        y: u16,
    },
    /// A new pointer shape (RGBA, with its hot spot).
    Bitmap(Arc<DecodedPointer>),
}

/// Why a session ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client asked to end the session ([`Session::shutdown`]).
    Client,
    /// The server ended the session; the text is the server's reason.
    Server(String),
    /// The server sent the client to another server ([MS-RDPBCGR] 2.2.13).
    ///
    /// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
    Redirected(Box<ServerRedirectionPdu>),
    /// The connection closed or broke without a goodbye; the text says how.
    ConnectionLost(String),
}

/// Something that happened in the session.
///
/// ```no_run
/// # async fn handle(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
/// use async_rdp::{DisconnectReason, Event, PointerEvent};
///
/// match session.next_event().await? {
///     Event::Graphics(rect) => {
///         let fb = session.framebuffer();
///         // Copy only the damaged rows of `rect` out of `fb.data` (RGBA, `fb.stride` apart).
///         let first_row = usize::from(rect.y) * fb.stride;
///         let _damaged = &fb.data[first_row..first_row + usize::from(rect.height) * fb.stride];
///     }
///     Event::Pointer(PointerEvent::Position { x, y }) => println!("pointer at {x},{y}"),
///     Event::Resized { width, height } => println!("desktop is now {width}x{height}"),
///     Event::LogonComplete => println!("logged on"),
///     Event::Disconnected(DisconnectReason::Server(why)) => println!("server said: {why}"),
///     Event::Disconnected(other) => println!("ended: {other:?}"),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// This part of the framebuffer changed.
    Graphics(Rect),
    /// The pointer changed.
    Pointer(PointerEvent),
    /// The server deactivated and reactivated the session; the framebuffer was rebuilt at this
    /// size and is blank until the server redraws it.
    Resized {
        /// New width.
        width: u16,
        /// New height.
        height: u16,
    },
    /// The server reports the user's logon as complete.
    LogonComplete,
    /// The session ended. Later calls to [`Session::next_event`] return
    /// [`ErrorKind::Closed`].
    Disconnected(DisconnectReason),
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MouseButton {
    /// Left (primary) button.
    Left,
    /// Right (secondary) button.
    Right,
    /// Middle button (wheel click).
    Middle,
    /// First extra button (back).
    X1,
    /// Second extra button (forward).
    X2,
}

/// A read-only view of the framebuffer: RGBA, 4 bytes a pixel, rows `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Framebuffer<'a> {
    /// The pixels, `height` rows of `stride` bytes.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes from the start of one row to the next.
    pub stride: usize,
}

impl Framebuffer<'_> {
    /// The RGBA value at (`x`, `y`), or `None` outside the framebuffer.
    pub fn pixel(&self, x: u16, y: u16) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = usize::from(y) * self.stride + usize::from(x) * 4;
        let px = self.data.get(at..at + 4)?;
        Some([px[0], px[1], px[2], px[3]])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    /// `Disconnected` was queued; once delivered, the session is closed.
    Ending,
    Closed,
}

/// What the connection sequence negotiated that the session keeps using.
struct Negotiated {
    io_channel_id: u16,
    user_channel_id: u16,
    input_flags: InputFlags,
    refresh_rect_support: bool,
    suppress_output_support: bool,
    activation_factory: ConnectionActivationFactory,
}

/// A running RDP session.
///
/// Made by [`connect`](crate::connect) (or [`Session::new`] from a connection driven by hand).
/// Drive it by awaiting [`next_event`](Self::next_event) in a loop; read the picture with
/// [`framebuffer`](Self::framebuffer); send input with the `key*`/`mouse*` methods.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// use async_rdp::{connect, ClientConfig, Event};
///
/// let mut session = connect("127.0.0.1:3389", ClientConfig::new("user", "password")).await?;
/// loop {
///     match session.next_event().await? {
///         Event::Graphics(rect) => println!("updated {rect:?}"),
///         Event::Disconnected(reason) => {
///             println!("session ended: {reason:?}");
///             break;
///         }
///         _ => {}
///     }
/// }
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
pub struct Session<S> {
    framed: Framed<S>,
    stage: ActiveStage,
    image: DecodedImage,
    negotiated: Negotiated,
    activation: Option<Box<ConnectionActivationSequence>>,
    events: VecDeque<Event>,
    out: Vec<u8>,
    out_pos: usize,
    scratch: WriteBuf,
    auto_reconnect_cookie: Option<ServerAutoReconnect>,
    pressed_keys: Vec<(u8, bool)>,
    pressed_buttons: Vec<MouseButton>,
    mouse: (u16, u16),
    state: State,
    shutdown_requested: bool,
    idle: Option<Idle>,
    frames: FrameProgress,
}

/// The session's idle-read deadline: re-armed whenever bytes arrive.
struct Idle {
    timeout: Duration,
    timer: crate::net::Timer,
    seen: Option<ironrdp_core::MonotonicInstant>,
}

impl<S> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("width", &self.image.width())
            .field("height", &self.image.height())
            .field("state", &self.state)
            .field("queued_events", &self.events.len())
            .field("queued_output", &(self.out.len() - self.out_pos))
            .finish_non_exhaustive()
    }
}

impl<S> Session<S> {
    /// Starts a session on a connection whose connection sequence has completed.
    pub fn new(framed: Framed<S>, result: ConnectionResult) -> Self {
        let stage = ActiveStageBuilder {
            static_channels: result.static_channels,
            user_channel_id: result.user_channel_id,
            io_channel_id: result.io_channel_id,
            message_channel_id: result.message_channel_id,
            share_id: result.share_id,
            compression_type: result.compression_type,
            enable_server_pointer: result.enable_server_pointer,
            pointer_software_rendering: result.pointer_software_rendering,
        }
        .build();
        let image = DecodedImage::new(
            PixelFormat::RgbA32,
            result.desktop_size.width,
            result.desktop_size.height,
        );
        Self {
            framed,
            stage,
            image,
            negotiated: Negotiated {
                io_channel_id: result.io_channel_id,
                user_channel_id: result.user_channel_id,
                input_flags: result.input_flags,
                refresh_rect_support: result.refresh_rect_support,
                suppress_output_support: result.suppress_output_support,
                activation_factory: result.activation_factory,
            },
            activation: None,
            events: VecDeque::new(),
            out: Vec::new(),
            out_pos: 0,
            scratch: WriteBuf::new(),
            auto_reconnect_cookie: None,
            pressed_keys: Vec::new(),
            pressed_buttons: Vec::new(),
            mouse: (0, 0),
            state: State::Active,
            shutdown_requested: false,
            idle: None,
            frames: FrameProgress::default(),
        }
    }

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

    /// The decoded desktop, readable at any time.
    pub fn framebuffer(&self) -> Framebuffer<'_> {
        Framebuffer {
            data: self.image.data(),
            width: self.image.width(),
            height: self.image.height(),
            stride: self.image.stride(),
        }
    }

    /// The latest auto-reconnect cookie the server sent, to present when reconnecting after
    /// the connection drops ([MS-RDPBCGR] 2.2.4.2).
    ///
    /// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
    pub fn auto_reconnect_cookie(&self) -> Option<&ServerAutoReconnect> {
        self.auto_reconnect_cookie.as_ref()
    }

    /// Whether the session has ended (a `Disconnected` event was produced).
    pub fn is_closed(&self) -> bool {
        self.state != State::Active
    }

    /// Whether the server is in the middle of drawing something: a fast-path update sent in
    /// fragments whose last one has not come yet, or a surface frame whose begin marker came
    /// and whose end marker has not. The framebuffer then holds a partly drawn frame; a
    /// program that waits for the screen to be drawn should wait for this to be `false` (see
    /// [`wait_until_drawn`](Session::wait_until_drawn)).
    pub fn frame_in_progress(&self) -> bool {
        self.frames.in_progress()
    }

    /// The framed stream the session runs on.
    pub fn framed(&self) -> &Framed<S> {
        &self.framed
    }

    fn queue_frame(&mut self, frame: &[u8]) {
        // The decoder sometimes hands back empty response frames; writing them is pointless.
        if !frame.is_empty() {
            self.out.extend_from_slice(frame);
        }
    }

    fn end(&mut self, reason: DisconnectReason) {
        if self.state == State::Active {
            log::info!("Session ended: {reason:?}");
            self.events.push_back(Event::Disconnected(reason));
            self.state = State::Ending;
        }
    }

    fn handle_outputs(&mut self, outputs: Vec<ActiveStageOutput>) -> Result<()> {
        for output in outputs {
            match output {
                ActiveStageOutput::ResponseFrame(frame) => self.queue_frame(&frame),
                ActiveStageOutput::GraphicsUpdate(rect) => {
                    // IronRDP reports a surface command's whole destination, which a hostile
                    // server can place outside the framebuffer: clip, so that an application
                    // slicing the framebuffer by the rectangle stays in bounds.
                    if let Some(rect) = clip(Rect::from(&rect), self.image.width(), self.image.height()) {
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

    /// Completes a deactivation-reactivation sequence: rebuilds the decoder state and the
    /// framebuffer with what the server now announces.
    fn finish_reactivation(&mut self, state: ConnectionActivationState) -> Result<()> {
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
        crate::redact::scoped(|| self.poll_events(cx))
    }

    fn poll_events(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        for _ in 0..FRAMES_PER_POLL {
            // A blocked write does not stop reading: the server may be waiting for us to read
            // before it reads what we write. The write's waker will call us back.
            let _ = self.poll_send(cx)?;

            if let Some(event) = self.events.pop_front() {
                if matches!(event, Event::Disconnected(_)) {
                    self.state = State::Closed;
                }
                return Poll::Ready(Ok(event));
            }
            if self.state == State::Closed {
                return Poll::Ready(Err(
                    Error::new(ErrorKind::Closed, "session").with_detail("the session has ended")
                ));
            }
            self.poll_idle(cx)?;

            if let Some(activation) = self.activation.as_mut() {
                self.scratch.clear();
                let written = match activation.next_pdu_hint() {
                    Some(hint) => {
                        let pdu = match ready!(self.framed.poll_read_by_hint(cx, hint)) {
                            Ok(pdu) => pdu,
                            Err(e) => {
                                self.lost_or_fail(e.in_context("session"))?;
                                continue;
                            }
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
                self.finish_reactivation(state)?;
                continue;
            }

            // The frame is lent from the framing buffer (no reference count, no re-zeroing).
            let (action, frame, received_at) = match ready!(self.framed.poll_read_pdu_ref_at(cx)) {
                Ok(read) => read,
                Err(e) => {
                    self.lost_or_fail(e.in_context("session"))?;
                    continue;
                }
            };
            let observed = self.frames.observe(action, frame);
            // IronRDP's decoders can panic on hostile input (arithmetic overflow in RemoteFX
            // clipping and tile placement, found by our fuzzing); a server must not be able to
            // crash the application. The decoder state is then suspect, so the session ends.
            let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.stage.process(&mut self.image, action, frame, received_at)
            }));
            let mut outputs = match processed {
                Ok(outputs) => outputs.map_err(|e| session_error("process server frame", e))?,
                Err(panic) => {
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
                // IronRDP reports surface commands that drew nothing (frame markers alone) as
                // an empty rectangle, which reads as the pixel at (0, 0): not a change.
                outputs.retain(
                    |o| !matches!(o, ActiveStageOutput::GraphicsUpdate(r) if *r == InclusiveRectangle::empty()),
                );
            }
            self.handle_outputs(outputs)?;
            if self.stage.take_bitmap_recovery_request() {
                log::debug!("Decoder dropped a malformed bitmap; asking for a redraw");
                self.queue_full_redraw()?;
            }
        }
        // Budget spent without an event: let the other futures on this thread run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// A transport failure ends the session with an event; anything else is an error.
    fn lost_or_fail(&mut self, error: Error) -> Result<()> {
        match error.kind() {
            ErrorKind::Closed | ErrorKind::UnexpectedEof | ErrorKind::Io if self.state == State::Active => {
                self.end(DisconnectReason::ConnectionLost(crate::report(&error)));
                Ok(())
            }
            ErrorKind::Closed | ErrorKind::UnexpectedEof | ErrorKind::Io => {
                self.state = State::Closed;
                Err(error)
            }
            _ => {
                self.state = State::Closed;
                Err(error)
            }
        }
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
        poll_fn(|cx| self.poll_send(cx)).await
    }

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
        if self.state == State::Active {
            self.shutdown_requested = true;
            let frames = crate::redact::scoped(|| self.stage.graceful_shutdown())
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
        self.queue_full_redraw()
    }

    fn queue_full_redraw(&mut self) -> Result<()> {
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

    /// Presses or releases a key by its scan code (set 1); `extended` for the E0-prefixed keys
    /// (arrows, right Ctrl, ...). Queued, like all input.
    pub fn key(&mut self, scancode: u8, extended: bool, pressed: bool) -> Result<()> {
        let key = (scancode, extended);
        self.pressed_keys.retain(|k| *k != key);
        if pressed {
            self.pressed_keys.push(key);
        }
        let mut flags = KeyboardFlags::empty();
        flags.set(KeyboardFlags::EXTENDED, extended);
        flags.set(KeyboardFlags::RELEASE, !pressed);
        self.send_input(&[FastPathInputEvent::KeyboardEvent(flags, scancode)])
    }

    /// Types a character by its Unicode value (press, or release when `pressed` is false).
    /// Characters outside the Basic Multilingual Plane are sent as their two UTF-16 units.
    pub fn key_unicode(&mut self, ch: char, pressed: bool) -> Result<()> {
        let flags = if pressed {
            KeyboardFlags::empty()
        } else {
            KeyboardFlags::RELEASE
        };
        let mut units = [0u16; 2];
        let events: Vec<_> = ch
            .encode_utf16(&mut units)
            .iter()
            .map(|unit| FastPathInputEvent::UnicodeKeyboardEvent(flags, *unit))
            .collect();
        self.send_input(&events)
    }

    /// Moves the pointer to (`x`, `y`).
    pub fn mouse_move(&mut self, x: u16, y: u16) -> Result<()> {
        self.mouse = (x, y);
        self.send_input(&[FastPathInputEvent::MouseEvent(MousePdu {
            flags: PointerFlags::MOVE,
            number_of_wheel_rotation_units: 0,
            x_position: x,
            y_position: y,
        })])
    }

    /// Presses or releases a mouse button at the current pointer position.
    pub fn mouse_button(&mut self, button: MouseButton, pressed: bool) -> Result<()> {
        self.pressed_buttons.retain(|b| *b != button);
        if pressed {
            self.pressed_buttons.push(button);
        }
        let (x, y) = self.mouse;
        let event = match button {
            MouseButton::Left | MouseButton::Right | MouseButton::Middle => {
                let mut flags = match button {
                    MouseButton::Left => PointerFlags::LEFT_BUTTON,
                    MouseButton::Right => PointerFlags::RIGHT_BUTTON,
                    _ => PointerFlags::MIDDLE_BUTTON_OR_WHEEL,
                };
                flags.set(PointerFlags::DOWN, pressed);
                FastPathInputEvent::MouseEvent(MousePdu {
                    flags,
                    number_of_wheel_rotation_units: 0,
                    x_position: x,
                    y_position: y,
                })
            }
            MouseButton::X1 | MouseButton::X2 => {
                let mut flags = if button == MouseButton::X1 {
                    PointerXFlags::BUTTON1
                } else {
                    PointerXFlags::BUTTON2
                };
                flags.set(PointerXFlags::DOWN, pressed);
                FastPathInputEvent::MouseEventEx(MouseXPdu {
                    flags,
                    x_position: x,
                    y_position: y,
                })
            }
        };
        self.send_input(&[event])
    }

    /// Turns the vertical wheel; positive is away from the user. One notch is 120 on Windows.
    /// Values are clamped to the protocol's range (-256..=255).
    pub fn mouse_wheel(&mut self, delta: i16) -> Result<()> {
        self.wheel(PointerFlags::VERTICAL_WHEEL, delta)
    }

    /// Turns the horizontal wheel; positive is to the right.
    pub fn mouse_hwheel(&mut self, delta: i16) -> Result<()> {
        self.wheel(PointerFlags::HORIZONTAL_WHEEL, delta)
    }

    fn wheel(&mut self, axis: PointerFlags, delta: i16) -> Result<()> {
        let (x, y) = self.mouse;
        self.send_input(&[FastPathInputEvent::MouseEvent(MousePdu {
            flags: axis,
            number_of_wheel_rotation_units: delta.clamp(
                *MousePdu::WHEEL_ROTATION_RANGE.start(),
                *MousePdu::WHEEL_ROTATION_RANGE.end(),
            ),
            x_position: x,
            y_position: y,
        })])
    }

    /// Releases every key and button this session pressed and has not released (call it when
    /// the application loses focus).
    pub fn release_all(&mut self) -> Result<()> {
        for (scancode, extended) in std::mem::take(&mut self.pressed_keys) {
            self.key(scancode, extended, false)?;
        }
        for button in std::mem::take(&mut self.pressed_buttons) {
            self.mouse_button(button, false)?;
        }
        Ok(())
    }

    /// Encodes input as fast-path input when the server accepts it, slow-path otherwise
    /// ([MS-RDPBCGR] 2.2.8.1.2: some servers drop the connection on unsolicited fast-path input).
    fn send_input(&mut self, events: &[FastPathInputEvent]) -> Result<()> {
        crate::redact::scoped(|| self.encode_input(events))
    }

    fn encode_input(&mut self, events: &[FastPathInputEvent]) -> Result<()> {
        if self.state != State::Active {
            return Err(Error::new(ErrorKind::Closed, "send input").with_detail("the session has ended"));
        }
        let flags = self.negotiated.input_flags;
        if flags.intersects(InputFlags::FASTPATH_INPUT | InputFlags::FASTPATH_INPUT_2) {
            let outputs = self
                .stage
                .process_fastpath_input(&mut self.image, events)
                .map_err(|e| session_error("encode input", e))?;
            return self.handle_outputs(outputs);
        }
        let slow: Vec<InputEvent> = events.iter().filter_map(slow_path_event).collect();
        self.scratch.clear();
        let len = self
            .stage
            .encode_static(&mut self.scratch, ShareDataPdu::Input(InputEventPdu(slow)))
            .map_err(|e| session_error("encode input", e))?;
        self.out.extend_from_slice(&self.scratch.filled()[..len]);
        Ok(())
    }
}

/// `rect` cut to a `width` x `height` framebuffer; `None` when nothing is left.
fn clip(rect: Rect, width: u16, height: u16) -> Option<Rect> {
    let right = rect.x.saturating_add(rect.width).min(width);
    let bottom = rect.y.saturating_add(rect.height).min(height);
    (rect.x < right && rect.y < bottom).then(|| Rect {
        x: rect.x,
        y: rect.y,
        width: right - rect.x,
        height: bottom - rect.y,
    })
}

/// The slow-path form of a fast-path input event.
fn slow_path_event(event: &FastPathInputEvent) -> Option<InputEvent> {
    let key_flags = |flags: &KeyboardFlags| {
        let mut out = scan_code::KeyboardFlags::empty();
        out.set(
            scan_code::KeyboardFlags::RELEASE,
            flags.contains(KeyboardFlags::RELEASE),
        );
        out.set(
            scan_code::KeyboardFlags::EXTENDED,
            flags.contains(KeyboardFlags::EXTENDED),
        );
        out
    };
    Some(match event {
        FastPathInputEvent::KeyboardEvent(flags, code) => InputEvent::ScanCode(scan_code::ScanCodePdu {
            flags: key_flags(flags),
            key_code: u16::from(*code),
        }),
        FastPathInputEvent::UnicodeKeyboardEvent(flags, code) => InputEvent::Unicode(unicode::UnicodePdu {
            flags: if flags.contains(KeyboardFlags::RELEASE) {
                unicode::KeyboardFlags::RELEASE
            } else {
                unicode::KeyboardFlags::empty()
            },
            unicode_code: *code,
        }),
        FastPathInputEvent::MouseEvent(pdu) => InputEvent::Mouse(*pdu),
        FastPathInputEvent::MouseEventEx(pdu) => InputEvent::MouseX(*pdu),
        _ => return None,
    })
}

fn session_error(context: &'static str, error: SessionError) -> Error {
    let detail = error.to_string();
    Error::new(ErrorKind::Session, context)
        .with_detail(detail)
        .with_source(error)
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
