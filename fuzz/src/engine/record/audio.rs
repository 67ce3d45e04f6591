//! Seeds of audio output traffic ([MS-RDPEA]) for `session_frames`: the server's side of a
//! negotiation, training and waves in every format the client decodes (PCM, IMA and Microsoft
//! ADPCM, A-law, µ-law), volume, pitch and close, on the `rdpsnd` static channel and on the
//! `AUDIO_PLAYBACK_DVC` dynamic channel; and hostile input on both (malformed PDUs, a format
//! index out of range, a wave larger than announced, a wave shorter than its WaveInfo said, an
//! oversized message). Made by hand, like the other channel seeds: the demo server serves no
//! audio, and the seeds must not depend on the `audio` feature (without it the harness has no
//! audio channel, and they exercise the unjoined-channel path instead).
//!
//! [MS-RDPEA]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpea/

use async_rdp_demo_server::channel::{self, dvc, FLAG_FIRST};
use async_rdp_demo_server::ChannelData;

use crate::engine::BoxError;
use crate::harness::session::{DRDYNVC_CHANNEL, RDPSND_CHANNEL};

/// The MCS id of the server's user channel (IronRDP's acceptor uses this one).
const USER_CHANNEL: u16 = 1002;

/// The dynamic channel id `AUDIO_PLAYBACK_DVC` is opened on (display control's is 1).
const AUDIO_DVC: u32 = 2;

const SNDC_CLOSE: u8 = 0x01;
const SNDC_WAVE: u8 = 0x02;
const SNDC_SETVOLUME: u8 = 0x03;
const SNDC_SETPITCH: u8 = 0x04;
const SNDC_TRAINING: u8 = 0x06;
const SNDC_FORMATS: u8 = 0x07;
const SNDC_WAVE2: u8 = 0x0D;

/// Wave format tags.
const PCM: u16 = 0x0001;
const MS_ADPCM: u16 = 0x0002;
const ALAW: u16 = 0x0006;
const MULAW: u16 = 0x0007;
const IMA_ADPCM: u16 = 0x0011;
const AAC: u16 = 0xA106;

/// The client lists the formats it takes best first (async-rdp's `backend::accepted`): for the
/// formats of [`server_formats`], these are the indexes its Wave PDUs use.
const CLIENT_PCM16: u16 = 0;
const CLIENT_IMA: u16 = 1;
const CLIENT_MS_ADPCM: u16 = 2;
const CLIENT_ALAW: u16 = 3;
const CLIENT_MULAW: u16 = 4;
const CLIENT_PCM8: u16 = 5;

/// The seeds, by file name.
pub fn audio_seeds() -> Result<Vec<(&'static str, Vec<u8>)>, BoxError> {
    let ready = static_all(&negotiation())?;
    let dvc_ready = [dvc_open()?, dvc_all(&negotiation())?].concat();
    Ok(vec![
        ("channel-rdpsnd-waves", [ready.clone(), static_all(&waves())?].concat()),
        (
            "channel-rdpsnd-hostile",
            [ready.clone(), static_all(&hostile())?, oversized()?].concat(),
        ),
        ("channel-rdpsnd-chunked-wave", [ready, chunked_wave()?].concat()),
        (
            "channel-drdynvc-audio-waves",
            [dvc_ready.clone(), dvc_all(&waves())?].concat(),
        ),
        (
            "channel-drdynvc-audio-hostile",
            [dvc_ready.clone(), dvc_all(&hostile())?].concat(),
        ),
        ("channel-drdynvc-audio-reopened", [dvc_ready, dvc_reopened()?].concat()),
    ])
}

/// The server's formats (with AAC, which the client refuses), then training.
fn negotiation() -> Vec<Vec<u8>> {
    let formats = [
        wave_format(PCM, 2, 48_000, 4, 16, &[]),
        wave_format(AAC, 2, 44_100, 1, 16, &[]),
        wave_format(IMA_ADPCM, 2, 22_050, 1024, 4, &1017u16.to_le_bytes()),
        wave_format(MS_ADPCM, 2, 22_050, 1024, 4, &ms_adpcm_extra(1012)),
        wave_format(ALAW, 2, 8_000, 2, 8, &[]),
        wave_format(MULAW, 1, 8_000, 1, 8, &[]),
        wave_format(PCM, 1, 22_050, 1, 8, &[]),
    ];
    vec![server_formats(&formats), pdu(SNDC_TRAINING, &[0x39, 0x30, 0, 0])]
}

