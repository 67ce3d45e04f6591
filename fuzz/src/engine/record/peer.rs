//! Sessions with IronRDP's own server (`interop/ironrdp-peer`, when it is built), recorded in
//! three codecs: RemoteFX, uncompressed surface bits, planar bitmaps.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use async_rdp::trust::Fingerprint;
use async_rdp::{ClientConfig, Codec, Security, Session};

use super::demo::drain;
use super::names::frame_name;
use super::Seeds;
use crate::engine::frames::split_frames;
use crate::engine::BoxError;
use crate::harness::session;

/// Records a session with `ironrdp-peer` in each codec, if it is built: its frames alone (to
/// both corpora) and its start, up to 128 KiB of whole frames (to `session_frames`).
pub(super) fn record_peers(seeds: &mut Seeds, root: &Path) -> Result<(), BoxError> {
    let Some(bin) = peer_binary(root) else {
        println!("ironrdp-peer is not built (interop/ironrdp-peer/README.md): no seeds from it");
        return Ok(());
    };
    for (label, peer_codecs, client_codecs) in [
        ("remotefx", "remotefx", None),
        ("surface-bits", "", None),
        ("planar", "", Some(&[][..])),
    ] {
        let stream = record_peer(&bin, peer_codecs, client_codecs)?;
        let frames = split_frames(&stream)?;
        let mut kept = 0;
        let mut head = Vec::new();
        for frame in &frames {
            seeds.save_frame(&format!("peer-{label}-{}", frame_name(frame)), frame, 64 * 1024)?;
            // The session's start, up to 128 KiB of whole frames.
            if kept + frame.len() <= 128 * 1024 {
                kept += frame.len();
                head.extend_from_slice(frame);
            }
        }
        let dir = seeds.session_dir.clone();
        seeds.save(&dir, &format!("stream-peer-{label}"), head)?;
    }
    Ok(())
}

/// `ironrdp-peer` (IronRDP's own server, `interop/ironrdp-peer`), if it is built.
fn peer_binary(root: &Path) -> Option<PathBuf> {
    let bin = std::env::var_os("IRONRDP_PEER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/ironrdp-peer/release/ironrdp-peer"));
    bin.exists().then_some(bin)
}

/// Records what `ironrdp-peer` sends in a session: the desktop (in the codec that
/// `peer_codecs` and `client_codecs` lead it to), a resize, the end of a client shutdown.
fn record_peer(bin: &Path, peer_codecs: &str, client_codecs: Option<&[Codec]>) -> Result<Vec<u8>, BoxError> {
    let mut child = Command::new(bin)
        .args([
            "--port",
            "0",
            "--exit-on-eof",
            "--security",
            "tls",
            "--width",
            "128",
            "--height",
            "96",
        ])
        .args(["--codecs", peer_codecs])
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let recorded = record_child(&mut child, peer_codecs, client_codecs);
    // Our own child, by its handle: closing stdin (--exit-on-eof) is its cue; kill if not.
    let _ = child.kill();
    let _ = child.wait();
    recorded
}

/// Reads where the started `child` listens, then connects to it and records the session.
fn record_child(child: &mut Child, peer_codecs: &str, client_codecs: Option<&[Codec]>) -> Result<Vec<u8>, BoxError> {
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let listening = lines.next().ok_or("ironrdp-peer said nothing")??;
    // Keep its event lines flowing (a full pipe would block it).
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let field = |name: &str| -> Result<String, BoxError> {
        let at = listening.find(&format!("\"{name}\":")).ok_or("no such field")? + name.len() + 3;
        let rest = listening[at..].trim_start_matches('"');
        Ok(rest[..rest.find(['"', ',', '}']).unwrap_or(rest.len())].to_owned())
    };
    let addr: SocketAddr = format!("127.0.0.1:{}", field("port")?).parse()?;
    let fingerprint: Fingerprint = field("fingerprint")?.parse().map_err(|_| "bad fingerprint")?;
    let mut config = ClientConfig::new("fuzz", "fuzz").with_security(Security::Tls);
    if let Some(codecs) = client_codecs {
        config = config.with_codecs(codecs);
    }
    let session = record_peer_session(addr, fingerprint, config, stdin, peer_codecs);
    async_std::task::block_on(async_std::future::timeout(Duration::from_secs(60), session))?
}

/// Connects to `ironrdp-peer` at `addr`, reads the desktop, asks it (on its `stdin`) for a
/// resize, reads that, shuts down, and returns what it read after the connection sequence.
async fn record_peer_session(
    addr: SocketAddr,
    pin: Fingerprint,
    config: ClientConfig,
    mut stdin: ChildStdin,
    peer_codecs: &str,
) -> Result<Vec<u8>, BoxError> {
    let (framed, result, recording) = Box::pin(session::connect(addr, pin, config)).await?;
    let start = recording.tls.borrow().len() - framed.peek().len();
    let mut session = Session::new(framed, result);
    let mut events = drain(&mut session, Duration::from_millis(1500)).await?;
    writeln!(stdin, "resize 96 64")?;
    events.extend(drain(&mut session, Duration::from_millis(1500)).await?);
    let _ = session.shutdown(Duration::from_secs(3)).await;
    println!(
        "ironrdp-peer --codecs {peer_codecs:?}: client saw {} events",
        events.len()
    );
    drop(session);
    let tls = recording.tls.borrow();
    Ok(tls[start..].to_vec())
}
