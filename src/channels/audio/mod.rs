//! Audio output ([MS-RDPEA] over the `rdpsnd` static channel or the `AUDIO_PLAYBACK_DVC`
//! dynamic one, whichever the server opens): the server's sound, decoded to
//! interleaved 16-bit PCM and queued in the session, up to a cap in milliseconds, for the
//! application to take ([`Audio::pop`]) or to hand to a sink it implements ([`AudioSink`],
//! [`Audio::play_into`]).
//!
//! IronRDP's `Rdpsnd` processor negotiates the formats, answers training and confirms every
//! wave with its timestamp (plus the time the client still needs to play what it holds, so
//! that the server's pacing and lip-sync work); its wave codecs decode PCM, IMA (DVI) ADPCM,
//! Microsoft ADPCM and G.711 A-law / µ-law. Our backend only records what happened (`backend`),
//! `channel` screens the PDUs before IronRDP, and the session moves the records into its queue
//! after each frame. The `rdpdr` channel is offered with no devices: Windows only opens audio
//! for a client that has it. Audio contents are logged at TRACE at most.
//!
//! - `backend`: what IronRDP's processor reports, decoded;
//! - `channel`: the processors the session owns (static and dynamic), screening what reaches
//!   IronRDP, and the link they report through;
//! - `queue`: the bounded queue of decoded audio;
//! - `alsa` (feature `alsa`): [`AlsaSink`], playback through ALSA.
//!
//! [MS-RDPEA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpea/

#[cfg(feature = "alsa")]
mod alsa;
mod backend;
mod channel;
mod queue;

use std::any::TypeId;
use std::fmt;
use std::time::Duration;

use ironrdp_connector::{ClientConnector, ConnectionResult};
use ironrdp_dvc::DrdynvcClient;

#[cfg(feature = "alsa")]
pub use self::alsa::AlsaSink;
use self::backend::Happened;
pub(crate) use self::channel::AudioLink;
use self::channel::{AudioChannel, AudioDvc};
use self::queue::AudioQueue;
use crate::session::{Event, Session};
use crate::{Error, Phase, Result};

/// How much decoded audio a session keeps for the application by default before it drops the
/// oldest (see [`Audio::set_max_buffered`]).
pub const DEFAULT_MAX_AUDIO_BUFFERED: Duration = Duration::from_millis(500);

/// The largest `rdpsnd` message there is: every PDU announces its body's size in 16 bits
/// ([MS-RDPEA] 2.2.1, SNDPROLOG). The channel guard drops bigger ones from their first chunk.
///
/// [MS-RDPEA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpea/
pub(crate) const MAX_MESSAGE: usize = 4 + 0xFFFF;

/// How many problems with the audio a session logs as warnings before it goes quiet.
const LOUD_WARNINGS: u32 = 16;

/// The shape of decoded audio: interleaved signed 16-bit samples, `channels` per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PcmFormat {
    /// Frames per second.
    pub sample_rate: u32,
    /// Samples per frame (1 or 2).
    pub channels: u16,
}

impl PcmFormat {
    /// How long `frames` frames play.
    pub fn duration(&self, frames: usize) -> Duration {
        let micros = u128::try_from(frames).unwrap_or(u128::MAX) * 1_000_000 / u128::from(self.sample_rate.max(1));
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// One wave of decoded audio, as the server sent it: interleaved samples and the server's
/// timestamp. Its `Debug` shows the shape, never the samples.
#[derive(Clone, PartialEq, Eq)]
pub struct AudioChunk {
    format: PcmFormat,
    samples: Vec<i16>,
    timestamp: u32,
}

impl AudioChunk {
    pub(crate) fn new(format: PcmFormat, samples: Vec<i16>, timestamp: u32) -> Self {
        Self {
            format,
            samples,
            timestamp,
        }
    }

    /// The format of the samples.
    pub fn format(&self) -> PcmFormat {
        self.format
    }

    /// The interleaved samples (left, right, left, ... in stereo).
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// The samples, owned.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }

    /// The number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.format.channels.max(1))
    }

    /// How long the chunk plays.
    pub fn duration(&self) -> Duration {
        self.format.duration(self.frames())
    }

    /// The server's timestamp of the wave, in milliseconds on the server's clock.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }
}

impl fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioChunk")
            .field("format", &self.format)
            .field("frames", &self.frames())
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// The volume the server asked for, per channel: 0 is silent, `0xFFFF` full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Volume {
    /// The left channel's volume (the only one in mono).
    pub left: u16,
    /// The right channel's volume.
    pub right: u16,
}

