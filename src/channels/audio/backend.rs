//! The backend IronRDP's `Rdpsnd` processor calls: it picks the formats to accept, decodes
//! each wave with IronRDP's codecs, and records what happened for the session to act on.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ironrdp_rdpsnd::client::RdpsndClientHandler;
use ironrdp_rdpsnd::codec::AudioDecoder;
use ironrdp_rdpsnd::pdu::{AudioFormat, AudioFormatFlags, PitchPdu, VolumePdu, WaveFormat};

use super::{AudioChunk, PcmFormat, Volume};

/// Something the processor reported.
#[derive(Debug)]
pub(super) enum Happened {
    /// A wave, decoded.
    Wave(AudioChunk),
    /// The server set the volume.
    Volume(Volume),
    /// The server closed the stream after playing something.
    Closed,
    /// A wave that could not be decoded, and why (no contents).
    Undecodable(String),
}

/// What the backend and the session's processor share. IronRDP's handler must be `Send` and
/// is out of reach inside `Rdpsnd`, hence the `Arc<Mutex>`; only the session's thread locks it.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) happened: Vec<Happened>,
    /// How long the audio the client holds (queued in the session and in the sink) plays.
    pub(super) latency: Duration,
}

pub(super) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The formats the client decodes, best first: lossless, then the 4:1 ADPCMs, then G.711's
/// 2:1 logarithmic PCM, then 8-bit PCM.
fn preference(format: &AudioFormat) -> Option<u8> {
    let rank = match (format.format, format.bits_per_sample) {
        (WaveFormat::PCM, 16) => 0,
        (WaveFormat::DVI_ADPCM, _) => 1,
        (WaveFormat::ADPCM, _) => 2,
        (WaveFormat::ALAW | WaveFormat::MULAW, _) => 3,
        (WaveFormat::PCM, 8) => 4,
        _ => return None,
    };
    let playable = (1..=2).contains(&format.n_channels) && (8_000..=192_000).contains(&format.n_samples_per_sec);
    (playable && AudioDecoder::supports(format)).then_some(rank)
}

/// The server's formats this client accepts, best first.
pub(super) fn accepted(server_formats: &[AudioFormat]) -> Vec<AudioFormat> {
    let mut accepted: Vec<(u8, &AudioFormat)> = server_formats
        .iter()
        .filter_map(|f| preference(f).map(|rank| (rank, f)))
        .collect();
    accepted.sort_by_key(|(rank, _)| *rank);
    accepted.into_iter().map(|(_, f)| f.clone()).collect()
}

#[derive(Debug)]
pub(super) struct Backend {
    shared: Arc<Mutex<Shared>>,
    decoder: Option<(AudioFormat, AudioDecoder)>,
    /// Whether a wave was played since the stream was last closed.
    playing: bool,
}

impl Backend {
    pub(super) fn new(shared: Arc<Mutex<Shared>>) -> Self {
        Self {
            shared,
            decoder: None,
            playing: false,
        }
    }

    fn record(&self, happened: Happened) {
        lock(&self.shared).happened.push(happened);
    }

    /// The decoder for `format`, made when the format changes.
    fn decoder(&mut self, format: &AudioFormat) -> Result<&mut AudioDecoder, String> {
        if self.decoder.as_ref().is_none_or(|(f, _)| f != format) {
            let decoder = AudioDecoder::new(format).map_err(|e| format!("no decoder for the wave's format: {e}"))?;
            self.decoder = Some((format.clone(), decoder));
        }
        match &mut self.decoder {
            Some((_, decoder)) => Ok(decoder),
            None => Err("no decoder".to_owned()),
        }
    }

    fn decode(&mut self, format: &AudioFormat, timestamp: u32, data: &[u8]) -> Result<AudioChunk, String> {
        let pcm = PcmFormat {
            sample_rate: format.n_samples_per_sec,
            channels: format.n_channels,
        };
        let mut samples = Vec::new();
        self.decoder(format)?
            .decode(data, &mut samples)
            .map_err(|e| format!("a {}-byte wave could not be decoded ({e}); dropped", data.len()))?;
        // Whole frames only: a sink must never get half a frame.
        let channels = usize::from(pcm.channels.max(1));
        samples.truncate(samples.len() / channels * channels);
        Ok(AudioChunk::new(pcm, samples, timestamp))
    }
}

impl RdpsndClientHandler for Backend {
    fn get_flags(&self) -> AudioFormatFlags {
        AudioFormatFlags::VOLUME
    }

    fn get_formats(&self) -> &[AudioFormat] {
        // Only `choose_formats` is asked, with the server's formats in hand.
        &[]
    }

