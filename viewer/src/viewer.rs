//! The one loop: the window's events, the session's events and drawing, taken in turn on one
//! thread, which sleeps in the session's `epoll` until the server, the window system or a
//! deadline has something.

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use async_rdp::runtime::WatchedFd;
use async_rdp::{ClientSession, DisconnectReason, Event};
use futures::FutureExt as _;
use sdl2::event::{Event as SdlEvent, WindowEvent};
use sdl2::video::FullscreenType;
use sdl2::EventPump;

use crate::clipboard::SharedClipboard;
use crate::cursor::Pointer;
use crate::input::{self, Chord, Keyboard};
use crate::screen::Screen;
use crate::wake;

/// Window size changes are sent to the server this long after the last one: dragging a window
/// edge makes dozens, and servers redraw (xrdp even restarts) on each.
const RESIZE_SETTLE: Duration = Duration::from_millis(300);
/// At most one picture per this long: more would be invisible and cost CPU.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// A frame the server has not finished is not shown (no torn pictures) — unless it takes
/// longer than this.
const HALF_FRAME_PATIENCE: Duration = Duration::from_millis(100);
/// Server events handled per wake-up before the window gets its turn again.
const EVENT_BATCH: usize = 256;

/// Why a session's loop returned.
pub enum Outcome {
    /// The user closed the window.
    Quit,
    /// The server ended the session.
    Ended(DisconnectReason),
    /// The link failed.
    Lost(async_rdp::Error),
}

/// The window and everything drawn or typed in it.
pub struct Viewer<'tc> {
    pub screen: Screen<'tc>,
    pub events: EventPump,
    pub watch: Option<WatchedFd>,
    pub pointer: Pointer,
    pub keyboard: Keyboard,
    pub clipboard: Option<SharedClipboard>,
    pub chord: Chord,
    pub host: String,
    #[cfg(feature = "audio")]
    pub audio: Option<async_rdp::channels::AlsaSink>,
    resize_due: Option<((u32, u32), Instant)>,
    last_present: Instant,
    quit: bool,
}

impl<'tc> Viewer<'tc> {
    pub fn new(screen: Screen<'tc>, events: EventPump, pointer: Pointer, chord: Chord, host: String) -> Self {
        let watch = wake::watch(screen.window());
        if watch.is_none() {
            log::info!(
                "The window system gives no descriptor to wait on; looking every {:?}",
                wake::FALLBACK
            );
        }
        Self {
            screen,
            events,
            watch,
            pointer,
            keyboard: Keyboard::default(),
            clipboard: None,
            chord,
            host,
            #[cfg(feature = "audio")]
            audio: None,
            resize_due: None,
            last_present: Instant::now(),
            quit: false,
        }
    }

    /// Puts `state` in the window's title.
    pub fn set_state(&mut self, state: &str) {
        let title = if state.is_empty() {
            format!("{} — async-rdp", self.host)
        } else {
            format!("{} — {state} — async-rdp", self.host)
        };
        if let Err(e) = self.screen.window_mut().set_title(&title) {
            log::debug!("Title not set: {e}");
        }
    }

    /// Runs `future` while keeping the window alive (redrawn, closable). `None` if the user
    /// closed the window first.
    pub async fn while_waiting<F: Future>(&mut self, future: F) -> Option<F::Output> {
        let mut future = pin!(future.fuse());
        loop {
            self.pump(None);
            if self.quit {
                return None;
            }
            let wait = self.sleep_until(None);
            futures::select_biased! {
                output = future => return Some(output),
                () = wait.fuse() => {}
            }
        }
    }

    /// Shows the session until it ends or the window is closed.
    pub async fn run(&mut self, session: &mut ClientSession) -> Outcome {
        let fb = session.framebuffer();
        if let Err(e) = self.screen.resize(fb.width, fb.height) {
            return drawing_failed(e);
        }
        loop {
            self.draw_if_due(session);
            self.pump(Some(session));
            if self.quit {
                // A goodbye, bounded: a server that does not answer must not keep the window.
                if let Err(e) = session.shutdown(Duration::from_secs(2)).await {
                    log::info!("No goodbye from the server: {}", async_rdp::report(&e));
                }
                return Outcome::Quit;
            }
            self.send_resize_if_due(session);
            let next = {
                let wait = self.sleep_until(self.deadline(session));
                futures::select_biased! {
                    event = session.next_event().fuse() => Some(event),
                    () = wait.fuse() => None,
                }
            };
            let Some(first) = next else { continue };
            // More of what already arrived, without waiting, before the window's turn.
            let mut event = Some(first);
            for _ in 0..EVENT_BATCH {
                match event.take() {
                    Some(Ok(e)) => {
                        if let Some(outcome) = self.on_session_event(session, e) {
                            return outcome;
                        }
                    }
                    Some(Err(e)) => return Outcome::Lost(e),
                    None => break,
                }
                event = session.next_event().now_or_never();
            }
        }
    }

