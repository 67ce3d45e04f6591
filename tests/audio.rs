//! Audio output (issue 14) against the demo server, which joins `rdpsnd` and lets each test
//! speak for the server with hand-made MS-RDPEA PDUs: the negotiation, training, Wave2 and
//! WaveInfo/Wave waves confirmed with their block numbers, the volume; and hostile input —
//! malformed PDUs, a format index out of range, a wave larger than announced, an oversized
//! message, formats no decoder takes, a flood past the queue's cap. Each gives a dropped wave or
//! a clear warning, never a panic, and the session goes on; memory stays bounded (the counting
//! allocator of `tests/common`).

#![cfg(feature = "audio")]

use std::time::Duration;

use async_rdp::channels::{AudioEvent, PcmFormat, Volume};
use async_rdp::{ClientSession, Event};
use async_rdp_demo_server::channel::FLAG_FIRST;
use async_rdp_demo_server::testing::{run, wait_for_pattern, Server, TestResult};
use async_rdp_demo_server::{ChannelSend, Command, Config, Security, ServerEvent};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const SNDC_WAVE: u8 = 0x02;
const SNDC_SETVOLUME: u8 = 0x03;
const SNDC_WAVECONFIRM: u8 = 0x05;
const SNDC_TRAINING: u8 = 0x06;
const SNDC_FORMATS: u8 = 0x07;
const SNDC_WAVE2: u8 = 0x0D;

/// 16-bit PCM, 48 kHz stereo: the format the tests stream.
const PCM_48K: PcmFormat = PcmFormat {
    sample_rate: 48_000,
    channels: 2,
};

