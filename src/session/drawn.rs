//! Waiting until the server has drawn the screen: what screenshot and monitoring programs
//! need before they read the framebuffer.

use std::time::{Duration, Instant};

use super::driver::in_session;
use super::{Event, Session};
use crate::framing::{FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Result};

/// How [`Session::wait_until_drawn`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drawn {
    /// From the call to the first update that changed pixels.
    pub first_update: Duration,
    /// From the call to the moment the screen was judged drawn (the last update, plus the
    /// quiet period); `None` when the deadline came first (an animated screen, a frame still
    /// in progress): the framebuffer holds what was drawn by then.
    pub settled: Option<Duration>,
    /// Updates that changed pixels.
    pub updates: u32,
}

impl<S: FramedRead + FramedWrite> Session<S> {
    /// Processes events until the screen has been drawn: an update that changed pixels came,
    /// then `quiet` passed with no other update and no frame in progress
    /// ([`frame_in_progress`](Session::frame_in_progress)), or `deadline` passed after the
    /// first update.
    ///
    /// Events other than [`Event::Graphics`] are consumed. An update that changes no pixel (a
    /// frame marker alone) does not count, and the quiet period does not end while a fragmented
    /// update or a surface frame is open, so a slow link cannot make a half-drawn frame look
    /// settled.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when nothing was drawn by `deadline` (a stalled or blank
    /// server: there is no picture to take), [`ErrorKind::Closed`] when the session ended
    /// first, and any error of [`next_event`](Session::next_event).
    ///
    /// ```no_run
    /// # async fn shot(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
    /// use std::time::Duration;
    ///
    /// let drawn = session.wait_until_drawn(Duration::from_millis(500), Duration::from_secs(20)).await?;
    /// let fb = session.framebuffer();
    /// println!("{}x{} after {} updates ({:?})", fb.width, fb.height, drawn.updates, drawn.settled);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as [`next_event`](Session::next_event) is; the counts start over with the
    /// next call.
    pub async fn wait_until_drawn(&mut self, quiet: Duration, deadline: Duration) -> Result<Drawn> {
        self.wait_drawn(quiet, deadline).await.map_err(in_session)
    }

    async fn wait_drawn(&mut self, quiet: Duration, deadline: Duration) -> Result<Drawn> {
        let start = Instant::now();
        let deadline = start + deadline;
        let mut first_update = None;
        let mut last_update = start;
        let mut updates = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return match first_update {
                    Some(first_update) => Ok(Drawn {
                        first_update,
                        settled: None,
                        updates,
                    }),
                    None => Err(nothing_drawn(deadline - start, self.frame_in_progress())),
                };
            }
            let quiet_end = (last_update + quiet).max(now);
            let wait = match first_update {
                Some(_) => quiet_end.min(deadline) - now,
                None => deadline - now,
            };
            match crate::net::with_timeout(wait, "session", self.next_event()).await {
                Ok(Event::Graphics(_)) => {
                    updates += 1;
                    last_update = Instant::now();
                    first_update.get_or_insert(last_update - start);
                }
                Ok(Event::Disconnected(reason)) => {
                    return Err(Error::new(ErrorKind::Closed, "session")
                        .with_detail(format!("the session ended before the screen was drawn: {reason:?}")))
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    if let Some(first_update) = first_update.filter(|_| !self.frame_in_progress()) {
                        if Instant::now() < deadline {
                            return Ok(Drawn {
                                first_update,
                                settled: Some(last_update.duration_since(start) + quiet),
                                updates,
                            });
                        }
                    }
                    // Mid-frame: keep waiting for the rest of it, up to the deadline. The
                    // quiet period restarts so that the wait is not a busy loop.
                    last_update = Instant::now();
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn nothing_drawn(waited: Duration, mid_frame: bool) -> Error {
    let detail = if mid_frame {
        format!(
            "nothing was drawn in {:.1} s: the server began a frame and has not finished it",
            waited.as_secs_f64()
        )
    } else {
        format!("the server drew nothing in {:.1} s", waited.as_secs_f64())
    };
    Error::new(ErrorKind::Timeout, "session").with_detail(detail)
}