/// A wave in each format (Wave2, and a WaveInfo/Wave pair), the volume, the pitch, a close.
fn waves() -> Vec<Vec<u8>> {
    let tone: Vec<u8> = (0..960i16).flat_map(|i| (i * 31).to_le_bytes()).collect();
    let adpcm: Vec<u8> = (0..1024u32).map(|i| (i * 37 % 251) as u8).collect();
    // Microsoft ADPCM blocks start with each channel's predictor, an index into 7 coefficients.
    let ms_adpcm = [&[0, 1][..], &adpcm[2..]].concat();
    let g711: Vec<u8> = (0..400u32).map(|i| (i * 13 % 256) as u8).collect();
    let (info, wave) = wave_info_and_wave(CLIENT_PCM16, 2, &tone);
    vec![
        wave2(CLIENT_PCM16, 1, 1000, &tone),
        info,
        wave,
        wave2(CLIENT_IMA, 3, 1020, &adpcm),
        wave2(CLIENT_MS_ADPCM, 4, 1040, &ms_adpcm),
        wave2(CLIENT_ALAW, 5, 1060, &g711),
        wave2(CLIENT_MULAW, 6, 1080, &g711),
        wave2(CLIENT_PCM8, 7, 1100, &g711),
        pdu(SNDC_SETVOLUME, &[0x00, 0x80, 0xff, 0xff]),
        pdu(SNDC_SETPITCH, &[0, 0, 1, 0]),
        pdu(SNDC_CLOSE, &[]),
    ]
}

/// An unknown type, a header alone, a truncated Wave2, a formats PDU cut short, a format the
/// client never listed, a Wave2 carrying more than its BodySize, a Wave shorter than its
/// WaveInfo, a half ADPCM block, then a good wave.
fn hostile() -> Vec<Vec<u8>> {
    let data = [0x11; 1920];
    let mut over = wave2(CLIENT_PCM16, 2, 0, &data);
    over[2..4].copy_from_slice(&16u16.to_le_bytes());
    let (info, wave) = wave_info_and_wave(CLIENT_PCM16, 5, &data);
    let formats = &negotiation()[0];
    vec![
        vec![0x7f, 0, 0, 0],
        vec![SNDC_WAVE2],
        wave2(CLIENT_PCM16, 1, 0, &[])[..8].to_vec(),
        formats[..formats.len().min(10)].to_vec(),
        wave2(9, 1, 0, &data),
        over,
        info,
        wave[..100].to_vec(),
        wave2(CLIENT_IMA, 6, 0, &data[..700]),
        wave2(CLIENT_PCM16, 7, 0, &data),
    ]
}

/// A message on `rdpsnd` declaring 100 MB, from its first chunk on.
fn oversized() -> Result<Vec<u8>, BoxError> {
    let first = ChannelData::Chunk {
        length: 100 << 20,
        flags: FLAG_FIRST,
        data: vec![SNDC_WAVE2; 1600],
    };
    Ok(channel::encode(USER_CHANNEL, RDPSND_CHANNEL, &first)?)
}

/// A 6000-byte Wave2 in channel chunks.
fn chunked_wave() -> Result<Vec<u8>, BoxError> {
    let data: Vec<u8> = (0..6000u32).map(|i| (i % 199) as u8).collect();
    static_all(&[wave2(CLIENT_PCM16, 8, 2000, &data)])
}

/// `AUDIO_PLAYBACK_DVC` closed, opened again on another id with a new negotiation, a wave.
fn dvc_reopened() -> Result<Vec<u8>, BoxError> {
    let again = AUDIO_DVC + 1;
    let mut stream = vec![
        dvc_message(dvc::close(AUDIO_DVC)?)?,
        dvc_message(dvc::create_request(again, "AUDIO_PLAYBACK_DVC")?)?,
    ];
    for pdu in negotiation() {
        stream.push(dvc_message(dvc::data(again, &pdu)?)?);
    }
    let wave = wave2(CLIENT_PCM16, 9, 3000, &[0x22; 960]);
    stream.push(dvc_message(dvc::data(again, &wave)?)?);
    Ok(stream.concat())
}

/// DVC capabilities and `AUDIO_PLAYBACK_DVC` opened as [`AUDIO_DVC`].
fn dvc_open() -> Result<Vec<u8>, BoxError> {
    Ok([
        dvc_message(dvc::capabilities_request()?)?,
        dvc_message(dvc::create_request(AUDIO_DVC, "AUDIO_PLAYBACK_DVC")?)?,
    ]
    .concat())
}