fn config() -> Config {
    Config {
        security: Security::Tls,
        ..Config::default()
    }
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
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    f.extend_from_slice(&block_align.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f.extend_from_slice(&u16::try_from(extra.len()).unwrap_or(0).to_le_bytes());
    f.extend_from_slice(extra);
    f
}

fn pcm16(channels: u16, rate: u32) -> Vec<u8> {
    wave_format(1, channels, rate, channels * 2, 16, &[])
}

/// Server Audio Formats and Version ([MS-RDPEA] 2.2.2.1), version 8.
fn server_formats(formats: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![0; 14];
    body[12..14].copy_from_slice(&u16::try_from(formats.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(&[0, 8, 0, 0]);
    for f in formats {
        body.extend_from_slice(f);
    }
    pdu(SNDC_FORMATS, &body)
}

fn training() -> Vec<u8> {
    pdu(SNDC_TRAINING, &[0x39, 0x30, 0, 0])
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

/// `frames` stereo frames of 16-bit PCM, each sample `value`.
fn pcm_data(frames: usize, value: i16) -> Vec<u8> {
    [value, value].repeat(frames).iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn send(server: &Server, message: Vec<u8>) -> TestResult {
    server.command(Command::Channel(ChannelSend::message("rdpsnd", message)))
}

async fn connect(server: &mut Server) -> TestResult<ClientSession> {
    let config = server.client_config().with_security(async_rdp::Security::Tls);
    let mut session = async_rdp::connect(server.addr(), config).await?;
    wait_for_pattern(&mut session).await?;
    Ok(session)
}

/// Drives the session until the client sent an `rdpsnd` PDU of `msg_type`; returns its body.
async fn client_sent(server: &mut Server, session: &mut ClientSession, msg_type: u8) -> TestResult<Vec<u8>> {
    let sent = server.wait_for(|e| match e {
        ServerEvent::ChannelData { channel, data } if channel == "rdpsnd" && data.first() == Some(&msg_type) => {
            Some(data[4..].to_vec())
        }
        _ => None,
    });
    let mut sent = std::pin::pin!(sent);
    loop {
        let next = std::pin::pin!(session.next_event());
        match futures::future::select(sent.as_mut(), next).await {
            futures::future::Either::Left((body, _)) => return body,
            futures::future::Either::Right((event, _)) => {
                if let Event::Disconnected(reason) = event? {
                    return Err(format!("the session ended: {reason:?}").into());
                }
            }
        }
    }
}

/// The negotiation: the server offers `formats`; the client answers with those it takes
/// (returned: the Client Audio Formats PDU's body); then training and its confirmation.
async fn negotiate(server: &mut Server, session: &mut ClientSession, formats: &[Vec<u8>]) -> TestResult<Vec<u8>> {
    send(server, server_formats(formats))?;
    let client_formats = client_sent(server, session, SNDC_FORMATS).await?;
    send(server, training())?;
    let confirm = client_sent(server, session, SNDC_TRAINING).await?;
    assert_eq!(confirm[..2], [0x39, 0x30], "training confirmed with its timestamp");
    Ok(client_formats)
}

/// How many formats a Client Audio Formats PDU body lists.
fn format_count(client_formats: &[u8]) -> u16 {
    u16::from_le_bytes([client_formats[14], client_formats[15]])
}

/// The next audio event within 10 s (`None`: none came).
async fn next_audio(session: &mut ClientSession, wait: Duration) -> TestResult<Option<AudioEvent>> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match async_std::future::timeout(left, session.next_event()).await {
            Err(_) => return Ok(None),
            Ok(event) => match event? {
                Event::Audio(audio) => return Ok(Some(audio)),
                Event::Disconnected(reason) => return Err(format!("the session ended: {reason:?}").into()),
                _ => {}
            },
        }
    }
}

/// A good wave after hostile input still plays and is confirmed: the channel survived.
async fn still_plays(server: &mut Server, session: &mut ClientSession, block: u8) -> TestResult {
    send(server, wave2(0, block, 1000, &pcm_data(480, 7)))?;
    let confirm = client_sent(server, session, SNDC_WAVECONFIRM).await?;
    assert_eq!(confirm[2], block, "the good wave is confirmed");
    let chunk = loop {
        if let Some(chunk) = session.audio().pop() {
            break chunk;
        }
        next_audio(session, Duration::from_secs(10))
            .await?
            .ok_or("the good wave was not played")?;
    };
    assert_eq!((chunk.format(), chunk.frames()), (PCM_48K, 480));
    Ok(())
}

/// PCM and IMA ADPCM accepted, in the client's order of preference; a Wave2 and a
/// WaveInfo/Wave pair decoded and confirmed with their block numbers; the volume reported.
#[test]
fn waves_are_decoded_confirmed_and_the_volume_reported() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        let ima = wave_format(0x11, 2, 22_050, 1024, 4, &1017u16.to_le_bytes());
        let aac = wave_format(0xA106, 2, 44_100, 1, 16, &[]);
        let client_formats = negotiate(&mut server, &mut session, &[aac, ima, pcm16(2, 48_000)]).await?;
        assert_eq!(format_count(&client_formats), 2, "AAC is not taken");
        // Wave2 PDUs index the client's list: PCM is its first.
        send(&server, wave2(0, 3, 4242, &pcm_data(960, 1000)))?;
        let confirm = client_sent(&mut server, &mut session, SNDC_WAVECONFIRM).await?;
        assert_eq!((confirm[0], confirm[2]), (0x10, 3), "the timestamp's low byte and the block");
        let chunk = session.audio().pop().ok_or("no audio queued")?;
        assert_eq!((chunk.format(), chunk.frames(), chunk.timestamp()), (PCM_48K, 960, 4242));
        assert!(chunk.samples().iter().all(|&s| s == 1000));
        assert_eq!(chunk.duration(), Duration::from_millis(20));

        let (info, wave) = wave_info_and_wave(0, 4, &pcm_data(480, -5));
        send(&server, info)?;
        send(&server, wave)?;
        let confirm = client_sent(&mut server, &mut session, SNDC_WAVECONFIRM).await?;
        assert_eq!(confirm[2], 4);
        let chunk = session.audio().pop().ok_or("no audio from WaveInfo/Wave")?;
        assert_eq!(chunk.frames(), 480);
        assert!(chunk.samples().iter().all(|&s| s == -5));

        let volume = [0x00, 0x80, 0xff, 0xff];
        send(&server, pdu(SNDC_SETVOLUME, &volume))?;
        let mut events = Vec::new();
        while let Some(event) = next_audio(&mut session, Duration::from_secs(2)).await? {
            events.push(event);
        }
        let want = AudioEvent::Volume(Volume {
            left: 0x8000,
            right: 0xffff,
        });
        assert!(events.contains(&want), "{events:?}");
        assert_eq!(session.audio().volume(), Volume { left: 0x8000, right: 0xffff });
        Ok(())
    })
}

