//! The active session: what the demo server does once the connection sequence is over.

use std::io;
use std::time::{Duration, Instant};

use async_rdp::connector::drive_step;
use async_rdp::framing::LocalFramed;
use async_rdp::{Error, ErrorKind};
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::{pin_mut, select_biased, FutureExt as _, StreamExt as _};
use ironrdp_acceptor::{Acceptor, AcceptorResult, AcceptorState};
use ironrdp_connector::DesktopSize;
use ironrdp_connector::Sequence as _;
use ironrdp_core::{decode, WriteBuf};
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::input::fast_path::{FastPathInput, FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::input::mouse_rel::PointerRelFlags;
use ironrdp_pdu::input::mouse_x::PointerXFlags;
use ironrdp_pdu::input::{scan_code, unicode, InputEvent, InputEventPdu};
use ironrdp_pdu::mcs::McsMessage;
use ironrdp_pdu::rdp::headers::{ShareControlHeader, ShareControlPdu, ShareDataPdu};
use ironrdp_pdu::x224::X224;
use ironrdp_pdu::Action;

use crate::channel::{self, ChannelSend};
use crate::encode::RemoteFxOffer;
use crate::pattern::{ClockFace, Framebuffer};
use crate::pdu::{self, BitmapEncoder, Channels};
use crate::{animated_region, Connection, ServerStream};

/// What the server reports to its owner (a test, typically) while a session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The connection sequence completed and the logon notification and pointer were sent;
    /// the first frame follows.
    Connected {
        /// Desktop width in pixels.
        width: u16,
        /// Desktop height in pixels.
        height: u16,
    },
    /// A full desktop frame has been written.
    FrameSent {
        /// Width of the frame.
        width: u16,
        /// Height of the frame.
        height: u16,
    },
    /// A keyboard scancode event (fast-path or slow-path).
    Key {
        /// The scancode.
        scancode: u8,
        /// The extended (`E0`) prefix was set.
        extended: bool,
        /// Key down (`true`) or up.
        pressed: bool,
    },
    /// A Unicode keyboard event.
    Unicode {
        /// The UTF-16 code unit.
        code: u16,
        /// Key down (`true`) or up.
        pressed: bool,
    },
    /// The pointer moved (absolute, or a relative move applied to the last position and
    /// clamped to the desktop).
    MouseMove {
        /// Horizontal position.
        x: u16,
        /// Vertical position.
        y: u16,
    },
    /// A mouse button went down or up.
    MouseButton {
        /// Which button.
        button: MouseButton,
        /// Down (`true`) or up.
        pressed: bool,
        /// Pointer position with the event.
        x: u16,
        /// Pointer position with the event.
        y: u16,
    },
    /// A wheel turned.
    Wheel {
        /// Vertical (`true`) or horizontal wheel.
        vertical: bool,
        /// Rotation units as sent (120 per notch on Windows; negative is towards the user
        /// for the vertical wheel).
        delta: i16,
    },
    /// The client sent a Refresh Rect PDU or a Suppress Output PDU that resumes output; the
    /// server sends a full frame next.
    RefreshRequested,
    /// The client sent a Shutdown Request PDU; the server answered with Shutdown Denied.
    ShutdownRequested,
    /// A deactivation-reactivation sequence completed at this size; a full frame follows.
    Resized {
        /// New desktop width.
        width: u16,
        /// New desktop height.
        height: u16,
    },
    /// A whole message the client sent on a static virtual channel the server joined
    /// ([`JOINED`](crate::channel::JOINED)), reassembled from its chunks. The
    /// [`channel`](crate::channel) module's `cliprdr` and `dvc` read it.
    ChannelData {
        /// The channel's name (`cliprdr`, `drdynvc`, ...).
        channel: String,
        /// The message, without Channel PDU Headers.
        data: Vec<u8>,
    },
    /// The session ended: the client disconnected (MCS Disconnect Provider Ultimatum),
    /// closed the connection between two PDUs, or a [`Command::Disconnect`] or
    /// [`Command::Drop`] ended it. Always the last event of a run that returns `Ok`.
    Disconnected,
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MouseButton {
    /// Left button.
    Left,
    /// Right button.
    Right,
    /// Middle button (wheel click).
    Middle,
    /// First extended button (back).
    X1,
    /// Second extended button (forward).
    X2,
}

/// What the owner of a running session can ask of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Change the desktop size: Server Deactivate All, a fresh capability exchange and
    /// connection finalization at the new size, the pointer again, then a full frame.
    /// Both sides must be in `1..=8192`. Done whatever the client's Bitmap capability says
    /// about desktop resizing: this is a test fixture, and the point is to exercise clients.
    Resize {
        /// New desktop width.
        width: u16,
        /// New desktop height.
        height: u16,
    },
    /// End the session gracefully from the server side: Set Error Info PDU
    /// (`ERRINFO_RPC_INITIATED_DISCONNECT`, if the client announced support for it), MCS
    /// Disconnect Provider Ultimatum, then a TLS close_notify and TCP shutdown.
    Disconnect,
    /// End the session abruptly: shut the TCP connection down with no goodbye at all.
    Drop,
    /// Send a full frame again.
    Redraw,
    /// Send bytes on a static virtual channel, well-formed or not (see [`ChannelSend`]). A
    /// channel the client did not join by that name ends the session with an error.
    Channel(ChannelSend),
}

