//! The `session_frames` target: server bytes fed to a [`Session`], the client's active stage.
//!
//! The session is built from a real [`ConnectionResult`]: once per process (per thread), the
//! connection drivers connect to the in-process demo server over loopback and TLS, and every
//! input then gets a copy of that result. The input is the whole stream the server sends after
//! the connection sequence; it is read in chunks whose sizes derive from the input's hash, and
//! ends with end of stream.
//!
//! Each copy also gets fresh virtual channels, at fixed MCS ids so that seeds hold whatever ids
//! a connection would assign: the clipboard (IronRDP's processor, with a backend that records
//! nothing) at [`CLIPRDR_CHANNEL`] and the dynamic channel transport with display control and
//! the graphics pipeline (IronRDP's client, which the session composes) at
//! [`DRDYNVC_CHANNEL`]. Channel PDUs in the input then go through the session's channel guard
//! and IronRDP's channel processors.
//!
//! # Invariants
//!
//! - nothing panics;
//! - the session ends, with an event or an error, within a number of polls bounded by the input
//!   length (the stream never stalls, so `Pending` only ever means the session yielded);
//! - after `Disconnected`, the next call fails with `Closed`;
//! - every `Graphics` rectangle lies inside the framebuffer, and the framebuffer is as large as
//!   its size and stride say (`Resized` gives its new size).

use std::any::TypeId;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use async_rdp::connector::{connect_begin, connect_finalize, mark_as_upgraded, NoNetworkClient};
use async_rdp::framing::{LocalFramed, Prefixed};
use async_rdp::ironrdp_connector::{ClientConnector, ConnectionOutcome, ConnectionResult};
use async_rdp::trust::Fingerprint;
use async_rdp::{tls, ClientConfig, Error, ErrorKind, Event, Session, Target, Trust};
use async_rdp_demo_server::{Config, DemoServer, Security};
use async_std::net::TcpStream;
use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_dvc::DrdynvcClient;

use super::stream::{ChunkedStream, Tap};

/// The MCS id of the clipboard channel of every input's session (past the ids the demo
/// connection assigns: the I/O channel's 1003, then the message channel's 1004).
pub const CLIPRDR_CHANNEL: u16 = 1008;

/// The MCS id of the dynamic channel transport (`drdynvc`) of every input's session.
pub const DRDYNVC_CHANNEL: u16 = 1009;

/// The MCS id of audio output's static channel (`rdpsnd`), with the `audio` feature; its
/// dynamic variant goes on [`DRDYNVC_CHANNEL`].
pub const RDPSND_CHANNEL: u16 = 1010;

/// The client's stream after the TLS upgrade, with taps below and above TLS.
pub type ClientStream = Tap<futures_rustls::client::TlsStream<Prefixed<Tap<TcpStream>>>>;

/// What the client read during a connection.
#[derive(Debug, Default)]
pub struct Recording {
    /// Every byte read from TCP (X.224 negotiation in clear, then TLS records).
    pub tcp: Rc<RefCell<Vec<u8>>>,
    /// How many of `tcp` were read before the TLS upgrade.
    pub tcp_before_tls: usize,
    /// Every byte read from the TLS stream, in clear.
    pub tls: Rc<RefCell<Vec<u8>>>,
}

/// A demo server configuration: TLS only (the quickest handshake), everything else default.
pub fn demo_config() -> Config {
    Config {
        security: Security::Tls,
        ..Config::default()
    }
}

/// A client configuration for `server`: its user, TLS only.
pub fn client_config(server: &DemoServer) -> ClientConfig {
    let config = server.config();
    ClientConfig::new(&config.username, config.password.as_str()).with_security(async_rdp::Security::Tls)
}