impl Volume {
    /// Full volume on both channels, as a session starts.
    pub const FULL: Volume = Volume {
        left: u16::MAX,
        right: u16::MAX,
    };
}

/// What happened to the server's audio ([`Event::Audio`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioEvent {
    /// Decoded audio was queued: take it with [`Audio::pop`] or [`Audio::play_into`].
    Queued {
        /// The format of the wave.
        format: PcmFormat,
        /// Its length in frames.
        frames: usize,
    },
    /// The server changed the volume ([`AudioSink::set_volume`] gets it in `play_into`).
    Volume(Volume),
    /// The server closed the audio stream; more may come later.
    Closed,
}

/// Where an application plays audio: a device, a file, a mixer. Implemented by the
/// application, called on its own thread by [`Audio::play_into`]; nothing here needs `Send`.
///
/// A sink takes what it can without blocking and says how much: the session keeps the rest,
/// up to its cap ([`Audio::set_max_buffered`]), and drops the oldest audio beyond it.
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use async_rdp::channels::{AudioSink, PcmFormat};
///
/// /// Keeps at most one second of audio, as a device with a one-second buffer would.
/// struct Recorder {
///     samples: Vec<i16>,
///     format: Option<PcmFormat>,
/// }
///
/// impl AudioSink for Recorder {
///     fn write(&mut self, format: PcmFormat, samples: &[i16]) -> io::Result<usize> {
///         self.format = Some(format);
///         let room = (format.sample_rate as usize * usize::from(format.channels)).saturating_sub(self.samples.len());
///         let take = samples.len().min(room) / usize::from(format.channels) * usize::from(format.channels);
///         self.samples.extend_from_slice(&samples[..take]);
///         Ok(take / usize::from(format.channels))
///     }
///
///     fn delay(&mut self) -> Duration {
///         let frames = self.samples.len() / 2;
///         self.format.map_or(Duration::ZERO, |f| f.duration(frames))
///     }
/// }
/// ```
pub trait AudioSink {
    /// Takes what it can of `samples` (interleaved, whole frames, in `format`) without
    /// blocking, and returns how many frames it took: 0 when it is full for now.
    ///
    /// # Errors
    ///
    /// A failure of the sink; [`Audio::play_into`] returns it.
    fn write(&mut self, format: PcmFormat, samples: &[i16]) -> std::io::Result<usize>;

    /// How long the audio it took and has not played yet still needs. Counted in the wave
    /// confirmations, so that the server knows when its sound is heard. Zero by default.
    fn delay(&mut self) -> Duration {
        Duration::ZERO
    }

    /// The server changed the volume. Ignored by default.
    fn set_volume(&mut self, volume: Volume) {
        let _ = volume;
    }
}

/// The session's audio state.
#[derive(Debug)]
pub(crate) struct AudioState {
    queue: AudioQueue,
    volume: Volume,
    /// Whether the sink has been given [`Self::volume`].
    volume_applied: bool,
    /// What the sink said it holds, at the last `play_into`.
    sink_delay: Duration,
    warnings: u32,
    /// The processors' records, once found (see [`Session::audio_link`]).
    link: Option<AudioLink>,
}

impl Default for AudioState {
    fn default() -> Self {
        Self {
            queue: AudioQueue::new(DEFAULT_MAX_AUDIO_BUFFERED),
            volume: Volume::FULL,
            volume_applied: true,
            sink_delay: Duration::ZERO,
            warnings: 0,
            link: None,
        }
    }
}

