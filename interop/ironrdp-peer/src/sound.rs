//! Audio output (RDPSND) for the peer: ironrdp-server's sound handler offers 16-bit PCM and
//! IMA ADPCM, streams the format `--sound` names, and plays a sine tone on the `tone` command,
//! paced in real time. The client's Wave Confirm PDUs are reported as `wave_confirm` events.
//!
//! ironrdp-rdpsnd 0.9's server only logs the confirmations it receives (`debug!(?c)` in
//! `RdpsndServer::process`, forwarded to `log` by tracing's `log` feature): [`ConfirmLogger`]
//! sits in front of env_logger and turns those records into events.

use std::f64::consts::TAU;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ironrdp_rdpsnd::pdu::{AudioFormat, WaveFormat};
use ironrdp_rdpsnd::server::{NegotiatedFormat, RdpsndError};
use ironrdp_server::{RdpsndServerHandler, RdpsndServerMessage, ServerEvent, ServerEventSender, SoundServerFactory};
use serde_json::json;
use tokio::sync::mpsc;

use crate::emit;

/// Which format the server streams, of the two it offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoundFormat {
    Pcm,
    Adpcm,
}

impl SoundFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pcm" => Some(Self::Pcm),
            "adpcm" | "ima-adpcm" => Some(Self::Adpcm),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Pcm => "pcm",
            Self::Adpcm => "adpcm",
        }
    }

    /// The format as offered: PCM 44.1 kHz stereo; IMA ADPCM 22.05 kHz stereo in 1024-byte
    /// blocks of 1017 frames (Windows' layout).
    fn audio_format(self) -> AudioFormat {
        match self {
            Self::Pcm => AudioFormat {
                format: WaveFormat::PCM,
                n_channels: 2,
                n_samples_per_sec: 44_100,
                n_avg_bytes_per_sec: 44_100 * 4,
                n_block_align: 4,
                bits_per_sample: 16,
                data: None,
            },
            Self::Adpcm => AudioFormat {
                format: WaveFormat::DVI_ADPCM,
                n_channels: 2,
                n_samples_per_sec: 22_050,
                n_avg_bytes_per_sec: 22_050 * ADPCM_BLOCK as u32 / ADPCM_FRAMES as u32,
                n_block_align: ADPCM_BLOCK as u16,
                bits_per_sample: 4,
                data: Some((ADPCM_FRAMES as u16).to_le_bytes().to_vec()),
            },
        }
    }
}

const ADPCM_BLOCK: usize = 1024;
/// One frame in the header, then two per data byte per channel (stereo: 1016 data bytes).
const ADPCM_FRAMES: usize = 1 + (ADPCM_BLOCK - 8);
/// Frames per PCM wave: 20 ms at 44.1 kHz.
const PCM_WAVE_FRAMES: usize = 882;

#[derive(Default)]
struct SoundState {
    sender: Option<mpsc::UnboundedSender<ServerEvent>>,
    /// The format being streamed to the connected client.
    streaming: Option<SoundFormat>,
}

#[derive(Clone)]
pub struct SoundHandle {
    state: Arc<Mutex<SoundState>>,
    want: SoundFormat,
}