/// The largest desktop dimension RDP allows ([MS-RDPBCGR] 2.2.1.3.2).
const MAX_DIMENSION: u16 = 8192;

/// What a server keeps from its configuration for each session.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    pub(crate) desktop: DesktopSize,
    pub(crate) animate: Option<Duration>,
    pub(crate) draw_during_reactivation: bool,
    pub(crate) user_name: String,
}

impl Connection {
    /// Runs the active session on the caller's task until it ends.
    ///
    /// It sends the logon notifications (Save Session Info PDUs: logon complete, then an
    /// auto-reconnect cookie), the pointer, and a full frame, then serves the client: input
    /// is reported as [`ServerEvent`]s, Refresh Rect and Suppress Output are honoured,
    /// Shutdown Request is denied, and `commands` are carried out. With
    /// [`Config::animate`](crate::Config::animate) set, the clock in [`animated_region`] is
    /// redrawn at that period (not while the client has suppressed output).
    ///
    /// Events go to `events` (send errors are ignored: nobody has to listen). A closed
    /// `commands` channel just means no more commands.
    ///
    /// Returns `Ok` when the session ended normally (see [`ServerEvent::Disconnected`]); a
    /// client that sends something undecodable, closes the connection inside a PDU, or fails
    /// the reactivation makes it return an error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future may cut a PDU short.
    pub async fn run(
        self,
        events: UnboundedSender<ServerEvent>,
        commands: UnboundedReceiver<Command>,
    ) -> Result<(), Error> {
        let Connection {
            framed,
            result,
            acceptor,
            settings,
        } = self;
        let mut session = Session::new(framed, result, acceptor, settings, events);
        let outcome = session.serve(commands).await;
        match outcome {
            Ok(()) => {
                session.emit(ServerEvent::Disconnected);
                Ok(())
            }
            Err(e) if session.client_gone(&e) => {
                log::info!("Demo server: the client went away ({e})");
                session.emit(ServerEvent::Disconnected);
                Ok(())
            }
            Err(e) => {
                log::warn!("Demo server: session failed: {}", async_rdp::report(&e));
                Err(e)
            }
        }
    }
}

impl Connection {
    /// What the client offered for RemoteFX in its Bitmap Codecs capability set (the codec id
    /// to put in surface commands, and the entropy coder), or `None` if it did not offer it.
    pub fn remotefx_offer(&self) -> Option<RemoteFxOffer> {
        RemoteFxOffer::from_client_capabilities(&self.result.capabilities)
    }

