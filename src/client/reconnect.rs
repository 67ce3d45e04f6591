//! Connecting again after a failure: exponential backoff with jitter, a bounded number of
//! attempts, and the server's auto-reconnect cookie when the lost session left one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::{connect, ClientSession, IntoTarget};
use crate::{ClientConfig, Error, ErrorKind, Result};

/// How [`connect_with_retry`] and [`reconnect`] space their attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Wait before the second attempt.
    pub initial: Duration,
    /// Longest wait between two attempts.
    pub max: Duration,
    /// Each wait is the previous one times this.
    pub multiplier: f64,
    /// Each wait is scaled by a random factor in `1 - jitter ..= 1 + jitter`, so that many
    /// clients that lost the same server do not come back in step.
    pub jitter: f64,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (1-based; attempt 1 has none), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(attempt - 2).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }
}

/// Whether an error may go away by trying again (the link, not the credentials or the trust).
pub fn is_transient(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Io | ErrorKind::Closed | ErrorKind::UnexpectedEof | ErrorKind::Timeout
    )
}

/// [`connect`], retried with `backoff` while the failure [is transient](is_transient). Returns
/// the first session, or the last error once the attempts are spent (or at once for an error
/// that trying again cannot fix, such as refused credentials or an untrusted certificate).
///
/// ```no_run
/// # async_std::task::block_on(async {
/// use async_rdp::{connect_with_retry, Backoff, ClientConfig};
///
/// let config = ClientConfig::new("alice", "s3cret");
/// let session = connect_with_retry("192.0.2.10:3389", &config, &Backoff::default()).await?;
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the future abandons the current attempt.
pub async fn connect_with_retry(
    target: impl IntoTarget,
    config: &ClientConfig,
    backoff: &Backoff,
) -> Result<ClientSession> {
    let target = target.into_target()?;
    let mut jitter = Jitter::new();
    let mut attempt = 1;
    loop {
        match connect(&target, config.clone()).await {
            Ok(session) => return Ok(session),
            Err(e) if attempt < backoff.max_attempts && is_transient(&e) => {
                let wait = jitter.apply(backoff.delay(attempt + 1), backoff.jitter);
                log::info!(
                    "Connection attempt {attempt} of {} failed ({}); retrying in {wait:?}",
                    backoff.max_attempts,
                    crate::report(&e)
                );
                crate::net::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => {
                if attempt > 1 {
                    log::warn!("Giving up after {attempt} attempts: {}", crate::report(&e));
                }
                return Err(e);
            }
        }
    }
}

/// Connects again after `lost` ended without a goodbye, presenting its auto-reconnect cookie
/// (if the server sent one) so that the server can hand back the same session.
///
/// # Cancel safety
///
/// As [`connect_with_retry`].
pub async fn reconnect(
    target: impl IntoTarget,
    config: &ClientConfig,
    lost: &ClientSession,
    backoff: &Backoff,
) -> Result<ClientSession> {
    let config = config
        .clone()
        .with_auto_reconnect_cookie(lost.auto_reconnect_cookie().cloned());
    connect_with_retry(target, &config, backoff).await
}

/// A small xorshift generator for jitter: not for secrets, just to spread clients apart.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Mix in a stack address so that clients started in the same nanosecond still differ.
        let local = 0u8;
        let seed = u64::from(nanos) ^ (std::ptr::addr_of!(local) as u64).rotate_left(32);
        Self(seed | 1)
    }

    fn apply(&mut self, delay: Duration, jitter: f64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // A uniform value in [-1, 1).
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let factor = (1.0 + jitter.clamp(0.0, 1.0) * unit).max(0.0);
        delay.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: 0.0,
            max_attempts: 10,
        };
        let delays: Vec<_> = (1..=6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_stays_in_bounds_and_varies() {
        let mut j = Jitter(12345);
        let base = Duration::from_millis(1000);
        let values: Vec<_> = (0..100).map(|_| j.apply(base, 0.2).as_millis()).collect();
        assert!(values.iter().all(|v| (800..=1200).contains(v)), "{values:?}");
        assert!(values.iter().any(|v| *v != values[0]));
    }
}