/// Runs the client side of the whole connection sequence with the drivers against the server
/// at `addr` (a loopback address), which must present the certificate `pin` names;
/// records what it reads and returns the framed stream, positioned at the start of the
/// session.
pub async fn connect(
    addr: SocketAddr,
    pin: Fingerprint,
    config: ClientConfig,
) -> Result<(LocalFramed<ClientStream>, ConnectionResult, Recording), Error> {
    let mut recording = Recording::default();
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::io("tcp connect", e))?;
    let local = tcp.local_addr().map_err(|e| Error::io("tcp connect", e))?;
    let mut connector = ClientConnector::new(config.connector_config(), local);
    let mut framed = LocalFramed::new(Tap::new(tcp, recording.tcp.clone()));

    // The drivers' futures are boxed: they are large in a debug build.
    let should_upgrade = Box::pin(connect_begin(&mut framed, &mut connector)).await?;
    recording.tcp_before_tls = recording.tcp.borrow().len() - framed.peek().len();
    let verifier = Trust::pinned([pin]).verifier(&Target::new("127.0.0.1", addr.port()))?;
    let upgraded = Box::pin(tls::upgrade(framed, "127.0.0.1", verifier)).await?;
    let token = mark_as_upgraded(should_upgrade, &mut connector)?;
    let mut framed = LocalFramed::new(Tap::new(upgraded.stream, recording.tls.clone()));
    let outcome = Box::pin(connect_finalize(
        &mut framed,
        connector,
        token,
        &mut NoNetworkClient,
        "127.0.0.1".into(),
        upgraded.server_public_key,
        None,
    ))
    .await?;
    match outcome {
        ConnectionOutcome::Connected(result) => Ok((framed, result, recording)),
        other => Err(Error::new(ErrorKind::InvalidState, "fuzz harness")
            .with_detail(format!("the demo server did not connect us: {other:?}"))),
    }
}

/// Connects to a fresh demo server and returns the connection result.
///
/// # Panics
///
/// If the demo server cannot be started or the connection fails.
pub fn demo_connection_result() -> ConnectionResult {
    async_std::task::block_on(async {
        let server = DemoServer::bind(demo_config())
            .await
            .expect("harness: start the demo server");
        let addr = server.local_addr().expect("harness: the demo server's address");
        let pin = Fingerprint::of(server.certificate());
        let (client, accepted) = futures::join!(
            Box::pin(connect(addr, pin, client_config(&server))),
            Box::pin(server.accept())
        );
        if let Err(e) = accepted {
            panic!(
                "harness: the demo server refused the connection: {}",
                async_rdp::report(&e)
            );
        }
        match client {
            Ok((_, result, _)) => result,
            Err(e) => panic!(
                "harness: connecting to the demo server failed: {}",
                async_rdp::report(&e)
            ),
        }
    })
}

/// A copy of a connection result, with fresh channels ([`CLIPRDR_CHANNEL`],
/// [`DRDYNVC_CHANNEL`]). `ConnectionResult` is not `Clone`: its static channel set holds
/// channel processors; the demo connection attaches none, so a set of fresh ones with the same
/// chunk size is a copy as good as new.
///
/// # Panics
///
/// If `result` has static channels, or uses the channel ids the copy gives its channels.
pub fn clone_result(result: &ConnectionResult) -> ConnectionResult {
    assert!(
        result.static_channels.values().next().is_none(),
        "harness: a connection result with static channels cannot be copied"
    );
    let mut copy = ConnectionResult {
        io_channel_id: result.io_channel_id,
        user_channel_id: result.user_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        static_channels: Default::default(),
        desktop_size: result.desktop_size,
        input_flags: result.input_flags,
        enable_server_pointer: result.enable_server_pointer,
        pointer_software_rendering: result.pointer_software_rendering,
        refresh_rect_support: result.refresh_rect_support,
        suppress_output_support: result.suppress_output_support,
        window_support_level: result.window_support_level,
        monitor_layout: result.monitor_layout.clone(),
        activation_factory: result.activation_factory.clone(),
        compression_type: result.compression_type,
    };
    let chunk = result.static_channels.maximum_chunk_size();
    assert!(
        copy.static_channels.set_maximum_chunk_size(chunk),
        "harness: chunk size {chunk} not accepted"
    );
    attach_channels(&mut copy);
    copy
}

/// Fresh channel processors on `result`, at the harness's channel ids.
fn attach_channels(result: &mut ConnectionResult) {
    let taken = [
        Some(result.io_channel_id),
        Some(result.user_channel_id),
        result.message_channel_id,
    ];
    assert!(
        !taken.contains(&Some(CLIPRDR_CHANNEL)) && !taken.contains(&Some(DRDYNVC_CHANNEL)),
        "harness: the demo connection uses the channel ids the harness gives its channels"
    );
    let channels = &mut result.static_channels;
    let display = DisplayControlClient::new(|_| Ok(Vec::new()));
    channels.insert(DrdynvcClient::new().with_dynamic_channel(display));
    channels.attach_channel_id(TypeId::of::<DrdynvcClient>(), DRDYNVC_CHANNEL);
    #[cfg(feature = "clipboard")]
    {
        use ironrdp_cliprdr::CliprdrClient;
        channels.insert(CliprdrClient::new(Box::new(NullClipboard)));
        channels.attach_channel_id(TypeId::of::<CliprdrClient>(), CLIPRDR_CHANNEL);
    }
    // async-rdp's own graphics pipeline processor: the input then goes through the session's
    // composing, counting and redraw requests, not only IronRDP's decoder.
    async_rdp::channels::attach_graphics(result);
    // async-rdp's own audio processors, not IronRDP's bare ones: the input then goes through
    // the session's screens, decoders and queue (after drdynvc, whose transport it joins).
    #[cfg(feature = "audio")]
    async_rdp::channels::attach_audio(result, RDPSND_CHANNEL);
}

