//! The active session: the server's graphics decoded into a framebuffer, protocol outputs
//! turned into [`Event`]s, input sent back; all driven from [`Session::next_event`] on the
//! caller's task.
//!
//! Outgoing bytes (input, responses the decoder asks for) go into a queue owned by the session
//! and are written as `next_event` (or [`Session::flush`]) is polled. Nothing is lost when a
//! `next_event` future is dropped, so the session can sit in a `select!` next to the
//! application's own futures.
//!
//! - `driver`: the poll loop, as named steps (send, hand out an event, check the idle timer,
//!   step a reactivation or decode a frame) within a budget per wake-up;
//! - `output`: IronRDP's outputs turned into events and queued frames;
//! - `event`: [`Event`] and the types it carries, [`Framebuffer`];
//! - `input`: keys and mouse;
//! - `reactivation`: deactivation-reactivation (a server-side resize);
//! - `shutdown`: the graceful goodbye, redraw requests;
//! - `frame_progress` and `drawn`: whether a frame is half sent, and waiting for the screen to
//!   be drawn.

mod drawn;
mod driver;
mod event;
mod frame_progress;
mod input;
mod output;
mod reactivation;
mod shutdown;

use std::collections::VecDeque;
use std::time::Duration;

use ironrdp_connector::connection_activation::{ConnectionActivationFactory, ConnectionActivationSequence};
use ironrdp_connector::ConnectionResult;
use ironrdp_core::WriteBuf;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::rdp::capability_sets::InputFlags;
use ironrdp_pdu::rdp::session_info::ServerAutoReconnect;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder};

pub use self::drawn::Drawn;
pub use self::event::{DisconnectReason, Event, Framebuffer, PointerEvent, Rect};
use self::frame_progress::FrameProgress;
pub use self::input::{ButtonState, KeyState, MouseButton, Scancode};
pub(crate) use self::output::session_error;
use crate::channels::{Display, DisplayState};
use crate::framing::Framed;

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
    pub(crate) stage: ActiveStage,
    pub(crate) image: DecodedImage,
    negotiated: Negotiated,
    activation: Option<Box<ConnectionActivationSequence>>,
    pub(crate) events: VecDeque<Event>,
    out: Vec<u8>,
    out_pos: usize,
    scratch: WriteBuf,
    auto_reconnect_cookie: Option<ServerAutoReconnect>,
    pressed_keys: Vec<Scancode>,
    pressed_buttons: Vec<MouseButton>,
    mouse: (u16, u16),
    state: State,
    shutdown_requested: bool,
    idle: Option<Idle>,
    frames: FrameProgress,
    pub(crate) display: DisplayState,
    #[cfg(feature = "clipboard")]
    pub(crate) clipboard: crate::channels::ClipboardState,
    #[cfg(feature = "audio")]
    pub(crate) audio: crate::channels::AudioState,
    /// Looks at virtual channel data before IronRDP does (`channels::guard`).
    pub(crate) guard: crate::channels::ChannelGuard,
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
        let display = DisplayState::new(display_control_offered(&result));
        let guard = crate::channels::ChannelGuard::new(&result);
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
            display,
            #[cfg(feature = "clipboard")]
            clipboard: crate::channels::ClipboardState::default(),
            #[cfg(feature = "audio")]
            audio: crate::channels::AudioState::default(),
            guard,
        }
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
        self.frames.in_progress() || self.graphics_frame_open()
    }

    /// Display control: resizing the remote desktop (see [`Display`]).
    pub fn display(&mut self) -> Display<'_, S> {
        Display::new(self)
    }

    /// The clipboard: text and images both ways (see [`Clipboard`](crate::channels::Clipboard)).
    #[cfg(feature = "clipboard")]
    pub fn clipboard(&mut self) -> crate::channels::Clipboard<'_, S> {
        crate::channels::Clipboard::new(self)
    }

    /// The framed stream the session runs on.
    pub fn framed(&self) -> &Framed<S> {
        &self.framed
    }
}

/// Whether the connection offered display control and the server joined the dynamic channel
/// transport it runs on.
fn display_control_offered(result: &ConnectionResult) -> bool {
    use ironrdp_displaycontrol::client::DisplayControlClient;
    use ironrdp_dvc::DrdynvcClient;
    let joined = result
        .static_channels
        .get_channel_id_by_type::<DrdynvcClient>()
        .is_some();
    let registered = result
        .static_channels
        .get_by_type::<DrdynvcClient>()
        .and_then(|channel| channel.channel_processor_downcast_ref::<DrdynvcClient>())
        .is_some_and(DrdynvcClient::has_registered_dvc::<DisplayControlClient>);
    joined && registered
}