    /// Replays pre-encoded server output instead of running the session: writes `frames[0]`,
    /// `frames[1]`, ... in turn (starting over after the last) until `count` have been written,
    /// then ends the session gracefully, as [`Command::Disconnect`] does (Set Error Info if
    /// the client takes it, MCS Disconnect Provider Ultimatum, TLS close_notify and TCP
    /// shutdown of our sending side).
    ///
    /// Each element of `frames` is written as it is, with no check: it should be whole
    /// server-to-client PDUs (the [`encode`](crate::encode) module makes fast-path ones).
    /// Nothing else is sent: no logon notification, no pointer, no first frame. The client's
    /// PDUs are not read while the frames are written; after the goodbye they are read and
    /// dropped until the client closes the connection (for at most five seconds), so that
    /// unread bytes cannot turn our close into a reset that would cut off the end of the
    /// stream on the client's side.
    ///
    /// No [`ServerEvent`] is produced. Returns an error if writing fails, or if `count` is not
    /// zero and `frames` is empty.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future may cut a PDU short.
    pub async fn replay<F: AsRef<[u8]>>(self, frames: &[F], count: usize) -> Result<(), Error> {
        if count > 0 && frames.is_empty() {
            return Err(Error::new(ErrorKind::InvalidState, "server replay").with_detail("no frames to replay"));
        }
        let Connection { mut framed, result, .. } = self;
        for frame in frames.iter().cycle().take(count) {
            framed.write_all(frame.as_ref()).await?;
        }
        let channels = Channels {
            user: result.user_channel_id,
            io: result.io_channel_id,
        };
        let error_info = result
            .client_early_capability_flags
            .contains(ironrdp_pdu::gcc::ClientEarlyCapabilityFlags::SUPPORT_ERR_INFO_PDU);
        let mut out = Vec::new();
        pdu::append_goodbye(&mut out, channels, error_info).map_err(|e| pdu::encode_error("encode disconnect", e))?;
        framed.write_all(&out).await?;
        framed.close().await?;
        let drain = async { while framed.read_by_hint(&DiscardAll).await.is_ok() {} };
        if async_std::future::timeout(REPLAY_DRAIN, drain).await.is_err() {
            log::debug!("Demo server: the client kept the connection open after the replay");
        }
        Ok(())
    }
}

/// One step of [`Connection::play`].
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Write these bytes (whole server-to-client PDUs, as [`encode`](crate::encode) makes).
    Send(Vec<u8>),
    /// Wait this long before the next step.
    Pause(Duration),
    /// Send bytes on a static virtual channel (see [`ChannelSend`]).
    Channel(ChannelSend),
}

impl Connection {
    /// Plays a script instead of running the session, for tests of how a client copes with
    /// a slow or silent server: each [`Scripted`] step in order, then nothing more, until the
    /// client closes the connection (its PDUs are read and dropped meanwhile; at most
    /// [`PLAY_LINGER`] after the script). An empty script is a server that stalls before its
    /// first update.
    ///
    /// No logon notification, pointer or first frame is sent unless the script holds them,
    /// and no [`ServerEvent`] is produced.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future may cut a PDU short.
    pub async fn play(self, script: &[Scripted]) -> Result<(), Error> {
        let Connection { mut framed, result, .. } = self;
        let mut out = Vec::new();
        for step in script {
            match step {
                Scripted::Send(bytes) => framed.write_all(bytes).await?,
                Scripted::Pause(pause) => async_std::task::sleep(*pause).await,
                Scripted::Channel(send) => {
                    out.clear();
                    channel::append(&mut out, &result.static_channels, result.user_channel_id, send)?;
                    framed.write_all(&out).await?;
                }
            }
        }
        let drain = async { while framed.read_by_hint(&DiscardAll).await.is_ok() {} };
        if async_std::future::timeout(PLAY_LINGER, drain).await.is_err() {
            log::debug!("Demo server: the client kept the connection open after the script");
        }
        Ok(())
    }
}

/// How long [`Connection::play`] keeps the connection open after its script.
pub const PLAY_LINGER: Duration = Duration::from_secs(60);

/// How long [`Connection::replay`] waits for the client to close after the goodbye.
const REPLAY_DRAIN: Duration = Duration::from_secs(5);

/// A hint that takes whatever is buffered as one frame, to drain a closing connection.
#[derive(Debug)]
struct DiscardAll;

