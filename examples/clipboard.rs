//! Reads or sets the clipboard of an RDP server.
//!
//! ```text
//! cargo run --example clipboard -- rdp://user@host:3389 --pin AB:CD:... get [--image OUT.png] [--wait S]
//! cargo run --example clipboard -- rdp://user@host:3389 --pin AB:CD:... set (TEXT | --image IN.png) [--hold S]
//! cargo run --example clipboard -- --help
//! ```
//!
//! `get` waits (up to `--wait` seconds, default 10) for the server to announce its clipboard,
//! prints its text (with `--image`: writes its image as PNG) and exits 0, or exits 1 with a
//! message when the server offers no text (no image). `set` offers TEXT (or the PNG's image)
//! and stays connected `--hold` seconds (default 10) so that a remote application can paste it
//! (the data crosses only when it does). The password comes from the URL, else `RDP_PASSWORD`,
//! else a prompt. A real server's certificate is checked against known hosts unless `--pin` is
//! given.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_rdp::{connect, ClientSession, ClipboardImage, Event};
use async_rdp_cli::ConnectArgs;
use clap::Parser as _;

/// Reads or sets the clipboard of an RDP server.
#[derive(clap::Parser)]
#[command(name = "clipboard", mut_arg("target", |a| a.required(true)))]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,

    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Waits for the server to announce its clipboard and prints its text (or writes its image)
    Get {
        /// Write the clipboard's image to this PNG file instead of printing its text
        #[arg(long, value_name = "OUT.png")]
        image: Option<PathBuf>,

        /// Seconds to wait for the server to announce a clipboard
        #[arg(long, value_name = "S", default_value = "10", value_parser = seconds)]
        wait: Duration,
    },
    /// Offers TEXT (or a PNG's image) as the clipboard, and stays connected for a paste
    Set {
        /// The text to offer
        #[arg(value_name = "TEXT", required_unless_present = "image", conflicts_with = "image")]
        text: Option<String>,

        /// Offer this PNG file's image instead of text
        #[arg(long, value_name = "IN.png")]
        image: Option<PathBuf>,

        /// Seconds to stay connected so that a remote application can paste (the data crosses only then)
        #[arg(long, value_name = "S", default_value = "10", value_parser = seconds)]
        hold: Duration,
    },
}

enum Offer {
    Text(String),
    Image(PathBuf),
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse().map(Duration::from_secs).map_err(|e| e.to_string())
}

fn main() {
    let cli = Cli::parse();
    common::main(run(cli));
}

async fn run(cli: Cli) -> Result<(), String> {
    let target = cli.connect.target()?.ok_or("no TARGET")?;
    let config = cli.connect.client_config(&target, None)?;
    let mut session = connect(&target, config).await.map_err(|e| async_rdp_cli::explain(&e))?;
    let result = match cli.action {
        Action::Get { wait, image: None } => get_text(&mut session, wait).await.map(|text| println!("{text}")),
        Action::Get {
            wait,
            image: Some(path),
        } => get_image(&mut session, wait, &path).await,
        Action::Set {
            image: Some(path),
            hold,
            ..
        } => set(&mut session, Offer::Image(path), hold).await,
        Action::Set {
            text: Some(text), hold, ..
        } => set(&mut session, Offer::Text(text), hold).await,
        Action::Set { .. } => Err("set needs TEXT or --image".into()),
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