/// `pdus` on the static channel, each one message (chunked as the server would).
fn static_all(pdus: &[Vec<u8>]) -> Result<Vec<u8>, BoxError> {
    let mut stream = Vec::new();
    for pdu in pdus {
        stream.extend(channel::encode(
            USER_CHANNEL,
            RDPSND_CHANNEL,
            &ChannelData::Message(pdu.clone()),
        )?);
    }
    Ok(stream)
}

/// `pdus` on `AUDIO_PLAYBACK_DVC`, each in one DVC Data PDU.
fn dvc_all(pdus: &[Vec<u8>]) -> Result<Vec<u8>, BoxError> {
    let mut stream = Vec::new();
    for pdu in pdus {
        stream.extend(dvc_message(dvc::data(AUDIO_DVC, pdu)?)?);
    }
    Ok(stream)
}

fn dvc_message(message: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    Ok(channel::encode(
        USER_CHANNEL,
        DRDYNVC_CHANNEL,
        &ChannelData::Message(message),
    )?)
}

/// A server PDU: SNDPROLOG (msgType, bPad, BodySize) and the body.
fn pdu(msg_type: u8, body: &[u8]) -> Vec<u8> {
    pdu_announcing(msg_type, body.len(), body)
}

/// A server PDU whose BodySize says `announced`, whatever the body.
fn pdu_announcing(msg_type: u8, announced: usize, body: &[u8]) -> Vec<u8> {
    let mut pdu = vec![msg_type, 0];
    pdu.extend_from_slice(&u16::try_from(announced).unwrap_or(u16::MAX).to_le_bytes());
    pdu.extend_from_slice(body);
    pdu
}

/// A WAVEFORMATEX: tag, channels, rate, block align, bits, extra data.
fn wave_format(tag: u16, channels: u16, rate: u32, block_align: u16, bits: u16, extra: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    for field in [tag.to_le_bytes(), channels.to_le_bytes()] {
        f.extend_from_slice(&field);
    }
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    for field in [block_align, bits, u16::try_from(extra.len()).unwrap_or(0)] {
        f.extend_from_slice(&field.to_le_bytes());
    }
    f.extend_from_slice(extra);
    f
}

/// Microsoft ADPCM's extra data: frames per block and the seven standard coefficient pairs.
fn ms_adpcm_extra(frames_per_block: u16) -> Vec<u8> {
    let coefficients: [(i16, i16); 7] = [
        (256, 0),
        (512, -256),
        (0, 0),
        (192, 64),
        (240, 0),
        (460, -208),
        (392, -232),
    ];
    let mut extra = [frames_per_block.to_le_bytes(), 7u16.to_le_bytes()].concat();
    for (a, b) in coefficients {
        extra.extend_from_slice(&a.to_le_bytes());
        extra.extend_from_slice(&b.to_le_bytes());
    }
    extra
}

/// Server Audio Formats and Version ([MS-RDPEA] 2.2.2.1), version 8.
fn server_formats(formats: &[Vec<u8>]) -> Vec<u8> {
    // dwFlags, dwVolume, dwPitch, wDGramPort, then wNumberOfFormats.
    let mut body = vec![0; 16];
    body[14..16].copy_from_slice(&u16::try_from(formats.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(&[0, 8, 0, 0]);
    for f in formats {
        body.extend_from_slice(f);
    }
    pdu(SNDC_FORMATS, &body)
}

/// A Wave2 PDU: format `format_no`, block `block`, audio timestamp `ts`, `data`.
fn wave2(format_no: u16, block: u8, ts: u32, data: &[u8]) -> Vec<u8> {
    let mut body = vec![0x10, 0x00];
    body.extend_from_slice(&format_no.to_le_bytes());
    body.extend_from_slice(&[block, 0, 0, 0]);
    body.extend_from_slice(&ts.to_le_bytes());
    body.extend_from_slice(data);
    pdu(SNDC_WAVE2, &body)
}

/// A WaveInfo PDU and the Wave PDU with its data ([MS-RDPEA] 2.2.3.3, 2.2.3.4).
fn wave_info_and_wave(format_no: u16, block: u8, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut body = vec![0x20, 0x00];
    body.extend_from_slice(&format_no.to_le_bytes());
    body.extend_from_slice(&[block, 0, 0, 0]);
    body.extend_from_slice(&data[..4]);
    let info = pdu_announcing(SNDC_WAVE, 8 + data.len(), &body);
    let wave = [&[0, 0, 0, 0][..], &data[4..]].concat();
    (info, wave)
}
