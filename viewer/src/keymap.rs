//! Physical keys: SDL's scancodes (USB HID usages) to the PC/AT set-1 scan codes RDP sends, so
//! that the server's keyboard layout, not ours, decides which character a key makes.

use async_rdp::Scancode as Rdp;
use sdl2::keyboard::Scancode as Sdl;

/// What a physical key sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// One scan code, pressed and released as the key is.
    Code(Rdp),
    /// Pause: `E1 1D 45` on press, nothing on release (the key has no break code).
    Pause,
}

/// The RDP key for an SDL scancode; `None` for keys with no set-1 code (their text, if any,
/// goes as Unicode instead).
pub fn key(sdl: Sdl) -> Option<Key> {
    if sdl == Sdl::Pause {
        return Some(Key::Pause);
    }
    if let Some(code) = main_block(sdl) {
        return Some(Key::Code(Rdp::new(code)));
    }
    extended(sdl).map(|code| Key::Code(Rdp::extended(code)))
}

/// Keys without a prefix: the typewriter block, F-keys, the numeric keypad, locks.
fn main_block(sdl: Sdl) -> Option<u8> {
    use Sdl::*;
    // Letters are scattered in set 1 (it follows the rows of an IBM keyboard).
    let letters = [
        (A, 0x1E),
        (B, 0x30),
        (C, 0x2E),
        (D, 0x20),
        (E, 0x12),
        (F, 0x21),
        (G, 0x22),
        (H, 0x23),
        (I, 0x17),
        (J, 0x24),
        (K, 0x25),
        (L, 0x26),
        (M, 0x32),
        (N, 0x31),
        (O, 0x18),
        (P, 0x19),
        (Q, 0x10),
        (R, 0x13),
        (S, 0x1F),
        (T, 0x14),
        (U, 0x16),
        (V, 0x2F),
        (W, 0x11),
        (X, 0x2D),
        (Y, 0x15),
        (Z, 0x2C),
    ];
    if let Some(&(_, code)) = letters.iter().find(|(key, _)| *key == sdl) {
        return Some(code);
    }
    Some(match sdl {
        Escape => 0x01,
        Num1 => 0x02,
        Num2 => 0x03,
        Num3 => 0x04,
        Num4 => 0x05,
        Num5 => 0x06,
        Num6 => 0x07,
        Num7 => 0x08,
        Num8 => 0x09,
        Num9 => 0x0A,
        Num0 => 0x0B,
        Minus => 0x0C,
        Equals => 0x0D,
        Backspace => 0x0E,
        Tab => 0x0F,
        LeftBracket => 0x1A,
        RightBracket => 0x1B,
        Return => 0x1C,
        LCtrl => 0x1D,
        Semicolon => 0x27,
        Apostrophe => 0x28,
        Grave => 0x29,
        LShift => 0x2A,
        // The ISO key left of Return shares the ANSI backslash's code.
        Backslash | NonUsHash => 0x2B,
        Comma => 0x33,
        Period => 0x34,
        Slash => 0x35,
        RShift => 0x36,
        KpMultiply => 0x37,
        LAlt => 0x38,
        Space => 0x39,
        CapsLock => 0x3A,
        F1 => 0x3B,
        F2 => 0x3C,
        F3 => 0x3D,
        F4 => 0x3E,
        F5 => 0x3F,
        F6 => 0x40,
        F7 => 0x41,
        F8 => 0x42,
        F9 => 0x43,
        F10 => 0x44,
        NumLockClear => 0x45,
        ScrollLock => 0x46,
        Kp7 => 0x47,
        Kp8 => 0x48,
        Kp9 => 0x49,
        KpMinus => 0x4A,
        Kp4 => 0x4B,
        Kp5 => 0x4C,
        Kp6 => 0x4D,
        KpPlus => 0x4E,
        Kp1 => 0x4F,
        Kp2 => 0x50,
        Kp3 => 0x51,
        Kp0 => 0x52,
        KpPeriod => 0x53,
        // The ISO key between left Shift and Z (< > on German keyboards).
        NonUsBackslash => 0x56,
        F11 => 0x57,
        F12 => 0x58,
        KpEquals => 0x59,
        F13 => 0x64,
        F14 => 0x65,
        F15 => 0x66,
        F16 => 0x67,
        F17 => 0x68,
        F18 => 0x69,
        F19 => 0x6A,
        F20 => 0x6B,
        F21 => 0x6C,
        F22 => 0x6D,
        F23 => 0x6E,
        F24 => 0x76,
        // Japanese and Brazilian keys.
        International1 => 0x73,
        International2 => 0x70,
        International3 => 0x7D,
        International4 => 0x79,
        International5 => 0x7B,
        KpComma => 0x7E,
        _ => return None,
    })
}

