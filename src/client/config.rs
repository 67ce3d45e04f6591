//! Client configuration: what the client asks the server for, with defaults that suit a small
//! board, and the credentials (whose secret is never printed).

use std::fmt;

use ironrdp_connector::{BitmapConfig, Credentials, DesktopSize};
use ironrdp_pdu::gcc::{ClientMonitorData, ClientMonitorExtendedData, ConnectionType, KeyboardType};
use ironrdp_pdu::rdp::capability_sets::{client_codecs_capabilities, MajorPlatformType, RailSupportLevel};
use ironrdp_pdu::rdp::client_info::{PerformanceFlags, TimezoneInfo};
use ironrdp_pdu::rdp::session_info::ServerAutoReconnect;

use crate::channels::{gcc_layout, Channel, Monitor};
use crate::client::Timeouts;
use crate::trust::Trust;

/// A surface codec the client can offer (on top of the classic bitmap codecs, which are always
/// there: planar at 32 bpp, interleaved RLE below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// RemoteFX ([MS-RDPRFX]): lossy, wavelet-based.
    ///
    /// [MS-RDPRFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdprfx/
    RemoteFx,
    /// QOI: lossless; decoded with the crate's `qoi` feature (IronRDP's own extension).
    Qoi,
    /// QOI compressed with zstd: lossless; decoded with the crate's `qoiz` feature.
    Qoiz,
}

impl Codec {
    /// Every codec this build decodes, in the order they are offered.
    pub fn available() -> &'static [Codec] {
        &[
            Codec::RemoteFx,
            #[cfg(feature = "qoi")]
            Codec::Qoi,
            #[cfg(feature = "qoiz")]
            Codec::Qoiz,
        ]
    }

    /// IronRDP's name for the codec.
    fn name(self) -> &'static str {
        match self {
            Codec::RemoteFx => "remotefx",
            Codec::Qoi => "qoi",
            Codec::Qoiz => "qoiz",
        }
    }
}

/// Which enhanced security protocols the client offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Security {
    /// TLS and NLA both (the default): the server picks, NLA when it can.
    #[default]
    Any,
    /// TLS only: the credentials travel in the Client Info PDU, for a graphical logon.
    Tls,
    /// NLA (CredSSP) only: the credentials are checked before the session starts.
    Nla,
}

/// A password or PIN. Its `Debug` and `Display` print `<redacted>`, and its memory is
/// overwritten with zeros when it is dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for handing to the protocol. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Bits per pixel the client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// 15 bpp (RGB 555): interleaved RLE bitmaps.
    Bpp15,
    /// 16 bpp (RGB 565): half the bandwidth, interleaved RLE bitmaps.
    Bpp16,
    /// 24 bpp: interleaved RLE bitmaps.
    Bpp24,
    /// 32 bpp: planar and RemoteFX bitmaps.
    Bpp32,
}

