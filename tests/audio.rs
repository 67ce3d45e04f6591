//! Audio output (issue 14) against the demo server, which joins `rdpsnd` and `drdynvc` and lets
//! each test speak for the server with hand-made MS-RDPEA PDUs, on the static channel or on
//! `AUDIO_PLAYBACK_DVC` (as Windows 8+ and GNOME do): the negotiation, training, Wave2 and
//! WaveInfo/Wave waves confirmed with their block numbers, the volume; and hostile input —
//! malformed PDUs, a format index out of range, a wave larger than announced, an oversized
//! message, formats no decoder takes, a flood past the queue's cap. Each gives a dropped wave or
//! a clear warning, never a panic, and the session goes on; memory stays bounded (the counting
//! allocator of `tests/common`).

#![cfg(feature = "audio")]

use std::time::Duration;

use async_rdp::channels::{AudioEvent, PcmFormat, Volume};
use async_rdp::{ClientSession, Event};
use async_rdp_demo_server::channel::{dvc, FLAG_FIRST};
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
    // dwFlags, dwVolume, dwPitch, wDGramPort, then wNumberOfFormats.
    let mut body = vec![0; 16];
    body[14..16].copy_from_slice(&u16::try_from(formats.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(&[0, 8, 0, 0]);
    for f in formats {
        body.extend_from_slice(f);
    }
    pdu(SNDC_FORMATS, &body)
}

/// A Training PDU: wTimeStamp 0x3039, wPackSize 24 (the whole PDU, with its 16 bytes of data).
fn training() -> Vec<u8> {
    pdu(SNDC_TRAINING, &[&[0x39, 0x30, 24, 0][..], &[0; 16]].concat())
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
    [value, value]
        .repeat(frames)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// Which way the server speaks audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The `rdpsnd` static channel.
    Static,
    /// `AUDIO_PLAYBACK_DVC`, opened as this dynamic channel id.
    Dvc(u32),
}

fn send(server: &Server, message: Vec<u8>) -> TestResult {
    send_via(server, Via::Static, message)
}

fn send_via(server: &Server, via: Via, message: Vec<u8>) -> TestResult {
    let send = match via {
        Via::Static => ChannelSend::message("rdpsnd", message),
        Via::Dvc(id) => ChannelSend::message("drdynvc", dvc::data(id, &message)?),
    };
    server.command(Command::Channel(send))
}

/// The `rdpsnd` PDU of `msg_type` in what the client sent on `channel`, if it is one: its body.
fn audio_pdu(via: Via, channel: &str, data: &[u8], msg_type: u8) -> Option<Vec<u8>> {
    use ironrdp_dvc::pdu::{DrdynvcClientPdu, DrdynvcDataPdu};

    let pdu = match via {
        Via::Static if channel == "rdpsnd" => data,
        Via::Dvc(id) if channel == "drdynvc" => {
            let DrdynvcClientPdu::Data(pdu) = ironrdp_core::decode::<DrdynvcClientPdu>(data).ok()? else {
                return None;
            };
            let ours = pdu.channel_id() == id;
            match pdu {
                // Every PDU the client sends fits in one Data PDU.
                DrdynvcDataPdu::Data(d) if ours => return audio_pdu(Via::Static, "rdpsnd", d.data(), msg_type),
                _ => return None,
            }
        }
        _ => return None,
    };
    (pdu.first() == Some(&msg_type)).then(|| pdu.get(4..).unwrap_or_default().to_vec())
}

async fn connect(server: &mut Server) -> TestResult<ClientSession> {
    let config = server.client_config().with_security(async_rdp::Security::Tls);
    let mut session = async_rdp::connect(server.addr(), config).await?;
    wait_for_pattern(&mut session).await?;
    Ok(session)
}

/// Drives the session until the client sent an `rdpsnd` PDU of `msg_type`; returns its body.
async fn client_sent(server: &mut Server, session: &mut ClientSession, msg_type: u8) -> TestResult<Vec<u8>> {
    client_sent_via(server, session, Via::Static, msg_type).await
}

/// [`client_sent`], on the channel `via`.
async fn client_sent_via(
    server: &mut Server,
    session: &mut ClientSession,
    via: Via,
    msg_type: u8,
) -> TestResult<Vec<u8>> {
    let sent = server.wait_for(|e| match e {
        ServerEvent::ChannelData { channel, data } => audio_pdu(via, channel, data, msg_type),
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
    negotiate_via(server, session, Via::Static, formats).await
}

/// [`negotiate`], on the channel `via`.
async fn negotiate_via(
    server: &mut Server,
    session: &mut ClientSession,
    via: Via,
    formats: &[Vec<u8>],
) -> TestResult<Vec<u8>> {
    send_via(server, via, server_formats(formats))?;
    let client_formats = client_sent_via(server, session, via, SNDC_FORMATS).await?;
    send_via(server, via, training())?;
    let confirm = client_sent_via(server, session, via, SNDC_TRAINING).await?;
    // [MS-RDPEA] 2.2.3.2: the Training PDU's own wPackSize, which GNOME Remote Desktop checks.
    assert_eq!(
        confirm[..4],
        [0x39, 0x30, 24, 0],
        "training confirmed with its timestamp and size"
    );
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
/// Returns the blocks confirmed before it.
async fn still_plays(server: &mut Server, session: &mut ClientSession, block: u8) -> TestResult<Vec<u8>> {
    send(server, wave2(0, block, 1000, &pcm_data(480, 7)))?;
    let mut before = Vec::new();
    loop {
        let confirm = client_sent(server, session, SNDC_WAVECONFIRM).await?;
        if confirm[2] == block {
            break;
        }
        before.push(confirm[2]);
    }
    let chunk = loop {
        if let Some(chunk) = session.audio().pop() {
            break chunk;
        }
        next_audio(session, Duration::from_secs(10))
            .await?
            .ok_or("the good wave was not played")?;
    };
    assert_eq!((chunk.format(), chunk.frames()), (PCM_48K, 480));
    Ok(before)
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
        // The server's timestamp plus how long the client still needs to play what it holds:
        // this wave's 20 ms.
        assert_eq!(
            u16::from_le_bytes([confirm[0], confirm[1]]),
            0x10 + 20,
            "the confirmed timestamp"
        );
        assert_eq!(confirm[2], 3, "the confirmed block");
        let chunk = session.audio().pop().ok_or("no audio queued")?;
        assert_eq!(
            (chunk.format(), chunk.frames(), chunk.timestamp()),
            (PCM_48K, 960, 4242)
        );
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
        assert_eq!(
            session.audio().volume(),
            Volume {
                left: 0x8000,
                right: 0xffff
            }
        );
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
        // The waves of an unknown format and the truncated one are confirmed without being
        // played, as MS-RDPEA 3.2.5.2.1.6 asks (IronRDP does that); the Wave2 over its
        // BodySize and the oversized message are dropped whole.
        assert_eq!(still_plays(&mut server, &mut session, 6).await?, [1, 5]);
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
        still_plays(&mut server, &mut session, 0).await?;
        Ok(())
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
            send(
                &server,
                wave2(0, block, u32::from(block) * 20, &pcm_data(960, i16::from(block))),
            )?;
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

/// Opens `AUDIO_PLAYBACK_DVC` as dynamic channel `id` (the DVC capabilities first, once):
/// the client accepts it.
async fn open_audio_dvc(server: &mut Server, session: &mut ClientSession, id: u32, first: bool) -> TestResult {
    if first {
        server.command(Command::Channel(ChannelSend::message(
            "drdynvc",
            dvc::capabilities_request()?,
        )))?;
    }
    let create = dvc::create_request(id, "AUDIO_PLAYBACK_DVC")?;
    server.command(Command::Channel(ChannelSend::message("drdynvc", create)))?;
    let created = server.wait_for(|e| match e {
        ServerEvent::ChannelData { channel, data } if channel == "drdynvc" => dvc::create_response(data),
        _ => None,
    });
    let mut created = std::pin::pin!(created);
    let (opened, ok) = loop {
        let next = std::pin::pin!(session.next_event());
        match futures::future::select(created.as_mut(), next).await {
            futures::future::Either::Left((created, _)) => break created?,
            futures::future::Either::Right((event, _)) => {
                if let Event::Disconnected(reason) = event? {
                    return Err(format!("the session ended: {reason:?}").into());
                }
            }
        }
    };
    assert_eq!((opened, ok), (id, true), "AUDIO_PLAYBACK_DVC opened");
    Ok(())
}

/// Sends a Wave2 of `frames` frames, each sample `value`, on `via` as block `block`; checks
/// its confirmation and the decoded chunk.
async fn plays_via(server: &mut Server, session: &mut ClientSession, via: Via, block: u8, value: i16) -> TestResult {
    send_via(server, via, wave2(0, block, 4242, &pcm_data(960, value)))?;
    let confirm = client_sent_via(server, session, via, SNDC_WAVECONFIRM).await?;
    // The server's timestamp plus the 20 ms the client still needs to play the wave.
    assert_eq!(
        u16::from_le_bytes([confirm[0], confirm[1]]),
        0x10 + 20,
        "the confirmed timestamp"
    );
    assert_eq!(confirm[2], block, "the confirmed block");
    let chunk = session.audio().pop().ok_or("no audio queued")?;
    assert_eq!(
        (chunk.format(), chunk.frames(), chunk.timestamp()),
        (PCM_48K, 960, 4242)
    );
    assert!(chunk.samples().iter().all(|&s| s == value));
    Ok(())
}

/// Audio over `AUDIO_PLAYBACK_DVC`, as Windows 8+ and GNOME Remote Desktop send it: the
/// formats negotiated, a Wave2 and a WaveInfo/Wave pair decoded and confirmed on the dynamic
/// channel, a hostile one dropped; the server closing the channel ends the stream, and
/// audio plays again on the channel reopened.
#[test]
fn waves_play_and_are_confirmed_over_the_dynamic_channel() -> TestResult {
    const AUDIO: u32 = 5;
    run(config(), |mut server| async move {
        let mut session = connect(&mut server).await?;
        open_audio_dvc(&mut server, &mut session, AUDIO, true).await?;
        let ima = wave_format(0x11, 2, 22_050, 1024, 4, &1017u16.to_le_bytes());
        let aac = wave_format(0xA106, 2, 44_100, 1, 16, &[]);
        let formats = [pcm16(2, 48_000), aac, ima];
        let client_formats = negotiate_via(&mut server, &mut session, Via::Dvc(AUDIO), &formats).await?;
        assert_eq!(format_count(&client_formats), 2, "PCM and IMA ADPCM, not AAC");
        plays_via(&mut server, &mut session, Via::Dvc(AUDIO), 3, 1000).await?;

        let (info, wave) = wave_info_and_wave(0, 4, &pcm_data(480, -5));
        send_via(&server, Via::Dvc(AUDIO), info)?;
        send_via(&server, Via::Dvc(AUDIO), wave)?;
        let confirm = client_sent_via(&mut server, &mut session, Via::Dvc(AUDIO), SNDC_WAVECONFIRM).await?;
        assert_eq!(confirm[2], 4);
        let chunk = session.audio().pop().ok_or("no audio from WaveInfo/Wave")?;
        assert_eq!(chunk.frames(), 480);
        assert!(chunk.samples().iter().all(|&s| s == -5));

        // Hostile input is screened on this channel too: a Wave2 carrying more than its
        // BodySize is dropped, and the channel goes on.
        let mut big = wave2(0, 5, 0, &pcm_data(480, 1));
        big[2..4].copy_from_slice(&16u16.to_le_bytes());
        send_via(&server, Via::Dvc(AUDIO), big)?;
        plays_via(&mut server, &mut session, Via::Dvc(AUDIO), 6, 2).await?;

        server.command(Command::Channel(ChannelSend::message("drdynvc", dvc::close(AUDIO)?)))?;
        // Events of the waves played may come first.
        loop {
            match next_audio(&mut session, Duration::from_secs(10)).await? {
                Some(AudioEvent::Closed) => break,
                Some(_) => {}
                None => return Err("the stream did not end with the channel".into()),
            }
        }

        open_audio_dvc(&mut server, &mut session, AUDIO + 1, false).await?;
        negotiate_via(&mut server, &mut session, Via::Dvc(AUDIO + 1), &[pcm16(2, 48_000)]).await?;
        plays_via(&mut server, &mut session, Via::Dvc(AUDIO + 1), 9, 77).await?;
        Ok(())
    })
}

/// The ALSA sink, through alsa-lib's `file` plugin (a PCM that writes what it plays to a file,
/// with the `null` device behind it), so that the test reads back the samples: a 440 Hz tone
/// written without blocking comes out exactly, then at the server's half volume.
#[test]
#[cfg(feature = "alsa")]
#[ignore = "needs alsa-lib (libasound2): cargo test --all-features --test audio -- --ignored"]
fn alsa_plays_into_the_file_plugin() -> TestResult {
    use async_rdp::channels::{AlsaSink, AudioSink};

    let path = std::env::temp_dir().join(format!("async-rdp-alsa-{}.raw", std::process::id()));
    let device = format!("file:FILE={},FORMAT=raw", path.display());
    let tone: Vec<i16> = (0..48_000)
        .flat_map(|i| {
            let s = (12_000.0 * (std::f64::consts::TAU * 440.0 * f64::from(i) / 48_000.0).sin()) as i16;
            [s, s]
        })
        .collect();
    let mut sink = AlsaSink::open(&device)?;
    let write_all = |sink: &mut AlsaSink, samples: &[i16]| -> TestResult {
        let mut at = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while at < samples.len() {
            at += 2 * sink.write(PCM_48K, &samples[at..])?;
            if std::time::Instant::now() > deadline {
                return Err("the device took too little".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    };
    write_all(&mut sink, &tone)?;
    sink.set_volume(Volume {
        left: 0x8000,
        right: 0x8000,
    });
    write_all(&mut sink, &tone[..9600])?;
    drop(sink);
    let bytes = std::fs::read(&path)?;
    let _ = std::fs::remove_file(&path);
    let played: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(played.len(), tone.len() + 9600, "every frame written reached the file");
    assert!(played[..tone.len()] == tone[..], "the tone comes out exactly");
    let halved: Vec<i16> = tone[..9600]
        .iter()
        .map(|&s| ((i32::from(s) * 0x8000) >> 16) as i16)
        .collect();
    assert!(played[tone.len()..] == halved[..], "at half volume");
    Ok(())
}