    /// Sleeps until the window system has something, or `deadline` (or the safety net).
    fn sleep_until(&self, deadline: Option<Instant>) -> impl Future<Output = ()> + '_ {
        let cap = if self.watch.is_some() {
            wake::SAFETY_NET
        } else {
            wake::FALLBACK
        };
        let now = Instant::now();
        let sleep = deadline.map_or(cap, |d| d.saturating_duration_since(now).min(cap));
        async move {
            let timer = async_rdp::net::sleep(sleep).fuse();
            match &self.watch {
                Some(watch) => {
                    let readable = watch.readable().fuse();
                    futures::pin_mut!(timer, readable);
                    futures::select_biased! {
                        r = readable => if let Err(e) = r { log::debug!("window system watch: {e}") },
                        () = timer => {}
                    }
                }
                None => timer.await,
            }
        }
    }

    /// The nearest thing to do without a wake-up: a resize to send, a picture to show.
    fn deadline(&self, session: &mut ClientSession) -> Option<Instant> {
        let resize = self.resize_due.map(|(_, due)| due);
        let draw = self.screen.is_damaged().then(|| {
            let wait = if session.frame_in_progress() {
                HALF_FRAME_PATIENCE
            } else {
                FRAME_INTERVAL
            };
            self.last_present + wait
        });
        // Queued audio is fed to the sink in slices (its buffer holds 200 ms): look again soon,
        // but only while there is some, so that a silent session still sleeps.
        #[cfg(feature = "audio")]
        let audio = (self.audio.is_some() && !session.audio().queued().is_zero())
            .then(|| Instant::now() + Duration::from_millis(50));
        #[cfg(not(feature = "audio"))]
        let audio = None;
        [resize, draw, audio].into_iter().flatten().min()
    }

    fn draw_if_due(&mut self, session: &ClientSession) {
        if !self.screen.is_damaged() {
            return;
        }
        let since = self.last_present.elapsed();
        let patience = if session.frame_in_progress() {
            HALF_FRAME_PATIENCE
        } else {
            FRAME_INTERVAL
        };
        if since < patience {
            return;
        }
        if let Err(e) = self.screen.draw(&self.events, &session.framebuffer()) {
            log::warn!("Drawing failed: {e}");
        }
        self.last_present = Instant::now();
    }

    fn send_resize_if_due(&mut self, session: &mut ClientSession) {
        let Some(((width, height), due)) = self.resize_due else {
            return;
        };
        if Instant::now() < due {
            return;
        }
        self.resize_due = None;
        if (width, height) == (u32::from(self.screen.size().0), u32::from(self.screen.size().1)) {
            return;
        }
        let mut display = session.display();
        if !display.is_ready() {
            log::info!("The server offers no display control: the desktop stays its size, scaled to the window");
            return;
        }
        match display.resize(width, height) {
            Ok((w, h)) => log::info!("Asked the server for a {w}x{h} desktop"),
            Err(e) => log::warn!("Resize not sent: {}", async_rdp::report(&e)),
        }
    }

    /// Handles one server event; `Some` when the session is over.
    fn on_session_event(&mut self, session: &mut ClientSession, event: Event) -> Option<Outcome> {
        match event {
            Event::Graphics(rect) => self.screen.damage(rect),
            Event::Resized { width, height } => {
                if let Err(e) = self.screen.resize(width, height) {
                    return Some(drawing_failed(e));
                }
                say(&format!("resized {width}x{height}"));
            }
            Event::Pointer(pointer) => self.pointer.apply(&pointer),
            Event::Disconnected(reason) => return Some(Outcome::Ended(reason)),
            Event::ClipboardChanged { formats } => {
                if let Some(clipboard) = &mut self.clipboard {
                    if let Err(e) = clipboard.remote_changed(session, &formats) {
                        log::warn!("Clipboard request failed: {}", async_rdp::report(&e));
                    }
                }
            }
            Event::ClipboardText(text) => {
                if let Some(len) = self.clipboard.as_mut().and_then(|c| c.remote_text(text.into_string())) {
                    say(&format!("clipboard remote->local {len} bytes"));
                }
            }
            Event::ClipboardError(why) => log::warn!("Clipboard: {why}"),
            #[cfg(feature = "audio")]
            Event::Audio(_) => self.play_audio(session),
            _ => {}
        }
        None
    }

    #[cfg(feature = "audio")]
    fn play_audio(&mut self, session: &mut ClientSession) {
        if let Some(sink) = &mut self.audio {
            if let Err(e) = session.audio().play_into(sink) {
                log::warn!("Audio output failed, audio off: {}", async_rdp::report(&e));
                self.audio = None;
            }
        }
    }

    /// Takes every event the window system has queued. Without a session, only closing,
    /// exposing and resizing are handled.
    fn pump(&mut self, mut session: Option<&mut ClientSession>) {
        #[cfg(feature = "audio")]
        if let Some(session) = session.as_deref_mut() {
            self.play_audio(session);
        }
        while let Some(event) = self.events.poll_event() {
            self.on_window_event(session.as_deref_mut(), event);
        }
    }

    fn on_window_event(&mut self, session: Option<&mut ClientSession>, event: SdlEvent) {
        match event {
            SdlEvent::Quit { .. } => self.quit = true,
            SdlEvent::Window { win_event, .. } => self.on_window_change(session, win_event),
            _ => {
                if let Some(session) = session {
                    if let Err(e) = self.on_input(session, event) {
                        // The session ended; its next event says how.
                        log::debug!("Input not sent: {}", async_rdp::report(&e));
                    }
                }
            }
        }
    }

    fn on_window_change(&mut self, session: Option<&mut ClientSession>, event: WindowEvent) {
        match event {
            WindowEvent::Exposed => self.screen.redraw(),
            WindowEvent::SizeChanged(w, h) => {
                let (w, h) = (u32::try_from(w).unwrap_or(0), u32::try_from(h).unwrap_or(0));
                self.resize_due = Some(((w, h), Instant::now() + RESIZE_SETTLE));
                // Scaled locally until the server answers.
                self.screen.redraw();
            }
            WindowEvent::FocusGained => {
                if let (Some(session), Some(clipboard)) = (session, &mut self.clipboard) {
                    share_local_clipboard(clipboard, session);
                }
            }
            WindowEvent::FocusLost => {
                // Keys held when focus left would stay down on the server forever.
                if let Some(session) = session {
                    if let Err(e) = session.release_all() {
                        log::debug!("Release not sent: {}", async_rdp::report(&e));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_input(&mut self, session: &mut ClientSession, event: SdlEvent) -> async_rdp::Result<()> {
        match event {
            SdlEvent::KeyDown { scancode, keymod, .. } => {
                if scancode.is_some_and(|key| self.chord.matches(key, keymod)) {
                    self.toggle_fullscreen();
                    return session.release_all();
                }
                self.keyboard.key_down(session, scancode)
            }
            SdlEvent::KeyUp { scancode, .. } => self.keyboard.key_up(session, scancode),
            SdlEvent::TextInput { text, .. } => self.keyboard.text(session, &text),
            SdlEvent::MouseMotion { x, y, .. } => self.move_to(session, x, y),
            SdlEvent::MouseButtonDown { mouse_btn, x, y, .. } => {
                self.move_to(session, x, y)?;
                input::mouse_button(session, mouse_btn, true)
            }
            SdlEvent::MouseButtonUp { mouse_btn, x, y, .. } => {
                self.move_to(session, x, y)?;
                input::mouse_button(session, mouse_btn, false)
            }
            SdlEvent::MouseWheel { x, y, direction, .. } => input::wheel(session, x, y, direction),
            SdlEvent::ClipboardUpdate { .. } => {
                if let Some(clipboard) = &mut self.clipboard {
                    share_local_clipboard(clipboard, session);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn move_to(&mut self, session: &mut ClientSession, x: i32, y: i32) -> async_rdp::Result<()> {
        self.screen.follow_pointer(x, y);
        let (x, y) = self.screen.to_remote(x, y);
        session.mouse_move(x, y)
    }

    /// The release chord: leaves fullscreen (and its keyboard grab), or goes back to it.
    fn toggle_fullscreen(&mut self) {
        let window = self.screen.window_mut();
        let leaving = window.fullscreen_state() != FullscreenType::Off;
        let target = if leaving {
            FullscreenType::Off
        } else {
            FullscreenType::Desktop
        };
        if let Err(e) = window.set_fullscreen(target) {
            log::warn!("Fullscreen not changed: {e}");
        }
        window.set_keyboard_grab(!leaving);
    }
}

/// The screen could not follow the session (a texture of the new size could not be made).
fn drawing_failed(why: String) -> Outcome {
    Outcome::Lost(async_rdp::Error::new(async_rdp::ErrorKind::Io, "viewer").with_detail(why))
}

fn share_local_clipboard(clipboard: &mut SharedClipboard, session: &mut ClientSession) {
    match clipboard.local_changed(session) {
        Ok(Some(len)) => say(&format!("clipboard local->remote {len} bytes")),
        Ok(None) => {}
        Err(e) => log::warn!("Clipboard not shared: {}", async_rdp::report(&e)),
    }
}

/// A line on stdout for scripts and tests (`connected 1280x720`, `resized …`, `closed`).
pub fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
