//! Playback through ALSA (feature `alsa`): an [`AudioSink`] over a non-blocking PCM, written
//! from the session's thread, that recovers from underruns and follows format changes.

use std::io;
use std::time::Duration;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::{AudioSink, PcmFormat, Volume};

/// How much audio the device's buffer holds. The session's queue is the backlog beyond it.
const BUFFER: Duration = Duration::from_millis(200);
/// How often the device wants data.
const PERIOD: Duration = Duration::from_millis(20);
/// How much must be buffered before the device starts, so that it does not underrun at once.
const START_AT: Duration = Duration::from_millis(60);
/// A gain of 1, out of 0x10000.
const FULL_GAIN: u32 = 0x1_0000;

/// Plays audio on an ALSA device (`default`, `hw:0`, `plughw:1,0`, a name from an
/// `asoundrc`, ...).
///
/// The PCM is opened non-blocking: [`write`](AudioSink::write) takes what fits in the device's
/// buffer (about 200 ms) and never waits, so it can be driven from the session's thread with
/// [`Audio::play_into`](super::Audio::play_into). An underrun (the application did not feed it
/// in time) is recovered from on the next write, and counted. The device is (re)configured for
/// each new format: S16_LE, interleaved, the wave's rate and channels (`plughw:` or `default`
/// convert for hardware that has other rates). The server's volume is applied to the samples.
///
/// ```no_run
/// # async fn play(session: &mut async_rdp::ClientSession) -> Result<(), Box<dyn std::error::Error>> {
/// use async_rdp::channels::AlsaSink;
/// use async_rdp::Event;
///
/// let mut speaker = AlsaSink::open("default")?;
/// loop {
///     if let Event::Audio(_) = session.next_event().await? {
///         session.audio().play_into(&mut speaker)?;
///     }
/// }
/// # }
/// ```
pub struct AlsaSink {
    device: String,
    pcm: PCM,
    format: Option<PcmFormat>,
    /// The server's volume as gains out of 0x10000.
    gain: [u32; 2],
    scratch: Vec<i16>,
    underruns: u64,
}

impl std::fmt::Debug for AlsaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlsaSink")
            .field("device", &self.device)
            .field("format", &self.format)
            .field("underruns", &self.underruns)
            .finish_non_exhaustive()
    }
}

fn io_error(what: &str, e: alsa::Error) -> io::Error {
    io::Error::new(
        io::Error::from_raw_os_error(e.errno()).kind(),
        format!("ALSA {what}: {e}"),
    )
}

impl AlsaSink {
    /// Opens the playback device `device` (non-blocking).
    ///
    /// # Errors
    ///
    /// ALSA's, e.g. an unknown device or one that is busy.
    pub fn open(device: &str) -> io::Result<Self> {
        let pcm = PCM::new(device, Direction::Playback, true).map_err(|e| io_error(&format!("open {device}"), e))?;
        Ok(Self {
            device: device.to_owned(),
            pcm,
            format: None,
            gain: [FULL_GAIN; 2],
            scratch: Vec::new(),
            underruns: 0,
        })
    }

    /// The device name it was opened with.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// How many underruns it recovered from.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Sets the device up for `format`, reopening it when it played another one.
    fn configure(&mut self, format: PcmFormat) -> io::Result<()> {
        if self.format == Some(format) {
            return Ok(());
        }
        if self.format.is_some() {
            // Hardware parameters are set once per open.
            self.pcm = PCM::new(&self.device, Direction::Playback, true).map_err(|e| io_error("reopen", e))?;
        }
        self.format = None;
        self.hw_params(format).map_err(|e| io_error("configure", e))?;
        self.sw_params(format).map_err(|e| io_error("configure", e))?;
        log::debug!("ALSA: {} plays {format:?}", self.device);
        self.format = Some(format);
        Ok(())
    }

    fn hw_params(&self, format: PcmFormat) -> alsa::Result<()> {
        let hw = HwParams::any(&self.pcm)?;
        hw.set_access(Access::RWInterleaved)?;
        hw.set_format(Format::s16())?;
        hw.set_channels(u32::from(format.channels))?;
        hw.set_rate(format.sample_rate, ValueOr::Nearest)?;
        hw.set_buffer_time_near(micros(BUFFER), ValueOr::Nearest)?;
        hw.set_period_time_near(micros(PERIOD), ValueOr::Nearest)?;
        self.pcm.hw_params(&hw)
    }

    fn sw_params(&self, format: PcmFormat) -> alsa::Result<()> {
        let sw = self.pcm.sw_params_current()?;
        let start = u64::from(format.sample_rate) * u64::from(micros(START_AT)) / 1_000_000;
        sw.set_start_threshold(alsa::pcm::Frames::try_from(start).unwrap_or(alsa::pcm::Frames::MAX))?;
        self.pcm.sw_params(&sw)
    }

    /// Writes what fits; an underrun is recovered from and the write tried again once.
    fn write_frames(&mut self, samples: &[i16]) -> io::Result<usize> {
        let mut recovered = false;
        loop {
            let io = self.pcm.io_i16().map_err(|e| io_error("write", e))?;
            match io.writei(samples) {
                Ok(frames) => return Ok(frames),
                Err(e) if io::Error::from_raw_os_error(e.errno()).kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if !recovered => {
                    self.pcm.try_recover(e, true).map_err(|e| io_error("recover", e))?;
                    self.underruns += 1;
                    log::debug!("ALSA: {} recovered from an underrun", self.device);
                    recovered = true;
                }
                Err(e) => return Err(io_error("write", e)),
            }
        }
    }
}

/// `samples` at the gains of `gain` (left, right), into `out`.
fn scale(samples: &[i16], gain: [u32; 2], channels: usize, out: &mut Vec<i16>) {
    out.clear();
    out.extend(samples.iter().enumerate().map(|(i, &s)| {
        let gain = i64::from(gain[(i % channels.max(1)).min(1)]);
        i16::try_from((i64::from(s) * gain) >> 16).unwrap_or(s)
    }));
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

impl AudioSink for AlsaSink {
    fn write(&mut self, format: PcmFormat, samples: &[i16]) -> io::Result<usize> {
        self.configure(format)?;
        if self.gain == [FULL_GAIN; 2] {
            return self.write_frames(samples);
        }
        let mut scaled = std::mem::take(&mut self.scratch);
        scale(samples, self.gain, usize::from(format.channels), &mut scaled);
        let written = self.write_frames(&scaled);
        self.scratch = scaled;
        written
    }

    fn delay(&mut self) -> Duration {
        match (self.format, self.pcm.delay()) {
            (Some(format), Ok(frames)) => format.duration(usize::try_from(frames).unwrap_or(0)),
            _ => Duration::ZERO,
        }
    }

    fn set_volume(&mut self, volume: Volume) {
        self.gain = [volume.left, volume.right].map(|v| u32::from(v) + u32::from(v == u16::MAX));
    }
}
