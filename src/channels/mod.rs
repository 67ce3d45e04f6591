//! Virtual channels: which ones a connection offers ([`Channel`], chosen in
//! [`ClientConfig::with_channels`](crate::ClientConfig::with_channels)), their registration on
//! IronRDP's connector, and the session-side state of each.
//!
//! IronRDP's channel processors (`SvcProcessor`, `DvcProcessor`) require `Send`; the session
//! owns them inside its `ActiveStage` and drives them from its own poll, on the caller's thread,
//! so that bound never reaches the application. Their outgoing data goes through the session's
//! output queue, like input, so cancel safety holds.
//!
//! - `clipboard` (feature `clipboard`): the clipboard, text both ways, and images (feature
//!   `clipboard-image`);
//! - `display`: display control ([MS-RDPEDISP]) — resizing the remote desktop, and laying it
//!   out over several monitors (`monitor`), also at connection time.
//!
//! [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/

#[cfg(feature = "clipboard")]
mod clipboard;
mod display;
mod guard;
mod monitor;

use ironrdp_connector::ClientConnector;
use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_dvc::DrdynvcClient;

#[cfg(feature = "clipboard-image")]
pub use self::clipboard::ClipboardImage;
#[cfg(feature = "clipboard")]
pub(crate) use self::clipboard::ClipboardState;
#[cfg(feature = "clipboard")]
pub use self::clipboard::{Clipboard, ClipboardFormat, ClipboardText, DEFAULT_MAX_CLIPBOARD_BYTES};
pub use self::display::Display;
pub(crate) use self::display::DisplayState;
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
}

impl Channel {
    /// The channels offered by default: every one this build has.
    pub fn defaults() -> &'static [Channel] {
        &[
            Channel::DisplayControl,
            #[cfg(feature = "clipboard")]
            Channel::Clipboard,
        ]
    }
}

/// Registers the processors of `channels` on `connector`.
pub(crate) fn register(mut connector: ClientConnector, channels: &[Channel]) -> ClientConnector {
    if channels.contains(&Channel::DisplayControl) {
        // The server opens the dynamic channel and sends its capabilities; the session reads
        // them from the processor when it needs them, so the callback has nothing to do.
        let display = DisplayControlClient::new(|_capabilities| Ok(Vec::new()));
        connector = connector.with_static_channel(DrdynvcClient::new().with_dynamic_channel(display));
    }
    #[cfg(feature = "clipboard")]
    if channels.contains(&Channel::Clipboard) {
        let backend = clipboard::Backend::new(DEFAULT_MAX_CLIPBOARD_BYTES);
        connector = connector.with_static_channel(ironrdp_cliprdr::CliprdrClient::new(Box::new(backend)));
    }
    connector
}
