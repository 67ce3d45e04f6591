//! Records what an RDP server plays into a WAV file (and, with the `alsa` feature, plays it).
//!
//! ```text
//! cargo run --features audio --example audio -- rdp://user@host:3389 --pin AB:CD:... -o out.wav --seconds 10
//! cargo run --features alsa --example audio -- rdp://user@host:3389 -o out.wav --seconds 10 --play [DEVICE]
//! cargo run --features audio --example audio -- --help
//! ```
//!
//! Stays connected `--seconds` seconds (default 10) and writes every wave the server sent, as
//! decoded, to `-o` (default `audio.wav`; 16-bit PCM in the first wave's rate and channels;
//! waves in another format are left out, with a warning). It prints the format, the frames and
//! the duration recorded. With `--play`, the audio also goes to the ALSA device (`default`
//! unless named; put `--play` after TARGET, or its value would be taken for the device). The
//! password comes from the URL, else `RDP_PASSWORD`, else a prompt. A real server's certificate
//! is checked against known hosts unless `--pin` is given.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[cfg(feature = "alsa")]
use async_rdp::channels::AudioSink;
use async_rdp::channels::PcmFormat;
use async_rdp::{connect, ClientSession, Event};
use async_rdp_cli::ConnectArgs;
use clap::Parser as _;

/// Records what an RDP server plays into a WAV file (and, with the alsa feature, plays it).
#[derive(clap::Parser)]
#[command(name = "audio", mut_arg("target", |a| a.required(true)))]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// The WAV file to write (16-bit PCM in the first wave's rate and channels)
    #[arg(short = 'o', long = "output", value_name = "OUT.wav", default_value = "audio.wav")]
    out: PathBuf,

    /// Seconds to stay connected and record
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,

    /// Also play the audio on this ALSA device ("default" when none is named; needs the alsa feature)
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "default")]
    play: Option<String>,
}

fn main() {
    let args = Args::parse();
    common::main(run(args));
}

async fn run(args: Args) -> Result<(), String> {
    let target = args.connect.target()?.ok_or("no TARGET")?;
    let config = args.connect.client_config(&target, None)?;
    let mut session = connect(&target, config).await.map_err(|e| async_rdp_cli::explain(&e))?;
    let mut wav = Wav::new(args.out.clone());
    let result = match &args.play {
        None => record(&mut session, &mut wav, args.seconds).await,
        Some(device) => play(&mut session, &mut wav, args.seconds, device).await,
    };
    let _ = session.shutdown(Duration::from_secs(2)).await;
    result?;
    wav.finish()
}

/// Writes every wave that arrives within `seconds` to `wav`.
async fn record(session: &mut ClientSession, wav: &mut Wav, seconds: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while let Some(event) = next_event(session, deadline).await? {
        if let Event::Audio(_) = event {
            while let Some(chunk) = session.audio().pop() {
                wav.write(chunk.format(), chunk.samples())?;
            }
        }
    }
    Ok(())
}

/// Plays what arrives within `seconds` on the ALSA `device`, and records what it played.
#[cfg(feature = "alsa")]
async fn play(session: &mut ClientSession, wav: &mut Wav, seconds: u64, device: &str) -> Result<(), String> {
    let speaker = async_rdp::channels::AlsaSink::open(device).map_err(|e| e.to_string())?;
    let mut tee = Tee { speaker, wav };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        // Feed the device every 20 ms as it drains, not only when audio arrives.
        let tick = (Instant::now() + Duration::from_millis(20)).min(deadline);
        let event = next_event(session, tick).await?;
        session.audio().play_into(&mut tee).map_err(|e| async_rdp::report(&e))?;
        if event.is_none() && Instant::now() >= deadline {
            println!("ALSA underruns recovered: {}", tee.speaker.underruns());
            return Ok(());
        }
    }
}

#[cfg(not(feature = "alsa"))]
async fn play(_: &mut ClientSession, _: &mut Wav, _: u64, _: &str) -> Result<(), String> {
    Err("--play needs the alsa feature (cargo run --features alsa --example audio)".into())
}

/// The session's next event before `deadline`; `None` once it passed.
async fn next_event(session: &mut ClientSession, deadline: Instant) -> Result<Option<Event>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match async_rdp::net::with_timeout(left, "audio", session.next_event()).await {
        Err(e) if e.context() == "audio" => Ok(None),
        Err(e) => Err(async_rdp::report(&e)),
        Ok(Event::Disconnected(reason)) => Err(format!("the server ended the session: {reason:?}")),
        Ok(event) => Ok(Some(event)),
    }
}

/// The ALSA device, and the WAV file getting what the device took.
#[cfg(feature = "alsa")]
struct Tee<'a> {
    speaker: async_rdp::channels::AlsaSink,
    wav: &'a mut Wav,
}

#[cfg(feature = "alsa")]
impl AudioSink for Tee<'_> {
    fn write(&mut self, format: PcmFormat, samples: &[i16]) -> std::io::Result<usize> {
        let frames = self.speaker.write(format, samples)?;
        let taken = frames * usize::from(format.channels);
        self.wav
            .write(format, &samples[..taken])
            .map_err(std::io::Error::other)?;
        Ok(frames)
    }

    fn delay(&mut self) -> Duration {
        self.speaker.delay()
    }

    fn set_volume(&mut self, volume: async_rdp::channels::Volume) {
        self.speaker.set_volume(volume);
    }
}

/// A WAV file in the format of the first wave written to it.
struct Wav {
    path: PathBuf,
    writer: Option<(PcmFormat, hound::WavWriter<std::io::BufWriter<std::fs::File>>)>,
    frames: usize,
    skipped: usize,
}

impl Wav {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            writer: None,
            frames: 0,
            skipped: 0,
        }
    }

    fn write(&mut self, format: PcmFormat, samples: &[i16]) -> Result<(), String> {
        if self.writer.is_none() {
            let spec = hound::WavSpec {
                channels: format.channels,
                sample_rate: format.sample_rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let writer =
                hound::WavWriter::create(&self.path, spec).map_err(|e| format!("{}: {e}", self.path.display()))?;
            self.writer = Some((format, writer));
        }
        let Some((first, writer)) = self.writer.as_mut() else {
            return Ok(());
        };
        let frames = samples.len() / usize::from(format.channels.max(1));
        if *first != format {
            self.skipped += frames;
            return Ok(());
        }
        for &sample in samples {
            writer.write_sample(sample).map_err(|e| e.to_string())?;
        }
        self.frames += frames;
        Ok(())
    }

    fn finish(self) -> Result<(), String> {
        if self.skipped > 0 {
            eprintln!(
                "warning: left out {} frames in another format than the first wave's",
                self.skipped
            );
        }
        let Some((format, writer)) = self.writer else {
            return Err("the server played nothing".into());
        };
        writer.finalize().map_err(|e| e.to_string())?;
        println!(
            "wrote {}: {} Hz, {} channels, {} frames, {:.3} s",
            self.path.display(),
            format.sample_rate,
            format.channels,
            self.frames,
            format.duration(self.frames).as_secs_f64()
        );
        Ok(())
    }
}
