//! Reads or sets the clipboard of an RDP server.
//!
//! ```text
//! cargo run --example clipboard -- rdp://user:pass@host:3389 --pin AB:CD:... get [--image OUT.png] [--wait S]
//! cargo run --example clipboard -- rdp://user:pass@host:3389 --pin AB:CD:... set (TEXT | --image IN.png) [--hold S]
//! ```
//!
//! `get` waits (up to `--wait` seconds, default 10) for the server to announce its clipboard,
//! prints its text (with `--image`: writes its image as PNG) and exits 0, or exits 1 with a
//! message when the server offers no text (no image). `set` offers TEXT (or the PNG's image)
//! and stays connected `--hold` seconds (default 10) so that a remote application can paste it
//! (the data crosses only when it does). A real server's certificate
//! is checked against known hosts unless `--pin` is given.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_rdp::trust::Fingerprint;
use async_rdp::{connect, ClientSession, ClipboardImage, Event, Target, Trust};

enum Action {
    /// Print the text, or write the image to the path.
    Get {
        wait: Duration,
        image: Option<PathBuf>,
    },
    Set {
        offer: Offer,
        hold: Duration,
    },
}

enum Offer {
    Text(String),
    Image(PathBuf),
}

fn main() {
    common::main(|| parse_args().map(|(target, pins, action)| run(target, pins, action)));
}

fn parse_args() -> Result<(Target, Vec<Fingerprint>, Action), String> {
    let usage = "usage: clipboard rdp://user:pass@host[:port] [--pin SHA256] \
                 (get [--image OUT.png] [--wait S] | set (TEXT | --image IN.png) [--hold S])";
    let (mut target, mut pins, mut action) = (None, Vec::new(), None);
    let mut args = std::env::args().skip(1);
    let seconds = |v: Option<String>| -> Result<Duration, String> {
        let v = v.ok_or("a number of seconds is missing")?;
        Ok(Duration::from_secs(
            v.parse().map_err(|_| format!("bad seconds {v:?}"))?,
        ))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pin" => pins.push(
                args.next()
                    .ok_or("--pin needs a fingerprint")?
                    .parse()
                    .map_err(|e: async_rdp::Error| e.to_string())?,
            ),
            "get" => {
                action = Some(Action::Get {
                    wait: Duration::from_secs(10),
                    image: None,
                })
            }
            "set" => {
                let offer = match args.next().ok_or("set needs the TEXT (or --image PNG) to offer")? {
                    flag if flag == "--image" => Offer::Image(args.next().ok_or("--image needs a PNG file")?.into()),
                    text => Offer::Text(text),
                };
                action = Some(Action::Set {
                    offer,
                    hold: Duration::from_secs(10),
                });
            }
            "--image" => match &mut action {
                Some(Action::Get { image, .. }) => *image = Some(args.next().ok_or("--image needs a file")?.into()),
                _ => return Err("--image goes after get or set".into()),
            },
            "--wait" => match &mut action {
                Some(Action::Get { wait, .. }) => *wait = seconds(args.next())?,
                _ => return Err("--wait goes after get".into()),
            },
            "--hold" => match &mut action {
                Some(Action::Set { hold, .. }) => *hold = seconds(args.next())?,
                _ => return Err("--hold goes after set".into()),
            },
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => target = Some(common::parse_target(other)?),
        }
    }
    match (target, action) {
        (Some(target), Some(action)) => Ok((target, pins, action)),
        _ => Err(usage.into()),
    }
}

async fn run(target: Target, pins: Vec<Fingerprint>, action: Action) -> Result<(), String> {
    let trust = if pins.is_empty() {
        Trust::known_hosts()
    } else {
        Trust::pinned(pins)
    };
    let config = common::config_for(&target).with_trust(trust);
    let mut session = connect(&target, config).await.map_err(|e| async_rdp::report(&e))?;
    let result = match action {
        Action::Get { wait, image: None } => get_text(&mut session, wait).await.map(|text| println!("{text}")),
        Action::Get {
            wait,
            image: Some(path),
        } => get_image(&mut session, wait, &path).await,
        Action::Set { offer, hold } => set(&mut session, offer, hold).await,
    };
    let _ = session.shutdown(Duration::from_secs(2)).await;
    result
}

/// The server's clipboard text, once it announced one, within `wait`.
async fn get_text(session: &mut ClientSession, wait: Duration) -> Result<String, String> {
    match get(session, wait, Want::Text).await? {
        Event::ClipboardText(text) => Ok(text.into_string()),
        _ => unreachable!("get returns the event asked for"),
    }
}

/// Writes the server's clipboard image, once it announced one within `wait`, to `path`.
async fn get_image(session: &mut ClientSession, wait: Duration, path: &std::path::Path) -> Result<(), String> {
    let Event::ClipboardImage(image) = get(session, wait, Want::Image).await? else {
        unreachable!("get returns the event asked for");
    };
    std::fs::write(path, image.png()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {} ({}x{})", path.display(), image.width(), image.height());
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Want {
    Text,
    Image,
}

/// The server's clipboard data of kind `want` (its `ClipboardText` or `ClipboardImage`
/// event), once it announced some, within `wait`.
async fn get(session: &mut ClientSession, wait: Duration, want: Want) -> Result<Event, String> {
    let what = if want == Want::Text { "text" } else { "image" };
    let deadline = Instant::now() + wait;
    let mut offered = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match async_rdp::net::with_timeout(left, "clipboard", session.next_event()).await {
            Err(e) if e.context() == "clipboard" => {
                return Err(match offered {
                    Some(false) => format!("the server's clipboard holds no {what}"),
                    _ => format!("the server announced no clipboard within {wait:?}"),
                })
            }
            other => other.map_err(|e| async_rdp::report(&e))?,
        };
        match event {
            Event::ClipboardChanged { formats } => {
                let has = formats
                    .iter()
                    .any(|f| if want == Want::Text { f.is_text() } else { f.is_image() });
                offered = Some(has);
                let asked = match (has, want) {
                    (false, _) => Ok(()),
                    (true, Want::Text) => session.clipboard().request_text(),
                    (true, Want::Image) => session.clipboard().request_image(),
                };
                asked.map_err(|e| async_rdp::report(&e))?;
            }
            event @ (Event::ClipboardText(_) | Event::ClipboardImage(_)) => return Ok(event),
            Event::ClipboardError(e) => return Err(e),
            Event::Disconnected(reason) => return Err(format!("the server ended the session: {reason:?}")),
            _ => {}
        }
    }
}

/// Offers `offer` and keeps the session going for `hold`, answering the server's requests.
async fn set(session: &mut ClientSession, offer: Offer, hold: Duration) -> Result<(), String> {
    let offered = match offer {
        Offer::Text(text) => {
            session.clipboard().set_text(&text).map_err(|e| async_rdp::report(&e))?;
            format!("{} characters", text.chars().count())
        }
        Offer::Image(path) => {
            let png = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let image = ClipboardImage::from_png(png).map_err(|e| async_rdp::report(&e))?;
            let size = format!("a {}x{} image", image.width(), image.height());
            session
                .clipboard()
                .set_image(image)
                .map_err(|e| async_rdp::report(&e))?;
            size
        }
    };
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        match async_rdp::net::with_timeout(left, "hold", session.next_event()).await {
            Ok(Event::Disconnected(reason)) => return Err(format!("the server ended the session: {reason:?}")),
            Ok(_) => {}
            Err(e) if e.context() == "hold" => break,
            Err(e) => return Err(async_rdp::report(&e)),
        }
    }
    println!("offered {offered} for {hold:?}");
    Ok(())
}
