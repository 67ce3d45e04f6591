//! The audio output processors the session owns: IronRDP's `Rdpsnd` on the static channel and
//! its `RdpsndDvc` on `AUDIO_PLAYBACK_DVC` (the variant Windows 8+ and GNOME Remote Desktop
//! use), each behind a screen for what IronRDP accepts too readily. Both report to the same
//! records ([`Shared`]), so the session need not know which one the server opened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironrdp_core::impl_as_any;
use ironrdp_dvc::{DvcClientProcessor, DvcMessage, DvcProcessor};
use ironrdp_pdu::gcc::ChannelName;
use ironrdp_pdu::{pdu_other_err, PduResult};
use ironrdp_rdpsnd::client::{Clock, Rdpsnd, RdpsndDvc, RdpsndDvcState, DVC_CHANNEL_NAME};
use ironrdp_rdpsnd::pdu::{ClientAudioOutputPdu, TrainingConfirmPdu};
use ironrdp_svc::{CompressionCondition, SvcClientProcessor, SvcMessage, SvcProcessor};

use super::backend::{lock, Backend, Happened, Shared};

/// SNDC_WAVE: a WaveInfo PDU, whose wave data follows as the channel's next message.
const SNDC_WAVE: u8 = 0x02;
/// SNDC_TRAINING: the server measures the channel; the client confirms.
const SNDC_TRAINING: u8 = 0x06;
/// SNDC_WAVE2: a whole wave in one PDU.
const SNDC_WAVE2: u8 = 0x0D;
/// SNDPROLOG: msgType, bPad, BodySize.
const PROLOG: usize = 4;
/// A WaveInfo PDU alone ([MS-RDPEA] 2.2.3.3): the prolog and 12 bytes.
const WAVE_INFO: usize = PROLOG + 12;

/// The records and clock of one connection's audio, which every audio processor shares: the
/// server may use the static channel, the dynamic one, or reopen the dynamic one.
#[derive(Debug, Clone)]
pub(crate) struct AudioLink {
    shared: Arc<Mutex<Shared>>,
    started: Instant,
}

impl AudioLink {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared::default())),
            started: Instant::now(),
        }
    }

    /// What the backends recorded since the last call.
    pub(super) fn take(&self) -> Vec<Happened> {
        std::mem::take(&mut lock(&self.shared).happened)
    }

    /// How long the audio the client holds plays, for the wave confirmations.
    pub(super) fn set_latency(&self, latency: Duration) {
        lock(&self.shared).latency = latency;
    }

    fn backend(&self) -> Box<Backend> {
        Box::new(Backend::new(Arc::clone(&self.shared)))
    }

    /// The wave confirmations add how long the client held each wave: this measures it.
    fn clock(&self) -> Clock {
        let started = self.started;
        Box::new(move || started.elapsed())
    }

    /// The processor factory for `AUDIO_PLAYBACK_DVC`: a fresh one each time the server opens
    /// the channel (a closed one is gone), all reporting to this link.
    pub(crate) fn dvc_factory(&self) -> impl FnMut() -> AudioDvc + Send + 'static {
        let link = self.clone();
        move || AudioDvc::new(&link)
    }
}

/// Refuses what IronRDP would take as it is: a Wave2 PDU carrying more than its BodySize
/// announces (IronRDP plays whatever follows the header). Also finds Training PDUs, whose
/// confirmation IronRDP gets wrong (see [`Screen::answer`]).
#[derive(Debug, Default)]
struct Screen {
    /// The last message was a WaveInfo PDU alone: this one is its wave data, with no prolog.
    wave_data_next: bool,
}

impl Screen {
    /// Checks one message; returns the confirmation it needs if it is a Training PDU.
    fn check(&mut self, payload: &[u8]) -> PduResult<Option<TrainingConfirmPdu>> {
        if std::mem::take(&mut self.wave_data_next) {
            return Ok(None);
        }
        let (Some(&msg_type), Some(body)) = (payload.first(), payload.get(2..PROLOG)) else {
            return Ok(None);
        };
        let announced = usize::from(u16::from_le_bytes([body[0], body[1]]));
        match msg_type {
            SNDC_TRAINING => return Ok(training_confirm(payload)),
            SNDC_WAVE => self.wave_data_next = payload.len() == WAVE_INFO,
            SNDC_WAVE2 if payload.len() - PROLOG > announced => {
                return Err(pdu_other_err!(
                    "rdpsnd",
                    "a Wave2 PDU carries more than its BodySize announces"
                ));
            }
            _ => {}
        }
        Ok(None)
    }

    /// IronRDP's replies to a message, with its Training Confirm replaced by `confirm`:
    /// IronRDP confirms the size of the training data it kept, where [MS-RDPEA] 2.2.3.2 asks for
    /// the Training PDU's own wPackSize, and GNOME Remote Desktop ignores any other value (and
    /// then never plays). IronRDP answers a Training PDU with its confirmation alone, or not at
    /// all when it refused the PDU; that choice is kept.
    ///
    /// [MS-RDPEA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpea/
    fn answer<M>(
        confirm: Option<TrainingConfirmPdu>,
        replies: Vec<M>,
        wrap: impl FnOnce(ClientAudioOutputPdu) -> M,
    ) -> Vec<M> {
        match confirm {
            Some(confirm) if replies.len() == 1 => vec![wrap(ClientAudioOutputPdu::TrainingConfirm(confirm))],
            _ => replies,
        }
    }
}

