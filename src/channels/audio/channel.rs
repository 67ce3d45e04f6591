//! The audio output processor the session owns: IronRDP's `Rdpsnd`, behind a screen for what
//! it accepts too readily, and the records its backend keeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironrdp_core::impl_as_any;
use ironrdp_pdu::gcc::ChannelName;
use ironrdp_pdu::{pdu_other_err, PduResult};
use ironrdp_rdpsnd::client::Rdpsnd;
use ironrdp_svc::{CompressionCondition, SvcClientProcessor, SvcMessage, SvcProcessor};

use super::backend::{lock, Backend, Happened, Shared};

/// SNDC_WAVE: a WaveInfo PDU, whose wave data follows as the channel's next message.
const SNDC_WAVE: u8 = 0x02;
/// SNDC_WAVE2: a whole wave in one PDU.
const SNDC_WAVE2: u8 = 0x0D;
/// SNDPROLOG: msgType, bPad, BodySize.
const PROLOG: usize = 4;
/// A WaveInfo PDU alone ([MS-RDPEA] 2.2.3.3): the prolog and 12 bytes.
const WAVE_INFO: usize = PROLOG + 12;

#[derive(Debug)]
pub(crate) struct AudioChannel {
    rdpsnd: Rdpsnd,
    shared: Arc<Mutex<Shared>>,
    /// The last message was a WaveInfo PDU alone: this one is its wave data, with no prolog.
    wave_data_next: bool,
}

impl_as_any!(AudioChannel);

impl AudioChannel {
    pub(crate) fn new() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let started = Instant::now();
        let rdpsnd = Rdpsnd::new(Box::new(Backend::new(Arc::clone(&shared))))
            // The wave confirmations add how long the client held each wave.
            .with_clock(Box::new(move || started.elapsed()));
        Self {
            rdpsnd,
            shared,
            wave_data_next: false,
        }
    }

    /// What the backend recorded since the last call.
    pub(super) fn take(&mut self) -> Vec<Happened> {
        std::mem::take(&mut lock(&self.shared).happened)
    }

    /// How long the audio the client holds plays, for the wave confirmations.
    pub(super) fn set_latency(&mut self, latency: Duration) {
        lock(&self.shared).latency = latency;
    }

    /// Refuses what IronRDP would take as it is: a Wave2 PDU carrying more than its BodySize
    /// announces (IronRDP plays whatever follows the header).
    fn screen(&mut self, payload: &[u8]) -> PduResult<()> {
        if std::mem::take(&mut self.wave_data_next) {
            return Ok(());
        }
        let (Some(&msg_type), Some(body)) = (payload.first(), payload.get(2..PROLOG)) else {
            return Ok(());
        };
        let announced = usize::from(u16::from_le_bytes([body[0], body[1]]));
        match msg_type {
            SNDC_WAVE => self.wave_data_next = payload.len() == WAVE_INFO,
            SNDC_WAVE2 if payload.len() - PROLOG > announced => {
                return Err(pdu_other_err!(
                    "rdpsnd",
                    "a Wave2 PDU carries more than its BodySize announces"
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

impl SvcProcessor for AudioChannel {
    fn channel_name(&self) -> ChannelName {
        Rdpsnd::NAME
    }

    fn compression_condition(&self) -> CompressionCondition {
        CompressionCondition::Never
    }

    fn start(&mut self) -> PduResult<Vec<SvcMessage>> {
        self.rdpsnd.start()
    }

    fn process(&mut self, payload: &[u8]) -> PduResult<Vec<SvcMessage>> {
        self.screen(payload)?;
        self.rdpsnd.process(payload)
    }
}

impl SvcClientProcessor for AudioChannel {}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdu(msg_type: u8, body_size: u16, body: &[u8]) -> Vec<u8> {
        let mut pdu = vec![msg_type, 0];
        pdu.extend_from_slice(&body_size.to_le_bytes());
        pdu.extend_from_slice(body);
        pdu
    }

    #[test]
    fn a_wave2_over_its_body_size_is_refused() {
        let mut channel = AudioChannel::new();
        assert!(channel.screen(&pdu(SNDC_WAVE2, 16, &[0; 16])).is_ok());
        assert!(channel.screen(&pdu(SNDC_WAVE2, 16, &[0; 17])).is_err());
        assert!(channel.screen(&[SNDC_WAVE2]).is_ok());
    }

    #[test]
    fn wave_data_after_a_wave_info_is_not_taken_for_a_pdu() {
        let mut channel = AudioChannel::new();
        assert!(channel.screen(&pdu(SNDC_WAVE, 108, &[0; 12])).is_ok());
        // Bare wave data: bPad, then samples that happen to look like a Wave2 header.
        assert!(channel.screen(&pdu(SNDC_WAVE2, 0, &[0; 96])).is_ok());
        assert!(channel.screen(&pdu(SNDC_WAVE2, 0, &[0; 96])).is_err());
    }
}