impl ironrdp_pdu::PduHint for DiscardAll {
    fn find_size(&self, bytes: &[u8]) -> ironrdp_core::DecodeResult<Option<(bool, usize)>> {
        Ok((!bytes.is_empty()).then_some((true, bytes.len())))
    }
}

/// Whether the session goes on after handling something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    End,
}

enum Wake {
    Command(Option<Command>),
    Frame(Result<(Action, bytes::BytesMut), Error>),
    Tick,
}

struct Session {
    framed: LocalFramed<ServerStream>,
    acceptor: Option<Acceptor>,
    result: AcceptorResult,
    channels: Channels,
    settings: SessionSettings,
    events: UnboundedSender<ServerEvent>,
    fb: Framebuffer,
    encoder: BitmapEncoder,
    out: Vec<u8>,
    session_id: u32,
    tick: u64,
    next_tick: Option<Instant>,
    suppressed: bool,
    mouse: (u16, u16),
}

impl Session {
    fn new(
        framed: LocalFramed<ServerStream>,
        result: AcceptorResult,
        acceptor: Acceptor,
        settings: SessionSettings,
        events: UnboundedSender<ServerEvent>,
    ) -> Self {
        let channels = Channels {
            user: result.user_channel_id,
            io: result.io_channel_id,
        };
        let fb = Framebuffer::new(settings.desktop.width, settings.desktop.height);
        let [a, b, c, d] = pdu::random_bytes::<4>();
        Self {
            framed,
            acceptor: Some(acceptor),
            result,
            channels,
            next_tick: settings.animate.map(|period| Instant::now() + period),
            settings,
            events,
            fb,
            encoder: BitmapEncoder::default(),
            out: Vec::new(),
            session_id: u32::from_le_bytes([a, b, c, d]) % 0xFFFF + 1,
            tick: 0,
            suppressed: false,
            mouse: (0, 0),
        }
    }

    fn emit(&self, event: ServerEvent) {
        log::debug!("Demo server: {event:?}");
        let _ = self.events.unbounded_send(event);
    }