/// E0-prefixed keys: the navigation block, right-hand modifiers, Windows keys, media keys.
fn extended(sdl: Sdl) -> Option<u8> {
    use Sdl::*;
    Some(match sdl {
        KpEnter => 0x1C,
        RCtrl => 0x1D,
        KpDivide => 0x35,
        PrintScreen => 0x37,
        RAlt => 0x38,
        Home => 0x47,
        Up => 0x48,
        PageUp => 0x49,
        Left => 0x4B,
        Right => 0x4D,
        End => 0x4F,
        Down => 0x50,
        PageDown => 0x51,
        Insert => 0x52,
        Delete => 0x53,
        LGui => 0x5B,
        RGui => 0x5C,
        Application => 0x5D,
        Power => 0x5E,
        Sleep => 0x5F,
        AudioNext => 0x19,
        AudioPrev => 0x10,
        AudioStop => 0x24,
        AudioPlay => 0x22,
        AudioMute | Mute => 0x20,
        VolumeDown => 0x2E,
        VolumeUp => 0x30,
        AcHome => 0x32,
        AcSearch => 0x65,
        AcBookmarks => 0x66,
        AcRefresh => 0x67,
        AcStop => 0x68,
        AcForward => 0x69,
        AcBack => 0x6A,
        Computer => 0x6B,
        Mail => 0x6C,
        MediaSelect => 0x6D,
        Calculator => 0x21,
        _ => return None,
    })
}

/// Windows keyboard layout ids (KLIDs) for the names `--keyboard-layout` accepts.
pub fn layout_id(name: &str) -> Option<u32> {
    let name = name.trim().to_ascii_lowercase();
    if let Some(hex) = name.strip_prefix("0x") {
        return u32::from_str_radix(hex, 16).ok();
    }
    Some(match name.as_str() {
        "us" => 0x0409,
        "de" => 0x0407,
        "fr" => 0x040C,
        "gb" | "uk" => 0x0809,
        "es" => 0x040A,
        "it" => 0x0410,
        "ch" => 0x0807,
        "se" => 0x041D,
        "no" => 0x0414,
        "dk" => 0x0406,
        "fi" => 0x040B,
        "nl" => 0x0413,
        "be" => 0x080C,
        "pt" => 0x0816,
        "br" => 0x0416,
        "pl" => 0x0415,
        "cz" => 0x0405,
        "hu" => 0x040E,
        "ru" => 0x0419,
        "jp" => 0x0411,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_their_set_one_codes() {
        assert_eq!(key(Sdl::A), Some(Key::Code(Rdp::new(0x1E))));
        assert_eq!(key(Sdl::Z), Some(Key::Code(Rdp::new(0x2C))));
        assert_eq!(key(Sdl::Return), Some(Key::Code(Rdp::new(0x1C))));
        assert_eq!(key(Sdl::KpEnter), Some(Key::Code(Rdp::extended(0x1C))));
        assert_eq!(key(Sdl::RAlt), Some(Key::Code(Rdp::extended(0x38))));
        assert_eq!(key(Sdl::PrintScreen), Some(Key::Code(Rdp::extended(0x37))));
        assert_eq!(key(Sdl::LGui), Some(Key::Code(Rdp::extended(0x5B))));
        assert_eq!(key(Sdl::NonUsBackslash), Some(Key::Code(Rdp::new(0x56))));
        assert_eq!(key(Sdl::Pause), Some(Key::Pause));
        assert_eq!(key(Sdl::AcBack), Some(Key::Code(Rdp::extended(0x6A))));
    }

    #[test]
    fn no_two_keys_share_a_code() {
        let mut seen = std::collections::HashMap::new();
        for raw in 0..512 {
            let Some(sdl) = Sdl::from_i32(raw) else { continue };
            if let Some(Key::Code(code)) = key(sdl) {
                // The ISO hash key and the ANSI backslash are one physical position.
                if sdl == Sdl::NonUsHash || sdl == Sdl::Mute {
                    continue;
                }
                if let Some(other) = seen.insert(code, sdl) {
                    panic!("{sdl:?} and {other:?} both send {code:?}");
                }
            }
        }
        assert!(seen.len() > 100, "only {} keys mapped", seen.len());
    }

    #[test]
    fn layouts_by_name_or_id() {
        assert_eq!(layout_id("de"), Some(0x407));
        assert_eq!(layout_id("0x40C"), Some(0x40C));
        assert_eq!(layout_id("klingon"), None);
    }
}