/// The audio of a [`Session`]: what the server played, decoded and queued.
///
/// Recording, one wave at a time:
///
/// ```no_run
/// # async fn record(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
/// use async_rdp::channels::AudioEvent;
/// use async_rdp::Event;
///
/// let mut recorded = Vec::new();
/// while recorded.len() < 48_000 * 2 * 10 {
///     if let Event::Audio(AudioEvent::Queued { .. }) = session.next_event().await? {
///         while let Some(chunk) = session.audio().pop() {
///             recorded.extend_from_slice(chunk.samples());
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// Playing: call [`play_into`](Self::play_into) with your [`AudioSink`] on every
/// [`AudioEvent::Queued`], and now and then (every few tens of milliseconds) while the sink
/// drains, e.g. from a timer in the same `select!` as `next_event`.
#[derive(Debug)]
pub struct Audio<'a, S> {
    session: &'a mut Session<S>,
}

impl<S> Session<S> {
    /// The server's audio (see [`Audio`]). Needs the `audio` feature and
    /// [`Channel::Audio`](crate::channels::Channel::Audio) offered (it is by default).
    pub fn audio(&mut self) -> Audio<'_, S> {
        Audio { session: self }
    }
}

impl<S> Audio<'_, S> {
    /// Takes the oldest queued wave (or what a sink left of it).
    pub fn pop(&mut self) -> Option<AudioChunk> {
        let chunk = self.session.audio.queue.pop();
        self.session.report_audio_latency();
        chunk
    }

    /// Gives `sink` as much queued audio as it takes, oldest first, and the volume when the
    /// server changed it; returns the frames it took.
    ///
    /// # Errors
    ///
    /// What the sink's [`write`](AudioSink::write) returned, as [`ErrorKind::Io`](crate::ErrorKind::Io);
    /// the audio it did not take stays queued.
    pub fn play_into(&mut self, sink: &mut impl AudioSink) -> Result<usize> {
        let state = &mut self.session.audio;
        if !state.volume_applied {
            sink.set_volume(state.volume);
            state.volume_applied = true;
        }
        let written = state
            .queue
            .play_into(sink)
            .map_err(|e| Error::io("audio sink", e).with_phase(Phase::Session));
        state.sink_delay = sink.delay();
        self.session.report_audio_latency();
        written
    }

    /// How long the queued audio plays.
    pub fn queued(&self) -> Duration {
        self.session.audio.queue.duration()
    }

    /// How much decoded audio the session keeps before it drops the oldest, so that an
    /// application (or a device) that falls behind loses sound rather than memory, and stays
    /// at most this far behind the server. One wave is always kept, however long.
    /// [`DEFAULT_MAX_AUDIO_BUFFERED`] by default.
    pub fn set_max_buffered(&mut self, max: Duration) {
        self.session.audio.queue.set_cap(max);
    }

    /// The cap set by [`set_max_buffered`](Self::set_max_buffered).
    pub fn max_buffered(&self) -> Duration {
        self.session.audio.queue.cap()
    }

    /// The volume the server asked for last ([`Volume::FULL`] until it does).
    pub fn volume(&self) -> Volume {
        self.session.audio.volume
    }

    /// How many frames were dropped because the queue was over its cap.
    pub fn dropped_frames(&self) -> u64 {
        self.session.audio.queue.dropped_frames()
    }
}

impl<S> Session<S> {
    /// Acts on what the audio processor reported while the last frame was processed.
    pub(crate) fn drive_audio(&mut self) {
        let happened = match self.audio_link() {
            Some(link) => link.take(),
            None => return,
        };
        if happened.is_empty() {
            return;
        }
        for happened in happened {
            self.on_audio(happened);
        }
        self.report_audio_latency();
    }