/// The confirmation of the Training PDU `payload`: its timestamp and wPackSize, echoed.
fn training_confirm(payload: &[u8]) -> Option<TrainingConfirmPdu> {
    let field = |at: usize| payload.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    Some(TrainingConfirmPdu {
        timestamp: field(PROLOG)?,
        pack_size: field(PROLOG + 2)?,
    })
}

/// Audio output on the `rdpsnd` static channel.
#[derive(Debug)]
pub(crate) struct AudioChannel {
    rdpsnd: Rdpsnd,
    link: AudioLink,
    screen: Screen,
}

impl_as_any!(AudioChannel);

impl AudioChannel {
    pub(crate) fn new(link: &AudioLink) -> Self {
        Self {
            rdpsnd: Rdpsnd::new(link.backend()).with_clock(link.clock()),
            link: link.clone(),
            screen: Screen::default(),
        }
    }

    pub(super) fn link(&self) -> &AudioLink {
        &self.link
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
        let confirm = self.screen.check(payload)?;
        let replies = self.rdpsnd.process(payload)?;
        Ok(Screen::answer(confirm, replies, SvcMessage::from))
    }
}

impl SvcClientProcessor for AudioChannel {}

/// Audio output on the `AUDIO_PLAYBACK_DVC` dynamic channel. The lossy variant is not
/// offered: it needs the UDP transport, which the client does not have, and the server falls
/// back to this one.
#[derive(Debug)]
pub(crate) struct AudioDvc {
    rdpsnd: RdpsndDvc,
    link: AudioLink,
    screen: Screen,
}

impl_as_any!(AudioDvc);

impl AudioDvc {
    fn new(link: &AudioLink) -> Self {
        Self {
            rdpsnd: RdpsndDvcState::new(link.backend()).with_clock(link.clock()).channel(),
            link: link.clone(),
            screen: Screen::default(),
        }
    }

    pub(super) fn link(&self) -> &AudioLink {
        &self.link
    }
}

impl DvcProcessor for AudioDvc {
    fn channel_name(&self) -> &str {
        DVC_CHANNEL_NAME
    }

    fn start(&mut self, channel_id: u32) -> PduResult<Vec<DvcMessage>> {
        log::debug!("Audio: the server opened {DVC_CHANNEL_NAME} (dynamic channel {channel_id})");
        self.rdpsnd.start(channel_id)
    }

    fn process(&mut self, channel_id: u32, payload: &[u8]) -> PduResult<Vec<DvcMessage>> {
        let confirm = self.screen.check(payload)?;
        let replies = self.rdpsnd.process(channel_id, payload)?;
        Ok(Screen::answer(confirm, replies, |pdu| -> DvcMessage { Box::new(pdu) }))
    }

    fn close(&mut self, channel_id: u32) {
        log::debug!("Audio: {DVC_CHANNEL_NAME} (dynamic channel {channel_id}) closed");
        self.rdpsnd.close(channel_id);
    }
}

impl DvcClientProcessor for AudioDvc {}

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
        let mut screen = Screen::default();
        assert!(matches!(screen.check(&pdu(SNDC_WAVE2, 16, &[0; 16])), Ok(None)));
        assert!(screen.check(&pdu(SNDC_WAVE2, 16, &[0; 17])).is_err());
        assert!(screen.check(&[SNDC_WAVE2]).is_ok());
    }

    #[test]
    fn training_is_confirmed_with_its_own_pack_size() {
        let mut screen = Screen::default();
        let training = pdu(SNDC_TRAINING, 1032, &[[0x39, 0x30], 1032u16.to_le_bytes()].concat());
        let confirm = screen.check(&training).ok().flatten();
        assert_eq!(
            confirm,
            Some(TrainingConfirmPdu {
                timestamp: 0x3039,
                pack_size: 1032
            })
        );
        assert_eq!(Screen::answer(confirm.clone(), vec![0u8], |_| 1).as_slice(), [1]);
        assert!(Screen::answer(confirm, Vec::<u8>::new(), |_| 1).is_empty());
        assert!(matches!(screen.check(&pdu(SNDC_TRAINING, 2, &[1, 2])), Ok(None)));
    }

    #[test]
    fn wave_data_after_a_wave_info_is_not_taken_for_a_pdu() {
        let mut screen = Screen::default();
        assert!(screen.check(&pdu(SNDC_WAVE, 108, &[0; 12])).is_ok());
        // Bare wave data: bPad, then samples that happen to look like a Wave2 header.
        assert!(screen.check(&pdu(SNDC_WAVE2, 0, &[0; 96])).is_ok());
        assert!(screen.check(&pdu(SNDC_WAVE2, 0, &[0; 96])).is_err());
    }
}