/// What the client asks of the server.
///
/// ```
/// use async_rdp::{ClientConfig, ColorDepth};
///
/// let config = ClientConfig::new("alice", "s3cret")
///     .with_domain("EXAMPLE")
///     .with_desktop_size(1024, 768)
///     .with_color_depth(ColorDepth::Bpp16);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    username: String,
    password: Secret,
    domain: Option<String>,
    desktop: DesktopSize,
    color_depth: ColorDepth,
    codecs: Vec<Codec>,
    channels: Vec<Channel>,
    monitors: Option<(ClientMonitorData, ClientMonitorExtendedData)>,
    security: Security,
    server_pointer: bool,
    keyboard_layout: u32,
    client_name: String,
    timeouts: Timeouts,
    trust: Trust,
    auto_reconnect_cookie: Option<ServerAutoReconnect>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("domain", &self.domain)
            .field("desktop", &(self.desktop.width, self.desktop.height))
            .field("color_depth", &self.color_depth)
            .field("codecs", &self.codecs)
            .field("channels", &self.channels)
            .field("security", &self.security)
            .field("server_pointer", &self.server_pointer)
            .field("keyboard_layout", &format_args!("{:#06x}", self.keyboard_layout))
            .field("timeouts", &self.timeouts)
            .field("trust", &self.trust)
            // ServerAutoReconnect's own Debug leaves its secret random bits out.
            .field("auto_reconnect_cookie", &self.auto_reconnect_cookie)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration for `username`/`password` with the defaults: a 1280x720 desktop at
    /// 32 bpp, lossless bitmap codecs plus RemoteFX, server-drawn pointer, TLS and NLA both
    /// offered (the server picks NLA when it can).
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            domain: None,
            desktop: DesktopSize {
                width: 1280,
                height: 720,
            },
            color_depth: ColorDepth::Bpp32,
            codecs: Codec::available().to_vec(),
            channels: Channel::defaults().to_vec(),
            monitors: None,
            security: Security::Any,
            server_pointer: true,
            keyboard_layout: 0x409,
            client_name: "async-rdp".to_owned(),
            timeouts: Timeouts::default(),
            // Known hosts: the first contact is remembered, a changed certificate refused.
            trust: Trust::known_hosts(),
            auto_reconnect_cookie: None,
        }
    }

    /// Sets the per-phase timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets which server certificates to trust (known hosts by default; see [`Trust`]).
    #[must_use]
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// The per-phase timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Presents the server's auto-reconnect cookie from an earlier session
    /// ([`Session::auto_reconnect_cookie`](crate::Session::auto_reconnect_cookie)), so that the
    /// server can hand back that session without a new logon ([MS-RDPBCGR] 5.5).
    ///
    /// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
    #[must_use]
    pub fn with_auto_reconnect_cookie(mut self, cookie: Option<ServerAutoReconnect>) -> Self {
        self.auto_reconnect_cookie = cookie;
        self
    }

    /// The auto-reconnect cookie to present, if any.
    pub fn auto_reconnect_cookie(&self) -> Option<&ServerAutoReconnect> {
        self.auto_reconnect_cookie.as_ref()
    }

    /// The trust policy.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Sets the Windows domain.
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Sets the desktop size to ask for (one monitor).
    #[must_use]
    pub fn with_desktop_size(mut self, width: u16, height: u16) -> Self {
        self.desktop = DesktopSize { width, height };
        // One monitor of that size: a layout set before no longer applies.
        self.monitors = None;
        self
    }

    /// Sets the colour depth.
    #[must_use]
    pub fn with_color_depth(mut self, depth: ColorDepth) -> Self {
        self.color_depth = depth;
        self
    }

    /// Chooses the surface codecs to offer. Codecs this build cannot decode
    /// ([`Codec::available`]) are left out: a client must never advertise what it cannot
    /// decode. With none, the server sends classic bitmap updates (planar at 32 bpp,
    /// interleaved RLE below). Every available codec is offered by default.
    #[must_use]
    pub fn with_codecs(mut self, codecs: &[Codec]) -> Self {
        self.codecs = Codec::available()
            .iter()
            .copied()
            .filter(|c| codecs.contains(c))
            .collect();
        self
    }

    /// Chooses the virtual channels to offer ([`Channel::defaults`] unless set).
    #[must_use]
    pub fn with_channels(mut self, channels: &[Channel]) -> Self {
        self.channels = channels.to_vec();
        self
    }

    /// Asks for a desktop laid out over these monitors from the start (GCC monitor data,
    /// [MS-RDPBCGR] 2.2.1.3.6): the desktop size becomes the layout's bounding box. The same
    /// rules as [`Display::set_monitor_layout`](crate::channels::Display::set_monitor_layout)
    /// apply; a layout they refuse is [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
    ///
    /// ```
    /// use async_rdp::{channels::Monitor, ClientConfig};
    ///
    /// let config = ClientConfig::new("alice", "s3cret")
    ///     .with_monitors(&[Monitor::primary(1920, 1080), Monitor::at(1920, 0, 1280, 1024)])?;
    /// assert_eq!((config.desktop_size().width, config.desktop_size().height), (3200, 1080));
    /// # Ok::<(), async_rdp::Error>(())
    /// ```
    ///
    /// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
    pub fn with_monitors(mut self, monitors: &[Monitor]) -> crate::Result<Self> {
        let (data, extended, (width, height)) = gcc_layout(monitors)?;
        self.desktop = DesktopSize { width, height };
        self.monitors = Some((data, extended));
        Ok(self)
    }

    /// The virtual channels offered.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Chooses which enhanced security protocols to offer ([`Security::Any`] by default).
    #[must_use]
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Asks the server to draw the pointer (on by default) or to send pointer shapes.
    #[must_use]
    pub fn with_server_pointer(mut self, on: bool) -> Self {
        self.server_pointer = on;
        self
    }

    /// The keyboard layout the server should use to read scan codes, as a Windows keyboard
    /// layout id (KLID: `0x409` US, the default; `0x407` German; `0x40C` French; `0x809` UK).
    /// Keys are sent by physical position ([`Scancode`](crate::Scancode)), so this is what
    /// makes the server turn them into the characters printed on the user's keys.
    ///
    /// ```
    /// let config = async_rdp::ClientConfig::new("alice", "s3cret").with_keyboard_layout(0x407);
    /// ```
    #[must_use]
    pub fn with_keyboard_layout(mut self, klid: u32) -> Self {
        self.keyboard_layout = klid;
        self
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The desktop size asked for.
    pub fn desktop_size(&self) -> DesktopSize {
        self.desktop
    }

    /// Builds the IronRDP connector configuration, for callers that drive the connection
    /// sequence themselves with [`connect_begin`](crate::connector::connect_begin) and friends.
    ///
    /// The result holds the password: never format it with `{:?}`.
    pub fn connector_config(&self) -> ironrdp_connector::Config {
        // IronRDP turns on every codec a spec does not switch off: name each one.
        let spec: Vec<String> = Codec::available()
            .iter()
            .map(|c| format!("{}:{}", c.name(), if self.codecs.contains(c) { "on" } else { "off" }))
            .collect();
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let codecs = client_codecs_capabilities(&spec).unwrap_or_default();
        ironrdp_connector::Config {
            desktop_size: self.desktop,
            monitor_layout: self.monitors.as_ref().map(|(data, _)| data.clone()),
            desktop_scale_factor: 0,
            desktop_physical_size: None,
            desktop_orientation: None,
            device_scale_factor: None,
            monitor_extended_layout: self.monitors.as_ref().map(|(_, extended)| extended.clone()),
            relative_mouse_input: false,
            enable_tls: matches!(self.security, Security::Any | Security::Tls),
            enable_credssp: matches!(self.security, Security::Any | Security::Nla),
            enable_standard_rdp_security: false,
            credentials: Credentials::UsernamePassword {
                username: self.username.clone(),
                password: self.password.expose().to_owned(),
            },
            domain: self.domain.clone(),
            // A build number of a current Windows client: servers gate features on it (xrdp
            // resizes a session whose client announced a build above 419 with a
            // deactivation-reactivation, and older ones not at all).
            client_build: 18363,
            client_name: self.client_name.clone(),
            keyboard_type: KeyboardType::IBM_ENHANCED,
            keyboard_subtype: 0,
            keyboard_functional_keys_count: 12,
            keyboard_layout: self.keyboard_layout,
            connection_type: ConnectionType::Lan,
            ime_file_name: String::new(),
            bitmap: Some(BitmapConfig {
                lossy_compression: self.codecs.contains(&Codec::RemoteFx),
                color_depth: match self.color_depth {
                    ColorDepth::Bpp15 => 15,
                    ColorDepth::Bpp16 => 16,
                    ColorDepth::Bpp24 => 24,
                    ColorDepth::Bpp32 => 32,
                },
                codecs,
            }),
            dig_product_id: String::new(),
            client_dir: String::new(),
            alternate_shell: String::new(),
            work_dir: String::new(),
            remote_application_mode: false,
            rail_support_level: RailSupportLevel::empty(),
            platform: MajorPlatformType::UNIX,
            hardware_id: None,
            request_data: None,
            autologon: true,
            // Set exactly when the audio channels are registered: servers open audio only
            // for a client that says it plays it.
            enable_audio_playback: crate::channels::plays_audio(&self.channels),
            enable_audio_capture: false,
            performance_flags: PerformanceFlags::default(),
            license_cache: None,
            timezone_info: TimezoneInfo::default(),
            compression_type: None,
            enable_server_pointer: self.server_pointer,
            pointer_software_rendering: false,
            multitransport_flags: None,
            // Set exactly when the pipeline's processor is registered (`channels::register`):
            // a server told we support it may send graphics only there.
            support_dyn_vc_gfx_protocol: self.channels.contains(&Channel::Graphics),
        }
    }
}
