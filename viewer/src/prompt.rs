//! Questions and bad news for the user, in message boxes: whether to trust a server seen for
//! the first time, and why a connection was refused.

use std::sync::Arc;

use async_rdp::trust::{AskFn, FirstContact};
use sdl2::messagebox::{show_message_box, show_simple_message_box, ButtonData, MessageBoxButtonFlag, MessageBoxFlag};

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