/// Malformed PDUs, a format index out of range, a Wave2 carrying more than its BodySize, a
/// truncated wave, an oversized message: no audio from any of them, no panic, and the
/// channel still plays the next good wave.
#[test]
fn hostile_audio_pdus_are_dropped_and_the_channel_goes_on() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        negotiate(&mut server, &mut session, &[pcm16(2, 48_000)]).await?;
        counting_alloc::start();
        // Malformed: unknown type, a header alone, a truncated Wave2, a formats PDU cut short.
        for bad in [vec![0x7f, 0, 0, 0], vec![SNDC_WAVE2], wave2(0, 1, 0, &[])[..8].to_vec()] {
            send(&server, bad)?;
        }
        send(&server, server_formats(&[pcm16(2, 48_000)])[..10].to_vec())?;
        // A format the client never listed.
        send(&server, wave2(9, 1, 0, &pcm_data(480, 1)))?;
        // Larger than announced: 4 bytes announced, 1920 carried.
        let mut big = wave2(0, 2, 0, &pcm_data(480, 1));
        big[2..4].copy_from_slice(&16u16.to_le_bytes());
        send(&server, big)?;
        // A message declaring 100 MB, from its first chunk on.
        let first = ChannelSend::chunk("rdpsnd", 100 << 20, FLAG_FIRST, vec![SNDC_WAVE2; 1600]);
        server.command(Command::Channel(first))?;
        // A WaveInfo announcing more data than its Wave carries.
        let (info, wave) = wave_info_and_wave(0, 5, &pcm_data(480, 1));
        send(&server, info)?;
        send(&server, wave[..100].to_vec())?;
        still_plays(&mut server, &mut session, 6).await?;
        let counts = counting_alloc::stop();
        assert!(counts.largest < 1 << 20, "an allocation of {} bytes", counts.largest);
        assert!(session.audio().pop().is_none(), "nothing else was played");
        Ok(())
    })
}

/// Formats that no decoder takes (a block alignment an IMA ADPCM block cannot have, a
/// truncated MS ADPCM coefficient table, 6 channels, a zero rate) are not accepted; the
/// good one is.
#[test]
fn hostile_formats_are_not_accepted() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        let formats = [
            wave_format(0x11, 2, 22_050, 3, 4, &[1, 0]),
            wave_format(0x02, 1, 22_050, 512, 4, &[0xf4, 0x03, 0xff, 0xff]),
            pcm16(6, 48_000),
            pcm16(2, 0),
            pcm16(2, 48_000),
        ];
        let client_formats = negotiate(&mut server, &mut session, &formats).await?;
        assert_eq!(format_count(&client_formats), 1);
        still_plays(&mut server, &mut session, 0).await
    })
}

/// An application that does not take its audio loses the oldest, not memory: the queue
/// stays at its cap however many waves come.
#[test]
fn a_flood_of_waves_stays_within_the_cap() -> TestResult {
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        negotiate(&mut server, &mut session, &[pcm16(2, 48_000)]).await?;
        session.audio().set_max_buffered(Duration::from_millis(100));
        // 200 waves of 20 ms: 4 s of audio, never taken.
        for block in 0..200u8 {
            send(&server, wave2(0, block, u32::from(block) * 20, &pcm_data(960, i16::from(block))))?;
        }
        let last = loop {
            let confirm = client_sent(&mut server, &mut session, SNDC_WAVECONFIRM).await?;
            if confirm[2] == 199 {
                break confirm;
            }
        };
        // The confirmation counts what the client holds: about the cap, not 4 s.
        let delay = u16::from_le_bytes([last[0], last[1]]).wrapping_sub(0x10);
        assert!((80..=400).contains(&delay), "confirmed {delay} ms late");
        assert!(session.audio().queued() <= Duration::from_millis(100));
        assert_eq!(session.audio().dropped_frames(), 195 * 960);
        let newest = std::iter::from_fn(|| session.audio().pop()).last().ok_or("no audio")?;
        assert_eq!(newest.samples()[0], 199, "the newest audio is kept");
        Ok(())
    })
}