impl SoundHandle {
    pub fn new(want: SoundFormat) -> Self {
        Self {
            state: Arc::default(),
            want,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SoundState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Plays a `hz` sine for `ms` milliseconds to the connected client, in real time.
    pub fn tone(&self, hz: f64, ms: u64) {
        let (sender, format) = {
            let state = self.lock();
            (state.sender.clone(), state.streaming)
        };
        let (Some(sender), Some(format)) = (sender, format) else {
            emit(json!({"event": "error", "message": "tone: no client is streaming audio"}));
            return;
        };
        tokio::spawn(play_tone(sender, format, hz, ms));
    }
}

async fn play_tone(sender: mpsc::UnboundedSender<ServerEvent>, format: SoundFormat, hz: f64, ms: u64) {
    let rate = format.audio_format().n_samples_per_sec;
    let total = usize::try_from(u64::from(rate) * ms / 1000).unwrap_or(usize::MAX);
    let per_wave = match format {
        SoundFormat::Pcm => PCM_WAVE_FRAMES,
        SoundFormat::Adpcm => ADPCM_FRAMES,
    };
    let mut encoder = ImaEncoder::default();
    let start = tokio::time::Instant::now();
    let (mut frames, mut waves) = (0, 0u32);
    while frames < total {
        let n = per_wave.min(total - frames);
        let pcm = sine(hz, rate, frames, n);
        let data = match format {
            SoundFormat::Pcm => pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
            SoundFormat::Adpcm => encoder.block(&pcm),
        };
        let ts = u32::try_from(frames as u64 * 1000 / u64::from(rate)).unwrap_or(u32::MAX);
        if sender
            .send(ServerEvent::Rdpsnd(RdpsndServerMessage::Wave(data, ts)))
            .is_err()
        {
            break;
        }
        frames += n;
        waves += 1;
        // Real time: ironrdp-server drops the oldest waves of a backlog.
        let due = Duration::from_micros(frames as u64 * 1_000_000 / u64::from(rate));
        tokio::time::sleep_until(start + due).await;
    }
    emit(
        json!({"event": "tone_sent", "format": format.name(), "hz": hz, "rate": rate, "frames": frames, "waves": waves}),
    );
}

/// `n` stereo frames of a `hz` sine at half scale, from frame `from` on.
fn sine(hz: f64, rate: u32, from: usize, n: usize) -> Vec<i16> {
    (from..from + n)
        .flat_map(|i| {
            let s = (16_000.0 * (TAU * hz * i as f64 / f64::from(rate)).sin()) as i16;
            [s, s]
        })
        .collect()
}

/// IMA ADPCM quantizer steps.
const STEPS: [i32; 89] = [
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66, 73, 80, 88, 97, 107,
    118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
    1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894,
    6484, 7132, 7845, 8630, 9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
];
/// How the step index moves for a code magnitude.
const INDEX_MOVES: [i32; 8] = [-1, -1, -1, -1, 2, 4, 6, 8];

#[derive(Default, Clone, Copy)]
struct ImaChannel {
    predicted: i32,
    index: i32,
}

impl ImaChannel {
    fn code(&mut self, sample: i16) -> u8 {
        let step = STEPS[self.index as usize];
        let mut diff = i32::from(sample) - self.predicted;
        let mut code = 0u8;
        if diff < 0 {
            code = 8;
            diff = -diff;
        }
        let mut moved = step >> 3;
        for (bit, part) in [(4u8, step), (2, step >> 1), (1, step >> 2)] {
            if diff >= part {
                code |= bit;
                diff -= part;
                moved += part;
            }
        }
        self.predicted = if code & 8 != 0 {
            self.predicted - moved
        } else {
            self.predicted + moved
        }
        .clamp(-32768, 32767);
        self.index = (self.index + INDEX_MOVES[usize::from(code & 7)]).clamp(0, 88);
        code
    }
}

/// A stereo IMA ADPCM encoder in Microsoft's block layout: per channel a header (first sample,
/// step index, a zero), then groups of four bytes per channel, eight codes each, low nibble
/// first.
#[derive(Default)]
struct ImaEncoder {
    channels: [ImaChannel; 2],
}

impl ImaEncoder {
    /// One block from up to [`ADPCM_FRAMES`] interleaved stereo frames (padded with silence).
    fn block(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut frames: Vec<[i16; 2]> = pcm.chunks_exact(2).map(|f| [f[0], f[1]]).collect();
        frames.resize(ADPCM_FRAMES, [0, 0]);
        let mut out = Vec::with_capacity(ADPCM_BLOCK);
        for (c, channel) in self.channels.iter_mut().enumerate() {
            channel.predicted = i32::from(frames[0][c]);
            out.extend_from_slice(&frames[0][c].to_le_bytes());
            out.extend_from_slice(&[channel.index as u8, 0]);
        }
        for group in frames[1..].chunks_exact(8) {
            for c in 0..2 {
                let codes: Vec<u8> = group.iter().map(|f| self.channels[c].code(f[c])).collect();
                out.extend(codes.chunks_exact(2).map(|pair| pair[0] | (pair[1] << 4)));
            }
        }
        out
    }
}

#[derive(Debug)]
struct ToneHandler {
    formats: Vec<AudioFormat>,
    want: SoundFormat,
    state: Arc<Mutex<SoundState>>,
}

impl std::fmt::Debug for SoundState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoundState")
            .field("streaming", &self.streaming)
            .finish()
    }
}