    fn on_audio(&mut self, happened: Happened) {
        match happened {
            Happened::Wave(chunk) => {
                let (format, frames) = (chunk.format(), chunk.frames());
                log::trace!("Audio: {frames} frames of {format:?}");
                let dropped = self.audio.queue.push(chunk);
                if dropped > 0 {
                    self.audio_problem(format!(
                        "the application is {:?} behind; dropped the oldest {dropped} frames",
                        self.audio.queue.cap()
                    ));
                }
                self.events
                    .push_back(Event::Audio(AudioEvent::Queued { format, frames }));
            }
            Happened::Volume(volume) => {
                log::debug!("Audio: the server set the volume to {volume:?}");
                self.audio.volume = volume;
                self.audio.volume_applied = false;
                self.events.push_back(Event::Audio(AudioEvent::Volume(volume)));
            }
            Happened::Closed => {
                log::debug!("Audio: the server closed the stream");
                self.events.push_back(Event::Audio(AudioEvent::Closed));
            }
            Happened::Undecodable(what) => self.audio_problem(what),
        }
    }

    /// Logs a problem with the audio, at debug level after the first few.
    fn audio_problem(&mut self, what: String) {
        self.audio.warnings = self.audio.warnings.saturating_add(1);
        match self.audio.warnings {
            n if n < LOUD_WARNINGS => log::warn!("Audio: {what}"),
            LOUD_WARNINGS => log::warn!("Audio: {what} (further audio problems are logged at debug level)"),
            _ => log::debug!("Audio: {what}"),
        }
    }

    /// Tells the processor how long the audio the client holds still plays: the wave
    /// confirmations count it.
    fn report_audio_latency(&mut self) {
        let held = self.audio.queue.duration().saturating_add(self.audio.sink_delay);
        if let Some(link) = self.audio_link() {
            link.set_latency(held);
        }
    }

    /// The records the audio processors report to, whichever channel the server opened: the
    /// static one is there from the start, the dynamic one once the server opened it. Kept
    /// once found, so that what a dynamic channel reported as it closed is not lost with it.
    fn audio_link(&mut self) -> Option<&AudioLink> {
        if self.audio.link.is_none() {
            let link = match self.stage.get_svc_processor::<AudioChannel>() {
                Some(channel) => Some(channel.link().clone()),
                None => self
                    .stage
                    .get_dvc::<AudioDvc>()
                    .map(|dvc| dvc.processor().link().clone()),
            };
            self.audio.link = link;
        }
        self.audio.link.as_ref()
    }
}

/// Attaches audio output's processors to `result` as a connection registers them: the static
/// channel as MCS channel `id`, and the dynamic one on `result`'s `drdynvc` transport if it has
/// one. For harnesses that build a [`Session`] from a `ConnectionResult` of their own (the fuzz
/// target), so that their input reaches the same screens, decoders and queue as a server's
/// audio does. Not part of the supported API.
#[doc(hidden)]
pub fn attach_audio(result: &mut ConnectionResult, id: u16) {
    let link = AudioLink::new();
    let channels = &mut result.static_channels;
    channels.insert(AudioChannel::new(&link));
    channels.attach_channel_id(TypeId::of::<AudioChannel>(), id);
    let dynamic = channels
        .get_by_type_mut::<DrdynvcClient>()
        .and_then(|channel| channel.channel_processor_downcast_mut::<DrdynvcClient>());
    if let Some(dynamic) = dynamic {
        // Registering a factory takes the transport by value.
        let name = ironrdp_rdpsnd::client::DVC_CHANNEL_NAME;
        *dynamic = std::mem::take(dynamic).with_dynamic_channel_factory(name, link.dvc_factory());
    }
}

/// Registers the static audio output channel, reporting to `link`, and `rdpdr` with no
/// devices, on `connector`. The dynamic channel goes on the connection's one `drdynvc`
/// transport ([`AudioLink::dvc_factory`]).
pub(crate) fn register(connector: ClientConnector, link: &AudioLink) -> ClientConnector {
    let rdpdr = ironrdp_rdpdr::Rdpdr::new(Box::new(ironrdp_rdpdr::NoopRdpdrBackend), "async-rdp".to_owned());
    connector
        .with_static_channel(AudioChannel::new(link))
        .with_static_channel(rdpdr)
}