    /// Whether an error means the client is simply gone: it closed the connection between
    /// two PDUs (with or without a TLS close_notify), or reset it.
    fn client_gone(&self, e: &Error) -> bool {
        if e.kind() == ErrorKind::Closed {
            return true;
        }
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                return self.framed.peek().is_empty()
                    && matches!(
                        io.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                    );
            }
            source = cause.source();
        }
        false
    }

    async fn serve(&mut self, mut commands: UnboundedReceiver<Command>) -> Result<(), Error> {
        if self.start().await? == Flow::End {
            return Ok(());
        }
        loop {
            let wake = {
                let deadline = self.next_tick.filter(|_| !self.suppressed);
                let tick = async move {
                    match deadline {
                        Some(deadline) => {
                            async_std::task::sleep(deadline.saturating_duration_since(Instant::now())).await
                        }
                        None => futures::future::pending().await,
                    }
                }
                .fuse();
                // Framed::read_pdu is cancel safe: bytes read before another branch wins stay
                // buffered for the next iteration.
                let read = self.framed.read_pdu().fuse();
                pin_mut!(tick, read);
                select_biased! {
                    command = commands.next() => Wake::Command(command),
                    frame = read => Wake::Frame(frame),
                    () = tick => Wake::Tick,
                }
            };
            let flow = match wake {
                Wake::Command(Some(command)) => self.command(command).await?,
                Wake::Command(None) => Flow::Continue,
                Wake::Frame(frame) => {
                    let (action, frame) = frame?;
                    self.frame(action, &frame).await?
                }
                Wake::Tick => {
                    self.animate().await?;
                    Flow::Continue
                }
            };
            if flow == Flow::End {
                return Ok(());
            }
        }
    }

    /// What follows the connection sequence: input that arrived during it, the logon
    /// notifications, the pointer, and the first frame.
    async fn start(&mut self) -> Result<Flow, Error> {
        if self.backlog().await? == Flow::End {
            return Ok(Flow::End);
        }
        self.out.clear();
        pdu::append_logon(
            &mut self.out,
            self.channels,
            self.session_id,
            &self.settings.user_name,
            pdu::random_bytes(),
        )
        .map_err(|e| pdu::encode_error("encode logon notification", e))?;
        self.write_out().await?;
        self.send_pointer().await?;
        let (width, height) = (self.fb.width(), self.fb.height());
        self.emit(ServerEvent::Connected { width, height });
        if self.settings.animate.is_some() {
            self.fb.set_clock(ClockFace::now(self.tick));
        }
        self.send_frame().await?;
        Ok(Flow::Continue)
    }

    /// Handles input the acceptor set aside during connection finalization.
    async fn backlog(&mut self) -> Result<Flow, Error> {
        for frame in std::mem::take(&mut self.result.input_events) {
            let Some(first) = frame.first() else { continue };
            let action = Action::from_fp_output_header(*first).map_err(|byte| {
                Error::new(ErrorKind::InvalidFrame, "server input backlog")
                    .with_detail(format!("frame starts with {byte:#04x}"))
            })?;
            if self.frame(action, &frame).await? == Flow::End {
                return Ok(Flow::End);
            }
        }
        Ok(Flow::Continue)
    }

    async fn write_out(&mut self) -> Result<(), Error> {
        if !self.out.is_empty() {
            self.framed.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn send_pointer(&mut self) -> Result<(), Error> {
        self.out.clear();
        pdu::append_pointer(&mut self.out, self.fb.width() / 2, self.fb.height() / 2)
            .map_err(|e| pdu::encode_error("encode pointer", e))?;
        self.write_out().await
    }

    async fn send_area(&mut self, area: &InclusiveRectangle) -> Result<(), Error> {
        let picture = self.fb.picture();
        self.encoder.start(&picture, area);
        while let Some(batch) = self.encoder.next_batch(&picture)? {
            self.framed.write_all(batch).await?;
        }
        Ok(())
    }

    async fn send_frame(&mut self) -> Result<(), Error> {
        let (width, height) = (self.fb.width(), self.fb.height());
        let all = InclusiveRectangle {
            left: 0,
            top: 0,
            right: width.saturating_sub(1),
            bottom: height.saturating_sub(1),
        };
        self.send_area(&all).await?;
        self.emit(ServerEvent::FrameSent { width, height });
        Ok(())
    }

    async fn animate(&mut self) -> Result<(), Error> {
        let Some(period) = self.settings.animate else {
            return Ok(());
        };
        self.tick += 1;
        // Missed ticks are skipped, not caught up with.
        self.next_tick = Some(Instant::now() + period);
        if self.fb.set_clock(ClockFace::now(self.tick)) {
            let region = animated_region(self.fb.width(), self.fb.height());
            self.send_area(&region).await?;
        }
        Ok(())
    }

    async fn command(&mut self, command: Command) -> Result<Flow, Error> {
        log::debug!("Demo server: command {command:?}");
        match command {
            Command::Redraw => {
                self.send_frame().await?;
                Ok(Flow::Continue)
            }
            Command::Resize { width, height } => {
                self.resize(width, height).await?;
                Ok(Flow::Continue)
            }
            Command::Disconnect => {
                let error_info = self
                    .result
                    .client_early_capability_flags
                    .contains(ironrdp_pdu::gcc::ClientEarlyCapabilityFlags::SUPPORT_ERR_INFO_PDU);
                self.out.clear();
                pdu::append_goodbye(&mut self.out, self.channels, error_info)
                    .map_err(|e| pdu::encode_error("encode disconnect", e))?;
                self.write_out().await?;
                self.framed.close().await?;
                Ok(Flow::End)
            }
            Command::Channel(send) => {
                self.out.clear();
                channel::append(&mut self.out, &self.result.static_channels, self.channels.user, &send)?;
                self.write_out().await?;
                self.read_ready().await
            }
            Command::Drop => {
                let (tls, _) = self.framed.get_inner();
                let (prefixed, _) = tls.get_ref();
                prefixed
                    .get_ref()
                    .shutdown(std::net::Shutdown::Both)
                    .map_err(|e| Error::io("server drop", e))?;
                Ok(Flow::End)
            }
        }
    }

    /// The deactivation-reactivation sequence ([MS-RDPBCGR] 1.3.1.3) at a new size.
    async fn resize(&mut self, width: u16, height: u16) -> Result<(), Error> {
        if !(1..=MAX_DIMENSION).contains(&width) || !(1..=MAX_DIMENSION).contains(&height) {
            return Err(Error::new(ErrorKind::InvalidState, "server resize")
                .with_detail(format!("{width}x{height} is not a valid desktop size")));
        }
        self.out.clear();
        pdu::append_deactivate_all(&mut self.out, self.channels)
            .map_err(|e| pdu::encode_error("encode deactivate all", e))?;
        self.write_out().await?;

        let previous = self.acceptor.take().ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, "server reactivation").with_detail("no acceptor to reactivate")
        })?;
        let desktop = DesktopSize { width, height };
        let mut acceptor = Acceptor::new_deactivation_reactivation(
            previous,
            std::mem::take(&mut self.result.static_channels),
            desktop,
        )
        .map_err(|e| {
            Error::new(ErrorKind::Connector, "server reactivation")
                .with_detail(e.to_string())
                .with_source(e)
        })?;
        self.settings.desktop = desktop;
        self.fb = Framebuffer::new(width, height);
        if self.settings.animate.is_some() {
            self.fb.set_clock(ClockFace::now(self.tick));
        }
        let mut drew_early = false;
        let mut buf = WriteBuf::new();
        let result = loop {
            if let Some(result) = acceptor.get_result() {
                break result;
            }
            let state = acceptor.state().as_any().downcast_ref::<AcceptorState>();
            let finalizing = matches!(state, Some(AcceptorState::ConnectionFinalization { .. }));
            if self.settings.draw_during_reactivation && finalizing && !drew_early {
                self.send_frame().await?;
                drew_early = true;
            }
            drive_step(&mut self.framed, &mut acceptor, &mut buf, "server reactivation").await?;
        };
        self.acceptor = Some(acceptor);
        self.result = result;
        let (x, y) = self.mouse;
        self.mouse = (x.min(width - 1), y.min(height - 1));
        self.emit(ServerEvent::Resized { width, height });
        if self.backlog().await? == Flow::End {
            return Ok(());
        }
        self.send_pointer().await?;
        if drew_early {
            return Ok(());
        }
        self.send_frame().await
    }

    /// One frame from the client.
    async fn frame(&mut self, action: Action, frame: &[u8]) -> Result<Flow, Error> {
        match action {
            Action::FastPath => {
                let input: FastPathInput = decode(frame).map_err(|e| invalid("server fast-path input", e))?;
                for event in input.input_events() {
                    self.fast_path_event(event);
                }
                Ok(Flow::Continue)
            }
            Action::X224 => self.x224(frame).await,
        }
    }

    async fn x224(&mut self, frame: &[u8]) -> Result<Flow, Error> {
        let message: X224<McsMessage<'_>> = decode(frame).map_err(|e| invalid("server mcs pdu", e))?;
        match message.0 {
            McsMessage::SendDataRequest(data) if data.channel_id == self.channels.io => {
                let control: ShareControlHeader =
                    decode(data.user_data.as_ref()).map_err(|e| invalid("server share control pdu", e))?;
                match control.share_control_pdu {
                    ShareControlPdu::Data(header) => self.share_data(header.share_data_pdu).await,
                    other => {
                        log::debug!("Demo server: ignoring {}", other.as_short_name());
                        Ok(Flow::Continue)
                    }
                }
            }
            McsMessage::SendDataRequest(data) => {
                self.channel_data(data.channel_id, &data.user_data);
                Ok(Flow::Continue)
            }
            McsMessage::DisconnectProviderUltimatum(ultimatum) => {
                log::info!("Demo server: client disconnected ({:?})", ultimatum.reason);
                Ok(Flow::End)
            }
            other => {
                log::warn!("Demo server: ignoring unexpected {other:?}");
                Ok(Flow::Continue)
            }
        }
    }

    /// A client PDU on a static virtual channel: whole messages are reported.
    fn channel_data(&mut self, channel_id: u16, user_data: &[u8]) {
        match channel::receive(&mut self.result.static_channels, channel_id, user_data) {
            None => log::debug!(
                "Demo server: ignoring {} bytes on channel {channel_id}",
                user_data.len()
            ),
            // The client's chunking is not what the server is here to judge: reported, not fatal.
            Some((name, Err(e))) => log::warn!("Demo server: bad data from the client on {name}: {e}"),
            Some((channel, Ok(messages))) => {
                for data in messages {
                    self.emit(ServerEvent::ChannelData {
                        channel: channel.clone(),
                        data,
                    });
                }
            }
        }
    }

    /// Handles the client PDUs that have already arrived, without waiting for more: a test
    /// that sends many channel commands in a row still has a server that reads, as a real one
    /// does, so the client's answers do not pile up in its output queue.
    async fn read_ready(&mut self) -> Result<Flow, Error> {
        // `read_pdu` is cancel safe: a PDU begun stays buffered for the next read.
        while let Some(frame) = self.framed.read_pdu().now_or_never() {
            let (action, frame) = frame?;
            if self.frame(action, &frame).await? == Flow::End {
                return Ok(Flow::End);
            }
        }
        Ok(Flow::Continue)
    }

    async fn share_data(&mut self, pdu: ShareDataPdu) -> Result<Flow, Error> {
        match pdu {
            ShareDataPdu::Input(InputEventPdu(events)) => {
                for event in &events {
                    self.slow_path_event(event);
                }
            }
            ShareDataPdu::ShutdownRequest => {
                self.out.clear();
                pdu::append_share_data(&mut self.out, self.channels, ShareDataPdu::ShutdownDenied)
                    .map_err(|e| pdu::encode_error("encode shutdown denied", e))?;
                self.write_out().await?;
                self.emit(ServerEvent::ShutdownRequested);
            }
            ShareDataPdu::SuppressOutput(suppress) => match suppress.desktop_rect {
                None => self.suppressed = true,
                Some(_) => {
                    self.suppressed = false;
                    self.emit(ServerEvent::RefreshRequested);
                    self.send_frame().await?;
                }
            },
            ShareDataPdu::RefreshRectangle(_) => {
                self.emit(ServerEvent::RefreshRequested);
                self.send_frame().await?;
            }
            other => log::debug!("Demo server: ignoring {}", other.as_short_name()),
        }
        Ok(Flow::Continue)
    }

    fn fast_path_event(&mut self, event: &FastPathInputEvent) {
        match event {
            FastPathInputEvent::KeyboardEvent(flags, scancode) => self.emit(ServerEvent::Key {
                scancode: *scancode,
                extended: flags.contains(KeyboardFlags::EXTENDED),
                pressed: !flags.contains(KeyboardFlags::RELEASE),
            }),
            FastPathInputEvent::UnicodeKeyboardEvent(flags, code) => self.emit(ServerEvent::Unicode {
                code: *code,
                pressed: !flags.contains(KeyboardFlags::RELEASE),
            }),
            FastPathInputEvent::MouseEvent(mouse) => self.mouse_event(
                mouse.flags,
                mouse.number_of_wheel_rotation_units,
                mouse.x_position,
                mouse.y_position,
            ),
            FastPathInputEvent::MouseEventEx(mouse) => {
                self.mouse_x_event(mouse.flags, mouse.x_position, mouse.y_position)
            }
            FastPathInputEvent::MouseEventRel(mouse) => self.mouse_rel_event(mouse.flags, mouse.x_delta, mouse.y_delta),
            FastPathInputEvent::QoeEvent(_) | FastPathInputEvent::SyncEvent(_) => {
                log::debug!("Demo server: ignoring {event:?}")
            }
        }
    }

    fn slow_path_event(&mut self, event: &InputEvent) {
        match event {
            InputEvent::ScanCode(key) => match u8::try_from(key.key_code) {
                Ok(scancode) => self.emit(ServerEvent::Key {
                    scancode,
                    extended: key.flags.contains(scan_code::KeyboardFlags::EXTENDED),
                    pressed: !key.flags.contains(scan_code::KeyboardFlags::RELEASE),
                }),
                Err(_) => log::warn!("Demo server: ignoring scancode {:#x}", key.key_code),
            },
            InputEvent::Unicode(key) => self.emit(ServerEvent::Unicode {
                code: key.unicode_code,
                pressed: !key.flags.contains(unicode::KeyboardFlags::RELEASE),
            }),
            InputEvent::Mouse(mouse) => self.mouse_event(
                mouse.flags,
                mouse.number_of_wheel_rotation_units,
                mouse.x_position,
                mouse.y_position,
            ),
            InputEvent::MouseX(mouse) => self.mouse_x_event(mouse.flags, mouse.x_position, mouse.y_position),
            InputEvent::MouseRel(mouse) => self.mouse_rel_event(mouse.flags, mouse.x_delta, mouse.y_delta),
            InputEvent::Sync(_) | InputEvent::Unused(_) => log::debug!("Demo server: ignoring {event:?}"),
        }
    }

    fn mouse_event(&mut self, flags: PointerFlags, wheel: i16, x: u16, y: u16) {
        if flags.intersects(PointerFlags::VERTICAL_WHEEL | PointerFlags::HORIZONTAL_WHEEL) {
            self.emit(ServerEvent::Wheel {
                vertical: flags.contains(PointerFlags::VERTICAL_WHEEL),
                delta: wheel,
            });
            return;
        }
        self.mouse = (x, y);
        if flags.contains(PointerFlags::MOVE) {
            self.emit(ServerEvent::MouseMove { x, y });
        }
        let pressed = flags.contains(PointerFlags::DOWN);
        for (flag, button) in [
            (PointerFlags::LEFT_BUTTON, MouseButton::Left),
            (PointerFlags::RIGHT_BUTTON, MouseButton::Right),
            (PointerFlags::MIDDLE_BUTTON_OR_WHEEL, MouseButton::Middle),
        ] {
            if flags.contains(flag) {
                self.emit(ServerEvent::MouseButton { button, pressed, x, y });
            }
        }
    }

    fn mouse_x_event(&mut self, flags: PointerXFlags, x: u16, y: u16) {
        self.mouse = (x, y);
        let pressed = flags.contains(PointerXFlags::DOWN);
        for (flag, button) in [
            (PointerXFlags::BUTTON1, MouseButton::X1),
            (PointerXFlags::BUTTON2, MouseButton::X2),
        ] {
            if flags.contains(flag) {
                self.emit(ServerEvent::MouseButton { button, pressed, x, y });
            }
        }
    }

    fn mouse_rel_event(&mut self, flags: PointerRelFlags, dx: i16, dy: i16) {
        let clamp = |v: u16, d: i16, max: u16| -> u16 {
            let moved = i32::from(v) + i32::from(d);
            u16::try_from(moved.clamp(0, i32::from(max.saturating_sub(1)))).unwrap_or(0)
        };
        let (x, y) = (
            clamp(self.mouse.0, dx, self.fb.width()),
            clamp(self.mouse.1, dy, self.fb.height()),
        );
        self.mouse = (x, y);
        if flags.contains(PointerRelFlags::MOVE) {
            self.emit(ServerEvent::MouseMove { x, y });
        }
        let pressed = flags.contains(PointerRelFlags::DOWN);
        for (flag, button) in [
            (PointerRelFlags::BUTTON1, MouseButton::Left),
            (PointerRelFlags::BUTTON2, MouseButton::Right),
            (PointerRelFlags::BUTTON3, MouseButton::Middle),
            (PointerRelFlags::XBUTTON1, MouseButton::X1),
            (PointerRelFlags::XBUTTON2, MouseButton::X2),
        ] {
            if flags.contains(flag) {
                self.emit(ServerEvent::MouseButton { button, pressed, x, y });
            }
        }
    }
}

fn invalid(context: &'static str, e: ironrdp_core::DecodeError) -> Error {
    Error::new(ErrorKind::InvalidFrame, context)
        .with_detail(e.to_string())
        .with_source(e)
}
