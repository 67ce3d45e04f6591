//! Display control: [`Display::resize`] asks the server for a new desktop size over the
//! DisplayControl dynamic channel, coalescing requests and sending the next only once the
//! server has answered the previous one (with a deactivation-reactivation, which the session
//! turns into [`Event::Resized`](crate::Event::Resized)).

use std::time::{Duration, Instant};

use ironrdp_displaycontrol::pdu::{DisplayControlMonitorLayout, MonitorLayoutEntry};

use super::Monitor;

use crate::framing::{FramedRead, FramedWrite};
use crate::session::Session;
use crate::{Error, ErrorKind, Phase, Result};

/// How long a request may wait for the server's answer before the next one is sent anyway (a
/// server may ignore a size it cannot do).
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How long after an answer (a finished reactivation) the next request waits: a server is
/// still settling into the new size then (xrdp 0.9 fails its session on a second resize that
/// comes straight after the first), and a window being dragged produces a new size every
/// few milliseconds, of which only the last matters.
const AFTER_ANSWER: Duration = Duration::from_millis(1000);

/// The session's display-control bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct DisplayState {
    /// Whether the connection offered the channel and the server joined its transport.
    offered: bool,
    /// The request to send next (the last one asked: requests coalesce).
    pending: Option<Request>,
    /// No request goes out before this (an answer awaited, or a server settling).
    not_before: Option<Instant>,
    /// Requests sent, for the application's diagnostics.
    sent: u32,
    /// Wakes the session when the pending request may go, so that it is sent even if the
    /// server sends nothing meanwhile.
    retry: Option<crate::net::Timer>,
}

impl DisplayState {
    pub(crate) fn new(offered: bool) -> Self {
        Self {
            offered,
            ..Self::default()
        }
    }

    /// The server answered (a reactivation finished): the next request may go once it settled.
    pub(crate) fn answered(&mut self) {
        self.not_before = Some(Instant::now() + AFTER_ANSWER);
        self.retry = None;
    }

    /// Registers a wake-up for when the pending request may go.
    pub(crate) fn poll_retry(&mut self, cx: &mut std::task::Context<'_>) {
        let (Some(_), Some(at)) = (&self.pending, self.not_before) else {
            self.retry = None;
            return;
        };
        let timer = self.retry.get_or_insert_with(|| crate::net::Timer::at(at));
        let _ = std::future::Future::poll(std::pin::Pin::new(timer), cx);
    }

    /// The request to send now, if one is pending and may go.
    fn due(&self, now: Instant) -> Option<&Request> {
        match self.not_before {
            Some(at) if now < at => None,
            _ => self.pending.as_ref(),
        }
    }

    fn sent(&mut self, now: Instant) {
        self.pending = None;
        self.not_before = Some(now + ANSWER_WAIT);
        self.retry = None;
        self.sent += 1;
    }
}

/// A display-control request: one monitor of a size, or a whole layout.
#[derive(Debug)]
enum Request {
    Size(u32, u32),
    Layout(DisplayControlMonitorLayout),
}

impl Request {
    /// The desktop size the request asks for.
    fn size(&self) -> (u32, u32) {
        match self {
            Request::Size(width, height) => (*width, *height),
            Request::Layout(layout) => layout.desktop_size(),
        }
    }
}

/// Display control of a [`Session`]: resizes the remote desktop.
///
/// ```no_run
/// # async fn follow(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
/// use async_rdp::Event;
///
/// session.display().resize(1024, 768)?;
/// loop {
///     if let Event::Resized { width, height } = session.next_event().await? {
///         break println!("now {width}x{height}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Display<'a, S> {
    session: &'a mut Session<S>,
}

impl<'a, S> Display<'a, S> {
    pub(crate) fn new(session: &'a mut Session<S>) -> Self {
        Self { session }
    }
}

