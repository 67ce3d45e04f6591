//! The user's keyboard and mouse, from SDL's events to the session's input calls: physical
//! keys by scan code, Unicode for keys the table does not know, the release chord.

use std::str::FromStr;

use async_rdp::{ButtonState, ClientSession, KeyState, MouseButton, Scancode};
use sdl2::keyboard::{Mod, Scancode as SdlScancode};
use sdl2::mouse::{MouseButton as SdlButton, MouseWheelDirection};

use crate::keymap::{self, Key};

/// One wheel notch, as Windows counts it.
const NOTCH: i32 = 120;

/// Keyboard state between events: whether the text SDL reports next was typed by a key that
/// already went to the server as a scan code (the server's layout turns it into text), or by
/// something we could not name as a key — a key with no set-1 code, or a character that an
/// input method or a tool like xdotool injects with no key event at all — which goes as
/// Unicode instead.
#[derive(Default)]
pub struct Keyboard {
    text_key_down: bool,
}

impl Keyboard {
    /// A key went down (or repeats).
    pub fn key_down(&mut self, session: &mut ClientSession, scancode: Option<SdlScancode>) -> async_rdp::Result<()> {
        match scancode.and_then(keymap::key) {
            Some(Key::Code(code)) => {
                // Modifiers type nothing themselves: the text after Shift comes from the next key.
                self.text_key_down = !scancode.is_some_and(is_modifier);
                session.key(code, KeyState::Down)
            }
            Some(Key::Pause) => {
                // Pause has no break code of its own: the whole make-and-break goes on press.
                let (ctrl, numlock) = (Scancode::extended1(0x1D), Scancode::new(0x45));
                session.key(ctrl, KeyState::Down)?;
                session.key(numlock, KeyState::Down)?;
                session.key(ctrl, KeyState::Up)?;
                session.key(numlock, KeyState::Up)
            }
            None => {
                self.text_key_down = false;
                Ok(())
            }
        }
    }

    /// A key came up.
    pub fn key_up(&mut self, session: &mut ClientSession, scancode: Option<SdlScancode>) -> async_rdp::Result<()> {
        self.text_key_down = false;
        match scancode.and_then(keymap::key) {
            Some(Key::Code(code)) => session.key(code, KeyState::Up),
            _ => Ok(()),
        }
    }

    /// Text typed; sent as Unicode only when no key we sent typed it.
    pub fn text(&mut self, session: &mut ClientSession, text: &str) -> async_rdp::Result<()> {
        if std::mem::take(&mut self.text_key_down) {
            return Ok(());
        }
        for ch in text.chars() {
            session.key_unicode(ch, KeyState::Down)?;
            session.key_unicode(ch, KeyState::Up)?;
        }
        Ok(())
    }
}

fn is_modifier(key: SdlScancode) -> bool {
    use SdlScancode::*;
    matches!(
        key,
        LShift | RShift | LCtrl | RCtrl | LAlt | RAlt | LGui | RGui | CapsLock | NumLockClear | ScrollLock | Mode
    )
}

/// A mouse button, if RDP has it.
pub fn button(button: SdlButton) -> Option<MouseButton> {
    Some(match button {
        SdlButton::Left => MouseButton::Left,
        SdlButton::Middle => MouseButton::Middle,
        SdlButton::Right => MouseButton::Right,
        SdlButton::X1 => MouseButton::X1,
        SdlButton::X2 => MouseButton::X2,
        _ => return None,
    })
}

/// Sends a button press or release.
pub fn mouse_button(session: &mut ClientSession, sdl: SdlButton, down: bool) -> async_rdp::Result<()> {
    let Some(button) = button(sdl) else { return Ok(()) };
    let state = if down { ButtonState::Down } else { ButtonState::Up };
    session.mouse_button(button, state)
}

/// Sends wheel turns: `x`/`y` in notches as SDL reports them (y > 0 away from the user).
pub fn wheel(session: &mut ClientSession, x: i32, y: i32, direction: MouseWheelDirection) -> async_rdp::Result<()> {
    let sign = if direction == MouseWheelDirection::Flipped {
        -1
    } else {
        1
    };
    let delta = |notches: i32| i16::try_from((notches * sign * NOTCH).clamp(-255, 255)).unwrap_or(0);
    if y != 0 {
        session.mouse_wheel(delta(y))?;
    }
    if x != 0 {
        session.mouse_hwheel(delta(x))?;
    }
    Ok(())
}

/// A key chord such as `ctrl+alt+enter`: modifiers, then one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chord {
    ctrl: bool,
    alt: bool,
    shift: bool,
    gui: bool,
    key: SdlScancode,
}

impl Chord {
    /// Whether pressing `key` with `mods` held is this chord.
    pub fn matches(&self, key: SdlScancode, mods: Mod) -> bool {
        let held = |a: Mod, b: Mod| mods.intersects(a | b);
        key == self.key
            && self.ctrl == held(Mod::LCTRLMOD, Mod::RCTRLMOD)
            && self.alt == held(Mod::LALTMOD, Mod::RALTMOD)
            && self.shift == held(Mod::LSHIFTMOD, Mod::RSHIFTMOD)
            && self.gui == held(Mod::LGUIMOD, Mod::RGUIMOD)
    }
}

impl FromStr for Chord {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut chord = Chord {
            ctrl: false,
            alt: false,
            shift: false,
            gui: false,
            key: SdlScancode::Return,
        };
        let mut key = None;
        for part in text.split('+').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => chord.ctrl = true,
                "alt" => chord.alt = true,
                "shift" => chord.shift = true,
                "super" | "win" | "gui" | "meta" => chord.gui = true,
                "enter" => key = Some(SdlScancode::Return),
                name => {
                    key = Some(
                        SdlScancode::from_name(name)
                            .ok_or_else(|| format!("`{part}` is not a key name (try e.g. ctrl+alt+enter)"))?,
                    )
                }
            }
        }
        chord.key = key.ok_or_else(|| format!("`{text}` names no key, only modifiers"))?;
        if !(chord.ctrl || chord.alt || chord.gui) {
            return Err(format!(
                "`{text}` needs Ctrl, Alt or Super, or it would steal a key from the remote desktop"
            ));
        }
        Ok(chord)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chords_parse_and_match() {
        let chord: Chord = "ctrl+alt+enter".parse().unwrap();
        assert!(chord.matches(SdlScancode::Return, Mod::LCTRLMOD | Mod::RALTMOD));
        assert!(!chord.matches(SdlScancode::Return, Mod::LCTRLMOD));
        assert!(!chord.matches(SdlScancode::Return, Mod::LCTRLMOD | Mod::LALTMOD | Mod::LSHIFTMOD));
        let f12: Chord = "Ctrl+F12".parse().unwrap();
        assert!(f12.matches(SdlScancode::F12, Mod::RCTRLMOD));
        assert!(
            "f12".parse::<Chord>().is_err(),
            "a bare key would be stolen from the remote"
        );
        assert!("ctrl+nosuchkey".parse::<Chord>().is_err());
    }
}
