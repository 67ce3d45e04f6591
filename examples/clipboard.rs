//! Reads or sets the clipboard of an RDP server.
//!
//! ```text
//! cargo run --example clipboard -- rdp://user:pass@host:3389 --pin AB:CD:... get [--wait S]
//! cargo run --example clipboard -- rdp://user:pass@host:3389 --pin AB:CD:... set TEXT [--hold S]
//! ```
//!
//! `get` waits (up to `--wait` seconds, default 10) for the server to announce its clipboard,
//! prints its text and exits 0, or exits 1 with a message when the server offers no text.
//! `set` offers TEXT and stays connected `--hold` seconds (default 10) so that a remote
//! application can paste it (the text crosses only when it does). A real server's certificate
//! is checked against known hosts unless `--pin` is given.

mod common;

use std::time::{Duration, Instant};

use async_rdp::trust::Fingerprint;
use async_rdp::{connect, ClientSession, Event, Target, Trust};

enum Action {
    Get { wait: Duration },
    Set { text: String, hold: Duration },
}

fn main() {
    common::main(|| parse_args().map(|(target, pins, action)| run(target, pins, action)));
}

fn parse_args() -> Result<(Target, Vec<Fingerprint>, Action), String> {
    let usage = "usage: clipboard rdp://user:pass@host[:port] [--pin SHA256] (get [--wait S] | set TEXT [--hold S])";
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
                })
            }
            "set" => {
                let text = args.next().ok_or("set needs the TEXT to offer")?;
                action = Some(Action::Set {
                    text,
                    hold: Duration::from_secs(10),
                });
            }
            "--wait" => match &mut action {
                Some(Action::Get { wait }) => *wait = seconds(args.next())?,
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
        Action::Get { wait } => get(&mut session, wait).await.map(|text| println!("{text}")),
        Action::Set { text, hold } => set(&mut session, &text, hold).await,
    };
    let _ = session.shutdown(Duration::from_secs(2)).await;
    result
}

/// The server's clipboard text, once it announced one, within `wait`.
async fn get(session: &mut ClientSession, wait: Duration) -> Result<String, String> {
    let deadline = Instant::now() + wait;
    let mut offered = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match async_rdp::net::with_timeout(left, "clipboard", session.next_event()).await {
            Err(e) if e.context() == "clipboard" => {
                return Err(match offered {
                    Some(false) => "the server's clipboard holds no text".into(),
                    _ => format!("the server announced no clipboard within {wait:?}"),
                })
            }
            other => other.map_err(|e| async_rdp::report(&e))?,
        };
        match event {
            Event::ClipboardChanged { formats } => {
                let text = formats.iter().any(|f| f.is_text());
                offered = Some(text);
                if text {
                    session.clipboard().request_text().map_err(|e| async_rdp::report(&e))?;
                }
            }
            Event::ClipboardText(text) => return Ok(text.into_string()),
            Event::ClipboardError(e) => return Err(e),
            Event::Disconnected(reason) => return Err(format!("the server ended the session: {reason:?}")),
            _ => {}
        }
    }
}

/// Offers `text` and keeps the session going for `hold`, answering the server's requests.
async fn set(session: &mut ClientSession, text: &str, hold: Duration) -> Result<(), String> {
    session.clipboard().set_text(text).map_err(|e| async_rdp::report(&e))?;
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
    println!("offered {} characters for {hold:?}", text.chars().count());
    Ok(())
}