impl RdpsndServerHandler for ToneHandler {
    fn get_formats(&self) -> &[AudioFormat] {
        &self.formats
    }

    fn choose_format<'a>(&mut self, common: &'a [NegotiatedFormat]) -> Option<&'a NegotiatedFormat> {
        let want = self.want.audio_format();
        let chosen = common.iter().find(|f| f.format().format == want.format);
        emit(json!({
            "event": "sound_formats",
            "common": common.iter().map(|f| f.format().format.to_string()).collect::<Vec<_>>(),
            "chosen": chosen.map(|_| self.want.name()),
        }));
        chosen
    }

    fn start(&mut self, _format: &NegotiatedFormat) -> Result<(), Box<dyn RdpsndError>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .streaming = Some(self.want);
        emit(json!({"event": "sound_ready", "format": self.want.name()}));
        Ok(())
    }

    fn stop(&mut self) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .streaming = None;
    }
}

pub struct SoundFactory(pub SoundHandle);

impl ServerEventSender for SoundFactory {
    fn set_sender(&mut self, sender: mpsc::UnboundedSender<ServerEvent>) {
        self.0.lock().sender = Some(sender);
    }
}

impl SoundServerFactory for SoundFactory {
    fn build_backend(&self) -> Box<dyn RdpsndServerHandler> {
        Box::new(ToneHandler {
            formats: vec![SoundFormat::Pcm.audio_format(), SoundFormat::Adpcm.audio_format()],
            want: self.0.want,
            state: Arc::clone(&self.0.state),
        })
    }
}

/// env_logger, plus `wave_confirm` events from ironrdp-rdpsnd's log of the confirmations.
pub struct ConfirmLogger(pub env_logger::Logger);

impl log::Log for ConfirmLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("ironrdp_rdpsnd") || self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("ironrdp_rdpsnd") {
            let text = record.args().to_string();
            if let Some(confirm) = text.strip_prefix("c=WaveConfirmPdu") {
                let field = |name: &str| -> Option<u64> {
                    let at = confirm.find(&format!("{name}: "))? + name.len() + 2;
                    confirm[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
                };
                emit(json!({"event": "wave_confirm", "block_no": field("block_no"), "timestamp": field("timestamp")}));
            }
        }
        if self.0.matches(record) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one channel of a block (a reference decoder, for the test only).
    fn decode(block: &[u8], channel: usize) -> Vec<i16> {
        let mut predicted = i32::from(i16::from_le_bytes([block[4 * channel], block[4 * channel + 1]]));
        let mut index = i32::from(block[4 * channel + 2]);
        let mut out = vec![predicted as i16];
        for group in block[8..].chunks_exact(8) {
            for byte in &group[4 * channel..4 * channel + 4] {
                for code in [byte & 0xf, byte >> 4] {
                    let step = STEPS[index as usize];
                    let mut moved = step >> 3;
                    if code & 4 != 0 {
                        moved += step;
                    }
                    if code & 2 != 0 {
                        moved += step >> 1;
                    }
                    if code & 1 != 0 {
                        moved += step >> 2;
                    }
                    predicted = if code & 8 != 0 {
                        predicted - moved
                    } else {
                        predicted + moved
                    }
                    .clamp(-32768, 32767);
                    index = (index + INDEX_MOVES[usize::from(code & 7)]).clamp(0, 88);
                    out.push(predicted as i16);
                }
            }
        }
        out
    }

    #[test]
    fn adpcm_blocks_follow_the_sine() {
        let pcm = sine(440.0, 22_050, 0, ADPCM_FRAMES);
        let mut encoder = ImaEncoder::default();
        encoder.block(&pcm);
        let block = encoder.block(&pcm);
        assert_eq!(block.len(), ADPCM_BLOCK);
        let left = decode(&block, 0);
        assert_eq!(left.len(), ADPCM_FRAMES);
        let worst = left
            .iter()
            .zip(pcm.iter().step_by(2))
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max();
        assert!(worst.unwrap_or(i32::MAX) < 2000, "{worst:?}");
    }
}
