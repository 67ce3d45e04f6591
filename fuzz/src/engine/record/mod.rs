//! Recording the seed corpus from real sessions: the server's frames, as the client's `Framed`
//! received them in clear, written to `fuzz/corpus/framing/` (wrapped in the framing control
//! header) and `fuzz/corpus/session_frames/` (raw), one file per distinct kind of frame plus a
//! few streams.

mod audio;
mod channels;
mod demo;
mod names;
mod peer;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::engine::frames::split_frames;
use crate::engine::BoxError;
use crate::harness::framing;

pub use self::channels::channel_seeds;
use self::demo::{record_session, Recorded};
use self::names::frame_name;

/// Records a session with the demo server (connection, logon notifications, pointer, desktop,
/// input, a redraw, a resize, a server disconnect), and sessions with IronRDP's own server when
/// it is built, into `fuzz/corpus/` under the repository's `root`; adds the virtual channel
/// seeds of `session_frames` ([`channel_seeds`]).
pub fn record_corpus(root: &Path) -> Result<(), BoxError> {
    let recorded = record_session()?;
    let corpus = root.join("fuzz/corpus");
    let mut seeds = Seeds::create(&corpus)?;

    let negotiation = split_frames(&recorded.negotiation)?;
    let connection = split_frames(&recorded.connection)?;
    let session = split_frames(&recorded.session)?;
    println!(
        "recorded {} negotiation, {} connection and {} session frames ({} session bytes)",
        negotiation.len(),
        connection.len(),
        session.len(),
        recorded.session.len()
    );

    for (phase, frames) in [
        ("negotiation", &negotiation),
        ("connection", &connection),
        ("session", &session),
    ] {
        for frame in frames {
            seeds.save_frame(&format!("{phase}-{}", frame_name(frame)), frame, usize::MAX)?;
        }
    }
    let first_bitmap = session
        .iter()
        .position(|f| frame_name(f) == "fastpath-bitmap")
        .unwrap_or(0);
    let start = &session[..first_bitmap + 1];
    save_framing_streams(&mut seeds, &recorded, [&negotiation, &connection, start])?;
    save_session_streams(&mut seeds, &recorded, &session, start.concat())?;
    peer::record_peers(&mut seeds, root)?;
    let session_dir = seeds.session_dir.clone();
    for (name, bytes) in channel_seeds()?.into_iter().chain(audio::audio_seeds()?) {
        seeds.save(&session_dir, name, bytes)?;
    }
    println!(
        "wrote {} bytes of seed corpus under {}",
        seeds.written,
        corpus.display()
    );
    for (kind, count) in &seeds.kinds {
        println!("  {count:4} x {kind}");
    }
    Ok(())
}

/// framing: streams of frames cut at various points, stalled, with the frames kept alive, and
/// under a tight frame bound; `phases` are the frames of the negotiation, the connection and
/// the session's start up to its first bitmap update.
fn save_framing_streams(seeds: &mut Seeds, recorded: &Recorded, phases: [&[Vec<u8>]; 3]) -> Result<(), BoxError> {
    let dir = seeds.framing_dir.clone();
    seeds.save(
        &dir,
        "stream-connection-small-reads",
        framing::encode(0, None, &[0, 6, 99, 2], &recorded.connection),
    )?;
    let head = phases[2].concat();
    seeds.save(
        &dir,
        "stream-session-start-byte-by-byte-stalled-kept",
        framing::encode(framing::STALL | framing::KEEP_FRAMES, None, &[0], &head),
    )?;
    seeds.save(
        &dir,
        "stream-session-start-bound-1000",
        framing::encode(0, Some(1000), &[0xe0, 0x10], &head),
    )?;
    let mixed: Vec<u8> = phases.concat().concat();
    seeds.save(
        &dir,
        "stream-mixed-x224-fastpath",
        framing::encode(0, None, &[200, 3, 0xe1], &mixed),
    )
}

/// session_frames: the session's stream whole, its start (logon notifications, pointer, the
/// first bitmap update: `head`), the reactivation from Deactivate All to the end, the goodbye.
fn save_session_streams(
    seeds: &mut Seeds,
    recorded: &Recorded,
    session: &[Vec<u8>],
    head: Vec<u8>,
) -> Result<(), BoxError> {
    let dir = seeds.session_dir.clone();
    seeds.save(&dir, "stream-session-whole", recorded.session.clone())?;
    seeds.save(&dir, "stream-session-start", head)?;
    if let Some(at) = session.iter().position(|f| frame_name(f).contains("DeactivateAll")) {
        let reactivation: Vec<u8> = session[at..]
            .iter()
            .enumerate()
            .filter(|(i, f)| *i < 24 || frame_name(f) != "fastpath-bitmap")
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        seeds.save(&dir, "stream-reactivation", reactivation)?;
    }
    let x224: Vec<&Vec<u8>> = session.iter().filter(|f| frame_name(f).starts_with("x224-")).collect();
    let goodbye: Vec<u8> = x224[x224.len().saturating_sub(2)..]
        .iter()
        .flat_map(|f| f.iter().copied())
        .collect();
    seeds.save(&dir, "stream-goodbye", goodbye)
}

/// The two corpus directories being written, and what went into them.
struct Seeds {
    framing_dir: PathBuf,
    session_dir: PathBuf,
    /// Bytes written.
    written: usize,
    /// How many frames of each kind were seen.
    kinds: BTreeMap<String, usize>,
    /// The frames saved alone.
    distinct: HashSet<Vec<u8>>,
}

impl Seeds {
    /// Empties (or creates) `<corpus>/framing/` and `<corpus>/session_frames/`.
    fn create(corpus: &Path) -> Result<Self, BoxError> {
        let framing_dir = corpus.join("framing");
        let session_dir = corpus.join("session_frames");
        for dir in [&framing_dir, &session_dir] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            framing_dir,
            session_dir,
            written: 0,
            kinds: BTreeMap::new(),
            distinct: HashSet::new(),
        })
    }

    fn save(&mut self, dir: &Path, name: &str, bytes: Vec<u8>) -> Result<(), BoxError> {
        self.written += bytes.len();
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    }

    /// Saves `frame` alone to both corpora as `<kind>-<n>` (read whole, for framing) if it is
    /// the first or second of its kind (the desktop comes as many bitmap updates), at most
    /// `max_len` bytes long, and not a duplicate.
    fn save_frame(&mut self, kind: &str, frame: &[u8], max_len: usize) -> Result<(), BoxError> {
        let seen = self.kinds.entry(kind.to_owned()).or_insert(0);
        *seen += 1;
        let name = format!("{kind}-{seen}");
        if *seen <= 2 && frame.len() <= max_len && self.distinct.insert(frame.to_vec()) {
            let (framing_dir, session_dir) = (self.framing_dir.clone(), self.session_dir.clone());
            self.save(&framing_dir, &name, framing::encode(0, None, &[], frame))?;
            self.save(&session_dir, &name, frame.to_vec())?;
        }
        Ok(())
    }
}