    fn choose_formats(&self, server_formats: &[AudioFormat]) -> Vec<AudioFormat> {
        let accepted = accepted(server_formats);
        log::debug!(
            "Audio: the server offers {} formats; the client accepts {}",
            server_formats.len(),
            accepted.len()
        );
        accepted
    }

    fn wave(&mut self, format: &AudioFormat, ts: u32, data: Cow<'_, [u8]>) {
        let happened = match self.decode(format, ts, &data) {
            Ok(chunk) => Happened::Wave(chunk),
            Err(what) => Happened::Undecodable(what),
        };
        self.playing = true;
        self.record(happened);
    }

    fn playback_latency(&self) -> Duration {
        // Asked right after `wave`: what the session holds, and the waves it has not taken yet.
        let shared = lock(&self.shared);
        let recorded = shared.happened.iter().map(|h| match h {
            Happened::Wave(chunk) => chunk.duration(),
            _ => Duration::ZERO,
        });
        recorded.fold(shared.latency, Duration::saturating_add)
    }

    fn set_volume(&mut self, volume: VolumePdu) {
        self.record(Happened::Volume(Volume {
            left: volume.volume_left,
            right: volume.volume_right,
        }));
    }

    fn set_pitch(&mut self, _pitch: PitchPdu) {
        // Pitch is obsolete ([MS-RDPEA] 2.2.3.7: the client ignores it).
    }

    fn close(&mut self) {
        // IronRDP also closes at every new format negotiation: only a stream that played
        // something is reported.
        if std::mem::take(&mut self.playing) {
            self.record(Happened::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use ironrdp_rdpsnd::codec::{alaw_format, ima_adpcm_format, ms_adpcm_format, mulaw_format};

    use super::*;

    fn pcm(bits: u16, channels: u16, rate: u32) -> AudioFormat {
        let block_align = channels * bits / 8;
        AudioFormat {
            format: WaveFormat::PCM,
            n_channels: channels,
            n_samples_per_sec: rate,
            n_avg_bytes_per_sec: rate * u32::from(block_align),
            n_block_align: block_align,
            bits_per_sample: bits,
            data: None,
        }
    }

    #[test]
    fn formats_are_accepted_best_first_and_unplayable_ones_refused() {
        let aac = AudioFormat {
            format: WaveFormat::AAC_MS,
            ..pcm(16, 2, 44_100)
        };
        let offered = [
            mulaw_format(1, 8_000),
            pcm(8, 1, 22_050),
            aac,
            ms_adpcm_format(2, 44_100, 2048),
            pcm(16, 6, 48_000),
            pcm(16, 2, 1_000_000),
            alaw_format(2, 8_000),
            ima_adpcm_format(2, 22_050, 2048),
            pcm(16, 2, 44_100),
        ];
        let accepted = accepted(&offered);
        let tags: Vec<WaveFormat> = accepted.iter().map(|f| f.format).collect();
        assert_eq!(
            tags,
            [
                WaveFormat::PCM,
                WaveFormat::DVI_ADPCM,
                WaveFormat::ADPCM,
                WaveFormat::MULAW,
                WaveFormat::ALAW,
                WaveFormat::PCM
            ]
        );
        assert_eq!(accepted[0].bits_per_sample, 16);
        assert_eq!(accepted[5].bits_per_sample, 8);
    }

    #[test]
    fn a_hostile_format_is_refused_not_a_panic() {
        let mut ima = ima_adpcm_format(2, 22_050, 2048);
        ima.n_block_align = 3;
        let mut ms = ms_adpcm_format(1, 22_050, 512);
        ms.data = Some(vec![0xff, 0xff, 0xff]);
        assert!(accepted(&[ima, ms, pcm(16, 0, 44_100), pcm(16, 2, 0)]).is_empty());
    }

    #[test]
    fn waves_are_decoded_and_recorded_in_whole_frames() {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut backend = Backend::new(Arc::clone(&shared));
        let format = pcm(16, 2, 48_000);
        // Five samples: two whole frames and half of one.
        let data: Vec<u8> = [1i16, -1, 2, -2, 3].iter().flat_map(|s| s.to_le_bytes()).collect();
        backend.wave(&format, 7, Cow::Borrowed(&data));
        assert!(backend.playback_latency() > Duration::ZERO);
        let happened = std::mem::take(&mut lock(&shared).happened);
        match happened.as_slice() {
            [Happened::Wave(chunk)] => {
                assert_eq!(chunk.samples(), [1, -1, 2, -2]);
                assert_eq!(chunk.timestamp(), 7);
            }
            other => panic!("{other:?}"),
        }
        backend.close();
        backend.close();
        assert!(matches!(lock(&shared).happened.as_slice(), [Happened::Closed]));
    }
}
