//! The phases of a connection, what each may take ([`Timeouts`]) and took
//! ([`ConnectTimings`]), and the runner that bounds, times and labels each one.

use std::fmt;
use std::future::Future;
use std::ops::{Index, IndexMut};
use std::time::{Duration, Instant};

use crate::{net, Result};

/// A phase of a connection, in order. Every error of [`connect`](crate::connect) names its
/// phase ([`Error::phase`](crate::Error::phase)); [`Timeouts`] and [`ConnectTimings`] are
/// indexed by it.
///
/// ```
/// use async_rdp::{Phase, Timeouts};
/// use std::time::Duration;
///
/// let timeouts = Timeouts::default().with(Phase::Nla, Duration::from_secs(5));
/// assert_eq!(timeouts[Phase::Nla], Some(Duration::from_secs(5)));
/// assert_eq!(Phase::Nla.to_string(), "nla");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Phase {
    /// The TCP connection.
    Tcp,
    /// The X.224 negotiation of the security protocol.
    Negotiation,
    /// The TLS handshake.
    Tls,
    /// CredSSP (NLA), when negotiated.
    Nla,
    /// The licensing exchange, when the server runs it.
    Licensing,
    /// Everything else up to the session: basic settings, channels, capabilities,
    /// finalization.
    Activation,
    /// The running session.
    Session,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 7] = [
        Phase::Tcp,
        Phase::Negotiation,
        Phase::Tls,
        Phase::Nla,
        Phase::Licensing,
        Phase::Activation,
        Phase::Session,
    ];

    /// The phase's name in errors and reports: `tcp`, `negotiation`, `tls`, `nla`,
    /// `licensing`, `activation`, `session`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Tcp => "tcp",
            Phase::Negotiation => "negotiation",
            Phase::Tls => "tls",
            Phase::Nla => "nla",
            Phase::Licensing => "licensing",
            Phase::Activation => "activation",
            Phase::Session => "session",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long each phase may take (`None`: no limit), indexed by [`Phase`].
///
/// The defaults: 10 s for TCP, negotiation and TLS; 20 s for NLA, licensing and activation;
/// no limit in the session, where [`Phase::Session`] is the idle timeout — how long the
/// server may send nothing before [`Session::next_event`](crate::Session::next_event) fails
/// with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (a dead link, a half-open socket). An
/// idle desktop may legitimately send nothing for minutes, so it is off unless set.
///
/// ```
/// use async_rdp::{Phase, Timeouts};
/// use std::time::Duration;
///
/// let mut timeouts = Timeouts::default();
/// timeouts[Phase::Session] = Some(Duration::from_secs(60));
/// assert_eq!(timeouts[Phase::Tls], Some(Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    limits: [Option<Duration>; Phase::ALL.len()],
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut timeouts = Self {
            limits: [None; Phase::ALL.len()],
        };
        for phase in [Phase::Tcp, Phase::Negotiation, Phase::Tls] {
            timeouts[phase] = Some(Duration::from_secs(10));
        }
        for phase in [Phase::Nla, Phase::Licensing, Phase::Activation] {
            timeouts[phase] = Some(Duration::from_secs(20));
        }
        timeouts
    }
}

impl Timeouts {
    /// These timeouts with `phase` limited to `limit`.
    #[must_use]
    pub fn with(mut self, phase: Phase, limit: Duration) -> Self {
        self[phase] = Some(limit);
        self
    }
}

impl Index<Phase> for Timeouts {
    type Output = Option<Duration>;
    fn index(&self, phase: Phase) -> &Option<Duration> {
        &self.limits[phase.index()]
    }
}

impl IndexMut<Phase> for Timeouts {
    fn index_mut(&mut self, phase: Phase) -> &mut Option<Duration> {
        &mut self.limits[phase.index()]
    }
}

/// How long each phase of the last connection took, indexed by [`Phase`] (`None`: the phase
/// did not happen).
///
/// ```
/// # async fn show(target: &str, config: async_rdp::ClientConfig) -> async_rdp::Result<()> {
/// let (_session, timings) = async_rdp::connect_with_timings(target, config).await?;
/// for (phase, took) in timings.iter() {
///     println!("{phase:<12} {took:?}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectTimings {
    took: [Option<Duration>; Phase::ALL.len()],
    /// Whether a server redirection was followed (the timings are the redirected connection's).
    pub redirected: bool,
}

impl ConnectTimings {
    /// The phases that happened, in order, with how long each took.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, Duration)> + '_ {
        Phase::ALL.into_iter().filter_map(|phase| Some((phase, self[phase]?)))
    }

    fn add(&mut self, phase: Phase, took: Duration) {
        let slot = &mut self.took[phase.index()];
        *slot = Some(slot.unwrap_or_default() + took);
    }
}

impl Index<Phase> for ConnectTimings {
    type Output = Option<Duration>;
    fn index(&self, phase: Phase) -> &Option<Duration> {
        &self.took[phase.index()]
    }
}

/// Runs the steps of a connection, each in its phase: bounded by the phase's timeout (counted
/// over all of that phase's steps), timed into [`ConnectTimings`], and with its errors
/// labelled with the phase.
pub(crate) struct PhaseRunner {
    timeouts: Timeouts,
    timings: ConnectTimings,
}

impl PhaseRunner {
    pub(crate) fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            timings: ConnectTimings::default(),
        }
    }

    /// Runs `step` as part of `phase`.
    pub(crate) async fn run<T>(&mut self, phase: Phase, step: impl Future<Output = Result<T>>) -> Result<T> {
        let spent = self.timings[phase].unwrap_or_default();
        let start = Instant::now();
        let result = match self.timeouts[phase] {
            Some(limit) => net::with_timeout(limit.saturating_sub(spent), phase.name(), step).await,
            None => step.await,
        };
        self.timings.add(phase, start.elapsed());
        result.map_err(|e| e.in_phase(phase))
    }

    pub(crate) fn timings(&self) -> ConnectTimings {
        self.timings
    }

    pub(crate) fn set_redirected(&mut self) {
        self.timings = ConnectTimings {
            redirected: true,
            ..ConnectTimings::default()
        };
    }
}
