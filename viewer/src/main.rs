//! `viewer`: an interactive RDP client on one thread — the window, the session, decoding and
//! drawing all on the thread that runs `main`.
//!
//! ```text
//! viewer rdp://alice@server.example              # asks for the password (or RDP_PASSWORD)
//!                                                 # on the terminal, else in the window
//! viewer rdp://alice@server --fullscreen          # Ctrl+Alt+Enter leaves fullscreen
//! viewer --help
//! ```

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use async_rdp::{connect, is_transient, Backoff, Channel, ClientConfig, ClientSession, DisconnectReason, Target};
use async_rdp_cli::ConnectArgs;
use clap::Parser;

mod clipboard;
mod cursor;
mod input;
mod keymap;
mod prompt;
mod screen;
mod viewer;
mod wake;

use crate::screen::{Scale, Screen};
use crate::viewer::{say, Outcome, Viewer};

/// An RDP viewer on one thread: SDL2's window and async-rdp's session share it.
///
/// Keys go to the server by physical position, so the server's keyboard layout applies (tell
/// it yours with --keyboard-layout). The clipboard's text is shared both ways. Resizing the
/// window resizes the remote desktop when the server allows it.
#[derive(Parser, Debug)]
#[command(name = "viewer", version)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// The window's and remote desktop's size at start, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),

    /// Fill the screen: the remote desktop takes the display's size. The release chord
    /// leaves fullscreen (and gives the keyboard back to the local desktop).
    #[arg(long)]
    fullscreen: bool,

    /// With --fullscreen: span every display, and tell the server their layout (it then
    /// sees one monitor per display).
    #[arg(long, requires = "fullscreen")]
    multimon: bool,

    /// How the remote desktop fits the window while their sizes differ (before the server
    /// follows a resize, or when it cannot): scaled to fit, or 1:1 with the view following
    /// the pointer.
    #[arg(long, value_enum, default_value_t = Scale::Fit)]
    scale: Scale,

    /// The keyboard layout the server should read our keys with: us, de, fr, gb, es, it, ch,
    /// se, no, dk, fi, nl, be, pt, br, pl, cz, hu, ru, jp, or a Windows layout id (0x407).
    #[arg(long, default_value = "us", value_parser = parse_layout)]
    keyboard_layout: u32,

    /// The key chord that leaves fullscreen and releases the keyboard grab (and enters
    /// fullscreen again), e.g. ctrl+alt+enter, ctrl+alt+f12. It is not sent to the server.
    #[arg(long, default_value = "ctrl+alt+enter")]
    release_chord: input::Chord,

    /// Connection attempts after the link drops (0: do not reconnect). The waits between
    /// them grow from 0.5 s to 30 s.
    #[arg(long, default_value_t = 6)]
    reconnect_attempts: u32,

    /// Do not share the clipboard with the server.
    #[arg(long)]
    no_clipboard: bool,

    /// Do not offer the graphics pipeline (EGFX): less memory on servers that do not
    /// require it (xrdp never uses it; GNOME Remote Desktop needs it).
    #[arg(long)]
    no_graphics_pipeline: bool,

    /// How pictures reach the screen: `software` (SDL's own renderer into the window system's
    /// shared-memory image: one thread, the least memory) or `gpu` (OpenGL / GLES through the
    /// driver: cheaper scaling, but drivers such as Mesa's start threads of their own and take
    /// tens of MiB).
    #[arg(long, value_enum, default_value_t = Renderer::Software)]
    renderer: Renderer,

    /// The ALSA device the server's sound plays on ("none" for silence).
    #[cfg(feature = "audio")]
    #[arg(long, default_value = "default")]
    audio_device: String,
}