impl<S: FramedRead + FramedWrite> Display<'_, S> {
    /// Asks the server to resize the desktop to `width` x `height`, adjusted as [MS-RDPEDISP]
    /// 2.2.2.2.1 requires (even width, 200..=8192 each way) and to the server's announced
    /// limits. Queued: sent by the session's next poll once the server has announced its
    /// display-control capabilities, and only once the previous request was answered and the
    /// server had a second to settle into its new size, so that
    /// a window dragged across many sizes sends the last one rather than each. Returns the
    /// adjusted size.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] when the channel was not offered
    /// ([`ClientConfig::with_channels`](crate::ClientConfig::with_channels)) or the server does
    /// not support dynamic channels.
    ///
    /// [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(u32, u32)> {
        let size = MonitorLayoutEntry::adjust_display_size(width, height);
        log::debug!("Resize to {}x{} requested", size.0, size.1);
        self.request(Request::Size(size.0, size.1))
    }

    /// Asks the server to lay the desktop out over `monitors` (positions, primary, scale,
    /// orientation), adjusted and checked as [MS-RDPEDISP] 2.2.2.2 requires and fitted to the
    /// server's limits; queued and coalesced with [`resize`](Self::resize) requests. Returns the
    /// size of the desktop that covers the layout.
    ///
    /// ```no_run
    /// # fn two(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
    /// use async_rdp::channels::Monitor;
    ///
    /// session.display().set_monitor_layout(&[Monitor::primary(1920, 1080), Monitor::at(1920, 0, 1280, 1024)])?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`resize`](Self::resize), and [`ErrorKind::InvalidInput`] for a layout the protocol
    /// does not allow (not exactly one primary monitor at (0, 0), overlapping or detached
    /// monitors, more than 16).
    ///
    /// [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/
    pub fn set_monitor_layout(&mut self, monitors: &[Monitor]) -> Result<(u32, u32)> {
        let layout = super::monitor::display_layout(monitors).map_err(|e| e.with_phase(Phase::Session))?;
        log::debug!("Monitor layout of {} monitors requested", layout.monitors().len());
        self.request(Request::Layout(layout))
    }

    fn request(&mut self, request: Request) -> Result<(u32, u32)> {
        if !self.session.display.offered {
            return Err(Error::new(ErrorKind::Unsupported, "resize")
                .with_detail(
                    "the server does not support display control (the connection has no dynamic channel transport, \
                     or ClientConfig did not offer Channel::DisplayControl)",
                )
                .with_phase(Phase::Session));
        }
        let size = request.size();
        self.session.display.pending = Some(request);
        self.session.send_display_request()?;
        Ok(size)
    }

    /// Whether the server has opened the channel and announced its capabilities (until then,
    /// requests wait).
    pub fn is_ready(&mut self) -> bool {
        self.session.stage.display_control_ready() == Some(true)
    }

    /// Resize requests sent to the server so far (after coalescing).
    pub fn requests_sent(&self) -> u32 {
        self.session.display.sent
    }
}

impl<S> Session<S> {
    /// Sends the pending resize request if the channel is ready and no answer is awaited.
    pub(crate) fn send_display_request(&mut self) -> Result<()> {
        // Called for every frame: without a pending request, not even the clock is read.
        if self.display.pending.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        let Some(request) = self.display.due(now) else {
            return Ok(());
        };
        let current = (u32::from(self.image.width()), u32::from(self.image.height()));
        if matches!(request, Request::Size(..)) && request.size() == current {
            // Already that size: nothing to ask.
            self.display.pending = None;
            return Ok(());
        }
        let encoded = crate::redact::scoped(|| match request {
            Request::Size(width, height) => self.stage.encode_resize(*width, *height, None, None),
            Request::Layout(layout) => self.stage.encode_monitor_layout(layout),
        });
        let Some(frame) = encoded else { return Ok(()) }; // not ready yet: stays pending
        let frame = frame.map_err(|e| {
            Error::new(ErrorKind::Session, "resize")
                .with_detail(e.to_string())
                .with_phase(Phase::Session)
        })?;
        let (width, height) = request.size();
        self.queue_frame(&frame);
        self.display.sent(now);
        log::debug!("Sent a display-control layout of {width}x{height}");
        Ok(())
    }
}
