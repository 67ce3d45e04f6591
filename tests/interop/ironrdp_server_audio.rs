//! Audio output with IronRDP's server (`--sound`, `tone`).

use super::ironrdp_server::*;
use super::*;

/// What the client decoded while the peer played a tone, and what the peer reported.
#[cfg(feature = "audio")]
struct Heard {
    format: Option<async_rdp::channels::PcmFormat>,
    samples: Vec<i16>,
    /// The peer's `tone_sent` line.
    sent: String,
    /// The peer's `wave_confirm` lines.
    confirms: Vec<String>,
}

/// Has the peer play a `hz` tone for `ms` milliseconds, and drives the session (taking every
/// decoded wave) until the peer has sent it all and the last confirmations are in.
#[cfg(feature = "audio")]
async fn hear_tone(session: &mut ClientSession, peer: &mut Peer, hz: u32, ms: u64) -> TestResult<Heard> {
    peer_event_while_driving(session, peer, "sound_ready").await?;
    peer.command(&format!("tone {hz} {ms}"))?;
    let mut heard = Heard {
        format: None,
        samples: Vec::new(),
        sent: String::new(),
        confirms: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_millis(ms) + Duration::from_secs(10);
    let mut sent_at = None;
    while sent_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_millis(500)) {
        if Instant::now() > deadline {
            return Err("the tone did not end in time".into());
        }
        while let Ok(line) = peer.lines.try_recv() {
            if line.contains("\"event\":\"wave_confirm\"") {
                heard.confirms.push(line);
            } else if line.contains("\"event\":\"tone_sent\"") {
                heard.sent = line;
                sent_at = Some(Instant::now());
            }
        }
        match async_std::future::timeout(Duration::from_millis(20), session.next_event()).await {
            Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
            Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
            _ => {}
        }
        while let Some(chunk) = session.audio().pop() {
            heard.format.get_or_insert(chunk.format());
            heard.samples.extend_from_slice(chunk.samples());
        }
    }
    Ok(heard)
}

/// The tone as the audio example stores it (a WAV file written with hound), read back: its
/// format and its left channel.
#[cfg(feature = "audio")]
fn through_wav(format: async_rdp::channels::PcmFormat, samples: &[i16]) -> TestResult<(hound::WavSpec, Vec<i16>)> {
    let path = std::env::temp_dir().join(format!("async-rdp-tone-{}.wav", std::process::id()));
    let spec = hound::WavSpec {
        channels: format.channels,
        sample_rate: format.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec)?;
    for &sample in samples {
        writer.write_sample(sample)?;
    }
    writer.finalize()?;
    let mut reader = hound::WavReader::open(&path)?;
    let spec = reader.spec();
    let all: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let _ = std::fs::remove_file(&path);
    Ok((spec, all.into_iter().step_by(usize::from(spec.channels)).collect()))
}

/// The frequency of a sine in `samples` at `rate`, from its upward zero crossings between its
/// first and its last (with a hysteresis of an eighth of full scale, so that the noise of a
/// lossy codec near zero does not count).
#[cfg(feature = "audio")]
fn measured_frequency(samples: &[i16], rate: u32) -> f64 {
    let (mut below, mut crossings) = (false, Vec::new());
    for (i, &s) in samples.iter().enumerate() {
        if s < -4096 {
            below = true;
        } else if below && s > 0 {
            below = false;
            crossings.push(i);
        }
    }
    match (crossings.first(), crossings.last()) {
        (Some(first), Some(last)) if last > first => {
            (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
        }
        _ => 0.0,
    }
}

/// The peer plays a 440 Hz tone for 2 s in `format`: the client's decoded audio, stored as
/// a WAV file and read back, has that frequency (within 1 %) and length (within 10 %), and
/// the peer received a wave confirmation for every wave it sent.
#[cfg(feature = "audio")]
fn ironrdp_server_tone(format: &str, rate: u32) -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--codecs", "", "--sound", format])?;
    block_on(async {
        let mut session = peer_session(&peer).await?;
        let heard = hear_tone(&mut session, &mut peer, 440, 2000).await?;
        let pcm = heard.format.ok_or("the client decoded no audio")?;
        let (spec, left) = through_wav(pcm, &heard.samples)?;
        assert_eq!((spec.sample_rate, spec.channels), (rate, 2), "{format}");
        let seconds = left.len() as f64 / f64::from(spec.sample_rate);
        let hz = measured_frequency(&left, spec.sample_rate);
        eprintln!(
            "{format}: {seconds:.3} s at {hz:.2} Hz, {} confirms; peer: {}",
            heard.confirms.len(),
            heard.sent
        );
        assert!((1.8..=2.2).contains(&seconds), "{format}: {seconds} s, not 2 s");
        assert!((435.6..=444.4).contains(&hz), "{format}: {hz} Hz, not 440 Hz");
        let waves: usize = field(&heard.sent, "waves").ok_or("no waves in tone_sent")?.parse()?;
        assert_eq!(
            heard.confirms.len(),
            waves,
            "{format}: a wave confirmation for every wave"
        );
        let blocks: Vec<&str> = heard.confirms.iter().filter_map(|c| field(c, "block_no")).collect();
        let expected: Vec<String> = (0..waves).map(|n| (n % 256).to_string()).collect();
        assert_eq!(blocks, expected, "{format}: confirmations in block order");
        assert_eq!(session.audio().dropped_frames(), 0);
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

#[test]
#[cfg(feature = "audio")]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_tone_in_pcm() -> TestResult {
    ironrdp_server_tone("pcm", 44_100)
}

#[test]
#[cfg(feature = "audio")]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_tone_in_ima_adpcm() -> TestResult {
    ironrdp_server_tone("adpcm", 22_050)
}