/// See `Args::renderer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Renderer {
    Software,
    Gpu,
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Message(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why the viewer stops with an error.
enum Failure {
    /// Already printed and shown to the user (a refused connection).
    Reported,
    /// To be printed.
    Message(String),
}

impl<T: Into<String>> From<T> for Failure {
    fn from(message: T) -> Self {
        Failure::Message(message.into())
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let target = args
        .connect
        .target()
        .map_err(|e| e.to_string())?
        .ok_or("which server? viewer rdp://user@host[:port] (see --help)")?;
    if args.renderer == Renderer::Software {
        // Without it SDL picks OpenGL when it exists (Mesa's llvmpipe under Xvfb: two more
        // threads and ~120 MiB).
        sdl2::hint::set("SDL_RENDER_DRIVER", "software");
    }
    let sdl = sdl2::init()?;
    let video = sdl.video()?;
    let driver = video.current_video_driver();
    if args.renderer == Renderer::Software && driver != "KMSDRM" && driver != "wayland" {
        // X11 (shared memory) and the offscreen driver have window surfaces of their own: keep
        // SDL from emulating them with OpenGL (threads, memory). KMS/DRM and Wayland have
        // none and need that emulation, so they keep it.
        sdl2::hint::set("SDL_FRAMEBUFFER_ACCELERATION", "0");
    }
    let placement = Placement::of(&video, &args)?;
    // The password is asked before the window opens when it can be (the URL, RDP_PASSWORD, the
    // terminal: a window would cover the terminal); with none of them, in the window.
    let ask_in_window = !args.connect.password_given(&target) && !std::io::stdin().is_terminal();
    let early = if ask_in_window {
        None
    } else {
        Some(connection_config(
            &args,
            &target,
            &placement,
            &mut async_rdp_cli::ask_password_on_terminal,
        )?)
    };
    let window = placement.open_window(&video, &target)?;
    let (width, height) = window.size();
    let size = (size16(width), size16(height));
    // Declared before the screen: its textures borrow it.
    let mut creator = None;
    let mut screen = match args.renderer {
        Renderer::Software => match Screen::on_surface(window, size, args.scale) {
            Ok(screen) => screen,
            Err(window) => {
                log::info!("The window's pixels are not 32-bit: drawing through SDL's software renderer");
                let canvas = window.into_canvas().software().build().map_err(|e| e.to_string())?;
                let creator = creator.insert(canvas.texture_creator());
                Screen::on_canvas(canvas, creator, size, args.scale)?
            }
        },
        Renderer::Gpu => {
            let canvas = window.into_canvas().accelerated().build().map_err(|e| e.to_string())?;
            let creator = creator.insert(canvas.texture_creator());
            Screen::on_canvas(canvas, creator, size, args.scale)?
        }
    };
    let pointer = cursor::Pointer::new(sdl.mouse());
    let mut events = sdl.event_pump()?;
    let config = match early {
        Some(config) => config,
        None => connection_config(&args, &target, &placement, &mut |who| {
            prompt::password_in_window(&mut screen, &mut events, &video, who)
        })?,
    };
    let host = format!("{}:{}", target.host(), target.port());
    async_rdp::runtime::block_on(async {
        let mut viewer = Viewer::new(screen, events, pointer, args.release_chord, host);
        if !args.no_clipboard {
            viewer.clipboard = Some(clipboard::SharedClipboard::new(video.clipboard()));
        }
        #[cfg(feature = "audio")]
        {
            viewer.audio = open_audio(&args.audio_device);
        }
        video.text_input().start();
        let result = session_life(&mut viewer, &target, config, args.reconnect_attempts).await;
        let screen = &viewer.screen;
        log::info!(
            "Showed {} pictures; uploaded {} pixels ({:.1} full screens)",
            screen.pictures,
            screen.uploaded_pixels,
            screen.uploaded_pixels as f64 / (f64::from(screen.size().0) * f64::from(screen.size().1)).max(1.0)
        );
        result
    })
}

/// Where the window goes and how large it is: `--size` in the middle of the screen, or
/// `--fullscreen` over the first display (`--multimon`: over all of them, as a monitor layout).
struct Placement {
    size: (u32, u32),
    /// The displays the window covers, when fullscreen.
    area: Option<sdl2::rect::Rect>,
    /// Every display, when the window spans more than one.
    monitors: Vec<sdl2::rect::Rect>,
}

impl Placement {
    fn of(video: &sdl2::VideoSubsystem, args: &Args) -> Result<Self, String> {
        let bounds = if args.fullscreen { displays(video)? } else { Vec::new() };
        let area = match (bounds.first(), args.multimon) {
            (None, _) => None,
            (Some(_), true) => Some(bounding(&bounds)),
            (Some(first), false) => Some(*first),
        };
        let size = area.map_or(args.size, |a| (a.width(), a.height()));
        let monitors = if args.multimon && bounds.len() > 1 {
            bounds
        } else {
            Vec::new()
        };
        Ok(Self { size, area, monitors })
    }

    fn open_window(&self, video: &sdl2::VideoSubsystem, target: &Target) -> Result<sdl2::video::Window, String> {
        let title = format!("{}:{} — connecting — async-rdp", target.host(), target.port());
        let mut builder = video.window(&title, self.size.0, self.size.1);
        match self.area {
            None => builder.position_centered().resizable(),
            Some(area) if !self.monitors.is_empty() => builder.position(area.x(), area.y()).borderless(),
            Some(_) => builder.fullscreen_desktop(),
        };
        builder.allow_highdpi();
        builder.build().map_err(|e| e.to_string())
    }

    /// The displays as the session's monitor layout, relative to the area's top-left corner.
    fn monitor_layout(&self) -> Option<Vec<async_rdp::channels::Monitor>> {
        let area = self.area.filter(|_| !self.monitors.is_empty())?;
        let layout = self.monitors.iter().enumerate().map(|(i, b)| {
            let mut m = async_rdp::channels::Monitor::at(b.x() - area.x(), b.y() - area.y(), b.width(), b.height());
            m.primary = i == 0;
            m
        });
        Some(layout.collect())
    }
}

/// The configuration for the connection: the command line's, the channels the options leave
/// on, a desktop of the window's size (and monitor layout), the password from `ask_password`
/// when it has to be asked.
fn connection_config(
    args: &Args,
    target: &Target,
    placement: &Placement,
    ask_password: &mut async_rdp_cli::AskPasswordFn<'_>,
) -> Result<ClientConfig, String> {
    let mut config = args
        .connect
        .client_config_asking(target, Some(prompt::ask_in_window()), ask_password)
        .map_err(|e| e.to_string())?
        .with_keyboard_layout(args.keyboard_layout);
    let mut channels: Vec<Channel> = Channel::defaults().to_vec();
    channels.retain(|c| match c {
        Channel::Clipboard => !args.no_clipboard,
        Channel::Graphics => !args.no_graphics_pipeline,
        _ => true,
    });
    config = config.with_channels(&channels);
    if let Some(monitors) = placement.monitor_layout() {
        config = config.with_monitors(&monitors).map_err(|e| async_rdp::report(&e))?;
    }
    let (width, height) = placement.size;
    Ok(config.with_desktop_size(size16(width), size16(height)))
}

/// Connects, shows the session, reconnects when the link drops; returns when the user closes
/// the window or the server ends the session.
async fn session_life(
    viewer: &mut Viewer<'_>,
    target: &Target,
    config: ClientConfig,
    attempts: u32,
) -> Result<(), Failure> {
    let Some(first) = viewer.while_waiting(connect(target, config.clone())).await else {
        say("closed");
        return Ok(());
    };
    let mut session = first.map_err(|e| refused(&e))?;
    announce(viewer, &session, "connected");
    loop {
        match viewer.run(&mut session).await {
            Outcome::Quit => {
                say("closed");
                return Ok(());
            }
            Outcome::Ended(DisconnectReason::ConnectionLost(how)) if attempts > 0 => {
                log::warn!("Link lost: {how}");
                if !reconnect_or_close(viewer, target, &config, &mut session, attempts).await? {
                    return Ok(());
                }
            }
            Outcome::Ended(DisconnectReason::ConnectionLost(how)) => {
                say("closed");
                return Err(format!("the link dropped: {how}").into());
            }
            Outcome::Ended(reason) => {
                say("closed");
                if !matches!(reason, DisconnectReason::Client) {
                    eprintln!("the server ended the session: {reason:?}");
                }
                return Ok(());
            }
            Outcome::Lost(e) if is_transient(&e) && attempts > 0 => {
                log::warn!("Link lost: {}", async_rdp::report(&e));
                if !reconnect_or_close(viewer, target, &config, &mut session, attempts).await? {
                    return Ok(());
                }
            }
            Outcome::Lost(e) => return Err(format!("the session failed: {}", async_rdp::report(&e)).into()),
        }
    }
}

/// Replaces `session` with a new connection; `false` if the user closed the window meanwhile.
async fn reconnect_or_close(
    viewer: &mut Viewer<'_>,
    target: &Target,
    config: &ClientConfig,
    session: &mut ClientSession,
    attempts: u32,
) -> Result<bool, Failure> {
    match reconnect(viewer, target, config, session, attempts).await? {
        Some(again) => {
            *session = again;
            announce(viewer, session, "reconnected");
            Ok(true)
        }
        None => {
            say("closed");
            Ok(false)
        }
    }
}

/// Tries again with backoff, presenting the lost session's auto-reconnect cookie so that the
/// server can hand back the same desktop. `None` if the user closed the window meanwhile.
async fn reconnect(
    viewer: &mut Viewer<'_>,
    target: &Target,
    config: &ClientConfig,
    lost: &ClientSession,
    attempts: u32,
) -> Result<Option<ClientSession>, Failure> {
    // The window may have changed size since: ask for the desktop it shows now.
    let (width, height) = viewer.screen.window().size();
    let config = config
        .clone()
        .with_desktop_size(size16(width), size16(height))
        .with_auto_reconnect_cookie(lost.auto_reconnect_cookie().cloned());
    let backoff = Backoff::default();
    let mut last = None;
    for attempt in 1..=attempts {
        say(&format!("reconnecting {attempt}"));
        viewer.set_state(&format!("reconnecting ({attempt}/{attempts})"));
        let wait = backoff.delay(attempt + 1).min(Duration::from_secs(30));
        if viewer.while_waiting(async_rdp::net::sleep(wait)).await.is_none() {
            return Ok(None);
        }
        match viewer.while_waiting(connect(target, config.clone())).await {
            None => return Ok(None),
            Some(Ok(session)) => return Ok(Some(session)),
            Some(Err(e)) if is_transient(&e) => {
                log::warn!("Reconnection attempt {attempt} failed: {}", async_rdp::report(&e));
                last = Some(e);
            }
            Some(Err(e)) => return Err(refused(&e)),
        }
    }
    viewer.set_state("disconnected");
    Err(format!(
        "the link dropped and {attempts} attempts to reconnect failed{}",
        last.map(|e| format!(": {}", async_rdp::report(&e))).unwrap_or_default()
    )
    .into())
}

fn announce(viewer: &mut Viewer<'_>, session: &ClientSession, what: &str) {
    let fb = session.framebuffer();
    viewer.set_state("");
    say(&format!("{what} {}x{}", fb.width, fb.height));
    viewer.screen.redraw();
}

/// Why a connection failed, with both fingerprints when a certificate was refused (also shown
/// in a message box: the user may have started the viewer from a menu, with no terminal).
/// Printed on stderr before the box opens, so that a script sees it even if nobody closes it.
fn refused(error: &async_rdp::Error) -> Failure {
    let message = async_rdp_cli::explain(error);
    eprintln!("error: {message}");
    prompt::show_error("Connection failed — async-rdp", &message);
    Failure::Reported
}

#[cfg(feature = "audio")]
fn open_audio(device: &str) -> Option<async_rdp::channels::AlsaSink> {
    if device == "none" {
        return None;
    }
    match async_rdp::channels::AlsaSink::open(device) {
        Ok(sink) => Some(sink),
        Err(e) => {
            log::warn!("No sound: ALSA device {device}: {e}");
            None
        }
    }
}

fn displays(video: &sdl2::VideoSubsystem) -> Result<Vec<sdl2::rect::Rect>, String> {
    (0..video.num_video_displays()?)
        .map(|i| video.display_bounds(i))
        .collect()
}

fn bounding(rects: &[sdl2::rect::Rect]) -> sdl2::rect::Rect {
    rects.iter().skip(1).fold(rects[0], |all, r| all.union(*r))
}

fn size16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text.split_once('x').ok_or("expected WIDTHxHEIGHT, e.g. 1280x720")?;
    let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|v| (200..=8192).contains(v));
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("{text}: each side must be 200..=8192")),
    }
}

fn parse_layout(text: &str) -> Result<u32, String> {
    keymap::layout_id(text).ok_or_else(|| format!("{text}: not a layout name or id (see --help)"))
}