/// A clipboard backend that records nothing (the session's own backend is private to it).
#[cfg(feature = "clipboard")]
#[derive(Debug)]
struct NullClipboard;

#[cfg(feature = "clipboard")]
async_rdp::ironrdp_core::impl_as_any!(NullClipboard);

#[cfg(feature = "clipboard")]
impl ironrdp_cliprdr::backend::CliprdrBackend for NullClipboard {
    fn temporary_directory(&self) -> &str {
        ""
    }

    fn client_capabilities(&self) -> ironrdp_cliprdr::pdu::ClipboardGeneralCapabilityFlags {
        ironrdp_cliprdr::pdu::ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {}

    fn on_process_negotiated_capabilities(&mut self, _: ironrdp_cliprdr::pdu::ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, _: &[ironrdp_cliprdr::pdu::ClipboardFormat]) {}

    fn on_format_data_request(&mut self, _: ironrdp_cliprdr::pdu::FormatDataRequest) {}

    fn on_format_data_response(&mut self, _: ironrdp_cliprdr::pdu::FormatDataResponse<'_>) {}

    fn on_file_contents_request(&mut self, _: ironrdp_cliprdr::pdu::FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: ironrdp_cliprdr::pdu::FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: ironrdp_cliprdr::pdu::LockDataId) {}

    fn on_unlock(&mut self, _: ironrdp_cliprdr::pdu::LockDataId) {}
}

thread_local! {
    static RESULT: ConnectionResult = demo_connection_result();
}

/// Makes sure the connection result exists (the first call connects to the demo server).
pub fn init() {
    RESULT.with(|_| ());
}

/// Read sizes for an input: derived from its hash, so that each input is read the same way
/// every time, and a mutated input differently.
fn read_sizes(data: &[u8]) -> Vec<usize> {
    // FNV-1a, then xorshift64.
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    if next() % 4 == 0 {
        return Vec::new();
    }
    (0..8)
        .map(|_| {
            let r = next();
            let limit = match r % 4 {
                0 => 16,
                1 => 512,
                _ => 0x8000,
            };
            usize::try_from((r >> 8) % limit).unwrap_or(0) + 1
        })
        .collect()
}

/// The fuzz target.
pub fn check(data: &[u8]) {
    let result = RESULT.with(clone_result);
    let stream = ChunkedStream::new(data, read_sizes(data), false);
    let mut session = Session::new(LocalFramed::new(stream), result);
    let mut cx = Context::from_waker(Waker::noop());
    let budget = 64 * data.len() + 4096;
    for _ in 0..budget {
        match session.poll_next_event(&mut cx) {
            Poll::Pending => {}
            Poll::Ready(Ok(Event::Disconnected(_))) => {
                assert!(session.is_closed(), "invariant: open after Disconnected");
                match session.poll_next_event(&mut cx) {
                    Poll::Ready(Err(e)) if e.kind() == ErrorKind::Closed => return,
                    other => panic!("invariant: after Disconnected, next_event gave {other:?}"),
                }
            }
            Poll::Ready(Ok(event)) => check_event(&session, &event),
            Poll::Ready(Err(_)) => return,
        }
    }
    panic!(
        "invariant: the session neither ended nor failed after {budget} polls of a {}-byte stream",
        data.len()
    );
}

fn check_event<S>(session: &Session<S>, event: &Event) {
    let fb = session.framebuffer();
    let (width, height) = (usize::from(fb.width), usize::from(fb.height));
    assert!(
        fb.stride >= width * 4 && fb.data.len() >= fb.stride * height,
        "invariant: a {width}x{height} framebuffer of stride {} holds {} bytes",
        fb.stride,
        fb.data.len()
    );
    match event {
        Event::Graphics(rect) => assert!(
            usize::from(rect.x) + usize::from(rect.width) <= width
                && usize::from(rect.y) + usize::from(rect.height) <= height,
            "invariant: {rect:?} reaches outside the {width}x{height} framebuffer"
        ),
        Event::Resized { width: w, height: h } => assert_eq!(
            (*w, *h),
            (fb.width, fb.height),
            "invariant: Resized does not give the framebuffer's size"
        ),
        _ => {}
    }
}
