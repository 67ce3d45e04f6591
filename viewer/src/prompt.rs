//! Questions and bad news for the user, in the window and in message boxes: the password when
//! there is no terminal to ask on, whether to trust a server seen for the first time, and why a
//! connection was refused.

use std::sync::Arc;

use async_rdp::trust::{AskFn, FirstContact};
use async_rdp::Secret;
use async_rdp_cli::CliError;
use sdl2::event::Event;
use sdl2::keyboard::Keycode;
use sdl2::messagebox::{show_message_box, show_simple_message_box, ButtonData, MessageBoxButtonFlag, MessageBoxFlag};
use sdl2::pixels::Color;
use sdl2::rect::Rect;
use sdl2::EventPump;

use crate::screen::Screen;

/// The title the first-contact question carries (tests look for it).
pub const FIRST_CONTACT_TITLE: &str = "Unknown server — async-rdp";

/// Asks, in a message box, whether to trust a server never seen before. Enter trusts,
/// Escape refuses; with no window system to ask on, it refuses.
pub fn ask_in_window() -> AskFn {
    Arc::new(|contact: &FirstContact| {
        let message = format!(
            "{} is not in your known hosts{}.\n\nIts certificate's SHA-256 fingerprint:\n{}\n\n\
             Compare it with the one your administrator gave you. Trust it, the server is \
             remembered; if it ever changes, the connection is refused.",
            contact.host,
            if contact.redirected {
                " (reached through a redirection)"
            } else {
                ""
            },
            contact.fingerprint,
        );
        let buttons = [
            ButtonData {
                flags: MessageBoxButtonFlag::ESCAPEKEY_DEFAULT,
                button_id: 0,
                text: "Refuse",
            },
            ButtonData {
                flags: MessageBoxButtonFlag::RETURNKEY_DEFAULT,
                button_id: 1,
                text: "Trust",
            },
        ];
        match show_message_box(
            MessageBoxFlag::WARNING,
            &buttons,
            FIRST_CONTACT_TITLE,
            &message,
            None,
            None,
        ) {
            Ok(sdl2::messagebox::ClickedButton::CustomButton(button)) => button.button_id == 1,
            Ok(sdl2::messagebox::ClickedButton::CloseButton) => false,
            Err(e) => {
                log::warn!("Cannot ask about {} ({e}); refusing", contact.host);
                false
            }
        }
    })
}

/// What the window's title starts with while it asks for the password (tests look for it).
pub const PASSWORD_TITLE: &str = "Password for";

/// Asks for the password of `who` in the viewer's own window, for a viewer started with no
/// terminal (from a menu, say): the title says what is asked, the window shows a field with a
/// dot per character typed; Enter connects, Escape or closing the window gives up. SDL2 has no
/// text-entry dialog and the viewer draws no text, hence the title.
pub fn password_in_window(
    screen: &mut Screen<'_>,
    events: &mut EventPump,
    video: &sdl2::VideoSubsystem,
    who: &str,
) -> Result<Secret, CliError> {
    let fail = |why: String| CliError::new(format!("no password for {who}: {why}"));
    let window = screen.window_mut();
    let before = window.title().to_owned();
    let title = format!("{PASSWORD_TITLE} {who} — type it, then Enter (Escape gives up) — async-rdp");
    window.set_title(&title).map_err(|e| fail(e.to_string()))?;
    window.raise();
    video.text_input().start();
    // Room for any password up front: growing would leave copies of it in freed memory.
    // (SDL's own text events are copies we cannot wipe.)
    let mut typed = String::with_capacity(MAX_PASSWORD);
    let answer = loop {
        draw_password_field(screen, events, typed.chars().count());
        match events.wait_event() {
            Event::TextInput { text, .. } if typed.len() + text.len() <= MAX_PASSWORD => typed.push_str(&text),
            Event::KeyDown {
                keycode: Some(Keycode::Backspace),
                ..
            } => {
                typed.pop();
            }
            Event::KeyDown {
                keycode: Some(Keycode::Return | Keycode::KpEnter),
                ..
            } => break Ok(()),
            Event::KeyDown {
                keycode: Some(Keycode::Escape),
                ..
            }
            | Event::Quit { .. } => break Err(fail("the password prompt was closed".to_owned())),
            _ => {}
        }
    };
    // A `Secret` wipes its whole buffer when dropped, on either outcome.
    let password = Secret::new(typed);
    let _ = screen.window_mut().set_title(&before);
    answer.map(|()| password)
}

/// The longest password the window takes, in bytes (what is typed past it is ignored).
const MAX_PASSWORD: usize = 1024;

/// A light field on a dark window, with a dot per character typed.
fn draw_password_field(screen: &mut Screen<'_>, events: &EventPump, typed: usize) {
    const DARK: Color = Color::RGB(0x20, 0x24, 0x2a);
    let (width, height) = screen.window_pixels();
    let field = Rect::new(
        i32::try_from(width / 8).unwrap_or(0),
        i32::try_from(height / 2).unwrap_or(0) - 20,
        (width * 3 / 4).max(40),
        40,
    );
    let fits = usize::try_from(field.width().saturating_sub(24) / 16).unwrap_or(0);
    let mut rects = vec![(field, Color::RGB(0xf0, 0xf0, 0xf0))];
    rects.extend((0..typed.min(fits)).map(|i| {
        let x = field.x() + 12 + 16 * i32::try_from(i).unwrap_or(0);
        (Rect::new(x, field.y() + 16, 8, 8), DARK)
    }));
    if let Err(e) = screen.paint(events, DARK, &rects) {
        log::debug!("Could not draw the password field ({e})");
    }
}

/// Shows why the viewer stops (besides printing it on stderr).
pub fn show_error(title: &str, message: &str) {
    if let Err(e) = while_modal(|| show_simple_message_box(MessageBoxFlag::ERROR, title, message, None)) {
        log::debug!("No message box ({e})");
    }
}

/// Runs a modal message box with SIGTERM's default action (ending the process) in force. SDL's
/// own handler only queues a quit event, which nobody reads while the box waits for a click:
/// without this, `kill` could not end a viewer left with a box open on a screen nobody sees.
fn while_modal<T>(show: impl FnOnce() -> T) -> T {
    // SAFETY: `signal` only swaps the process's SIGTERM disposition: SIG_DFL here, and back to
    // whatever `signal` returned (SDL's handler, a valid disposition) afterwards. No Rust
    // state is touched by either disposition, and this thread is the only one.
    let previous = unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    let output = show();
    if previous != libc::SIG_ERR {
        // SAFETY: as above; `previous` came from `signal` itself.
        unsafe { libc::signal(libc::SIGTERM, previous) };
    }
    output
}
