//! Virtual channels: which ones a connection offers ([`Channel`], chosen in
//! [`ClientConfig::with_channels`](crate::ClientConfig::with_channels)), their registration on
//! IronRDP's connector, and the session-side state of each.
//!
//! IronRDP's channel processors (`SvcProcessor`, `DvcProcessor`) require `Send`; the session
//! owns them inside its `ActiveStage` and drives them from its own poll, on the caller's thread,
//! so that bound never reaches the application. Their outgoing data goes through the session's
//! output queue, like input, so cancel safety holds.
//!
//! - `audio` (feature `audio`): audio output ([MS-RDPEA]), decoded PCM for the application, and
//!   playback through ALSA (feature `alsa`);
//! - `clipboard` (feature `clipboard`): the clipboard, text both ways, and images (feature
//!   `clipboard-image`);
//! - `graphics`: the graphics pipeline ([MS-RDPEGFX]), composed into the session's framebuffer;
//! - `display`: display control ([MS-RDPEDISP]) — resizing the remote desktop, and laying it
//!   out over several monitors (`monitor`), also at connection time.
//!
//! [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/
//! [MS-RDPEGFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpegfx/
//! [MS-RDPEA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpea/

#[cfg(feature = "audio")]
mod audio;
#[cfg(feature = "clipboard")]
mod clipboard;
mod display;
mod graphics;
mod guard;
mod monitor;

use ironrdp_connector::ClientConnector;
use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_dvc::DrdynvcClient;

#[cfg(feature = "audio")]
#[doc(hidden)]
pub use self::audio::attach_audio;
#[cfg(feature = "alsa")]
pub use self::audio::AlsaSink;
#[cfg(feature = "audio")]
pub(crate) use self::audio::AudioState;
#[cfg(feature = "audio")]
pub use self::audio::{Audio, AudioChunk, AudioEvent, AudioSink, PcmFormat, Volume, DEFAULT_MAX_AUDIO_BUFFERED};
#[cfg(feature = "clipboard-image")]
pub use self::clipboard::ClipboardImage;
#[cfg(feature = "clipboard")]
pub(crate) use self::clipboard::ClipboardState;
#[cfg(feature = "clipboard")]
pub use self::clipboard::{Clipboard, ClipboardFormat, ClipboardText, DEFAULT_MAX_CLIPBOARD_BYTES};
pub use self::display::Display;
pub(crate) use self::display::DisplayState;
pub use self::graphics::{attach_graphics, GraphicsPath, GraphicsReport};
pub(crate) use self::guard::{ChannelGuard, Verdict};
pub(crate) use self::monitor::gcc_layout;
pub use self::monitor::{Monitor, Orientation};

/// A virtual channel the client can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// Display control ([MS-RDPEDISP]) over the dynamic virtual channel transport: the remote
    /// desktop follows the client's size ([`Session::display`](crate::Session::display)).
    ///
    /// [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/
    DisplayControl,
    /// The clipboard ([MS-RDPECLIP]), text (and, with the `clipboard-image` feature, images) both ways
    /// ([`Session::clipboard`](crate::Session::clipboard)). Needs the `clipboard` feature
    /// (on by default); without it the channel is not offered.
    ///
    /// [MS-RDPECLIP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpeclip/
    Clipboard,
    /// The graphics pipeline ([MS-RDPEGFX]): the server draws surfaces with modern codecs
    /// (RemoteFX Progressive, planar, ClearCodec, ...; H.264 with the `h264` feature) instead
    /// of fast-path bitmaps, and the client acknowledges each frame so that a slow client slows
    /// the server down. Some servers require it (GNOME Remote Desktop with client monitor
    /// layouts); a server without it keeps the legacy path.
    ///
    /// [MS-RDPEGFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpegfx/
    Graphics,
    /// Audio output ([MS-RDPEA]) on the `rdpsnd` channel or its dynamic variant
    /// `AUDIO_PLAYBACK_DVC` (Windows 8+, GNOME), with `rdpdr` offered with no devices
    /// (servers open audio only for a client that has it): the server's sound, decoded
    /// ([`Session::audio`](crate::Session::audio)). Needs the `audio` feature.
    ///
    /// [MS-RDPEA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpea/
    #[cfg(feature = "audio")]
    Audio,
}

impl Channel {
    /// The channels offered by default: every one this build has.
    pub fn defaults() -> &'static [Channel] {
        &[
            Channel::DisplayControl,
            #[cfg(feature = "clipboard")]
            Channel::Clipboard,
            Channel::Graphics,
            #[cfg(feature = "audio")]
            Channel::Audio,
        ]
    }
}

/// Whether `channels` offer audio output. The Client Info says so (without it, its
/// INFO_NOAUDIOPLAYBACK flag tells the server not to play sound at the client: Windows and
/// FreeRDP-based servers such as GNOME Remote Desktop then open no audio channel at all).
#[cfg(feature = "audio")]
pub(crate) fn plays_audio(channels: &[Channel]) -> bool {
    channels.contains(&Channel::Audio)
}

/// Whether `channels` offer audio output: never without the `audio` feature.
#[cfg(not(feature = "audio"))]
pub(crate) fn plays_audio(_channels: &[Channel]) -> bool {
    false
}

/// Registers the processors of `channels` on `connector`.
pub(crate) fn register(mut connector: ClientConnector, channels: &[Channel]) -> ClientConnector {
    // One dynamic channel transport for every dynamic channel. Each is registered as a
    // factory: a server may close a dynamic channel and open it again, which needs a fresh
    // processor (a closed one refuses data).
    let mut dynamic: Option<DrdynvcClient> = None;
    if channels.contains(&Channel::DisplayControl) {
        // The server opens the dynamic channel and sends its capabilities; the session reads
        // them from the processor when it needs them, so the callback has nothing to do.
        let display = || DisplayControlClient::new(|_capabilities| Ok(Vec::new()));
        let name = ironrdp_displaycontrol::CHANNEL_NAME;
        dynamic = Some(dynamic.unwrap_or_default().with_dynamic_channel_factory(name, display));
    }
    if channels.contains(&Channel::Graphics) {
        let name = ironrdp_egfx::CHANNEL_NAME;
        dynamic = Some(
            dynamic
                .unwrap_or_default()
                .with_dynamic_channel_factory(name, graphics::factory()),
        );
    }
    // Audio goes both ways: Windows 8+ and GNOME open the dynamic channel, older servers the
    // static one; both report to the same link, which the session finds on either.
    #[cfg(feature = "audio")]
    let audio = channels.contains(&Channel::Audio).then(audio::AudioLink::new);
    #[cfg(feature = "audio")]
    if let Some(link) = &audio {
        let name = ironrdp_rdpsnd::client::DVC_CHANNEL_NAME;
        dynamic = Some(
            dynamic
                .unwrap_or_default()
                .with_dynamic_channel_factory(name, link.dvc_factory()),
        );
    }
    if let Some(dynamic) = dynamic {
        connector = connector.with_static_channel(dynamic);
    }
    #[cfg(feature = "clipboard")]
    if channels.contains(&Channel::Clipboard) {
        let backend = clipboard::Backend::new(DEFAULT_MAX_CLIPBOARD_BYTES);
        connector = connector.with_static_channel(ironrdp_cliprdr::CliprdrClient::new(Box::new(backend)));
    }
    #[cfg(feature = "audio")]
    if let Some(link) = &audio {
        connector = audio::register(connector, link);
    }
    connector
}
