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
    let find = |table: &[(Sdl, u8)]| table.iter().find(|(key, _)| *key == sdl).map(|&(_, code)| code);
    if let Some(code) = find(MAIN_BLOCK) {
        return Some(Key::Code(Rdp::new(code)));
    }
    find(EXTENDED).map(|code| Key::Code(Rdp::extended(code)))
}

/// Keys without a prefix: the typewriter block (letters follow the rows of an IBM keyboard,
/// hence scattered), F-keys, the numeric keypad, locks. The ISO key left of Return
/// (NonUsHash) shares the ANSI backslash's code; NonUsBackslash is the ISO key between left
/// Shift and Z (`< >` on German keyboards); International1-5 are Japanese and Brazilian keys.
const MAIN_BLOCK: &[(Sdl, u8)] = &[
    (Sdl::A, 0x1E),
    (Sdl::B, 0x30),
    (Sdl::C, 0x2E),
    (Sdl::D, 0x20),
    (Sdl::E, 0x12),
    (Sdl::F, 0x21),
    (Sdl::G, 0x22),
    (Sdl::H, 0x23),
    (Sdl::I, 0x17),
    (Sdl::J, 0x24),
    (Sdl::K, 0x25),
    (Sdl::L, 0x26),
    (Sdl::M, 0x32),
    (Sdl::N, 0x31),
    (Sdl::O, 0x18),
    (Sdl::P, 0x19),
    (Sdl::Q, 0x10),
    (Sdl::R, 0x13),
    (Sdl::S, 0x1F),
    (Sdl::T, 0x14),
    (Sdl::U, 0x16),
    (Sdl::V, 0x2F),
    (Sdl::W, 0x11),
    (Sdl::X, 0x2D),
    (Sdl::Y, 0x15),
    (Sdl::Z, 0x2C),
    (Sdl::Escape, 0x01),
    (Sdl::Num1, 0x02),
    (Sdl::Num2, 0x03),
    (Sdl::Num3, 0x04),
    (Sdl::Num4, 0x05),
    (Sdl::Num5, 0x06),
    (Sdl::Num6, 0x07),
    (Sdl::Num7, 0x08),
    (Sdl::Num8, 0x09),
    (Sdl::Num9, 0x0A),
    (Sdl::Num0, 0x0B),
    (Sdl::Minus, 0x0C),
    (Sdl::Equals, 0x0D),
    (Sdl::Backspace, 0x0E),
    (Sdl::Tab, 0x0F),
    (Sdl::LeftBracket, 0x1A),
    (Sdl::RightBracket, 0x1B),
    (Sdl::Return, 0x1C),
    (Sdl::LCtrl, 0x1D),
    (Sdl::Semicolon, 0x27),
    (Sdl::Apostrophe, 0x28),
    (Sdl::Grave, 0x29),
    (Sdl::LShift, 0x2A),
    (Sdl::Backslash, 0x2B),
    (Sdl::NonUsHash, 0x2B),
    (Sdl::Comma, 0x33),
    (Sdl::Period, 0x34),
    (Sdl::Slash, 0x35),
    (Sdl::RShift, 0x36),
    (Sdl::KpMultiply, 0x37),
    (Sdl::LAlt, 0x38),
    (Sdl::Space, 0x39),
    (Sdl::CapsLock, 0x3A),
    (Sdl::F1, 0x3B),
    (Sdl::F2, 0x3C),
    (Sdl::F3, 0x3D),
    (Sdl::F4, 0x3E),
    (Sdl::F5, 0x3F),
    (Sdl::F6, 0x40),
    (Sdl::F7, 0x41),
    (Sdl::F8, 0x42),
    (Sdl::F9, 0x43),
    (Sdl::F10, 0x44),
    (Sdl::NumLockClear, 0x45),
    (Sdl::ScrollLock, 0x46),
    (Sdl::Kp7, 0x47),
    (Sdl::Kp8, 0x48),
    (Sdl::Kp9, 0x49),
    (Sdl::KpMinus, 0x4A),
    (Sdl::Kp4, 0x4B),
    (Sdl::Kp5, 0x4C),
    (Sdl::Kp6, 0x4D),
    (Sdl::KpPlus, 0x4E),
    (Sdl::Kp1, 0x4F),
    (Sdl::Kp2, 0x50),
    (Sdl::Kp3, 0x51),
    (Sdl::Kp0, 0x52),
    (Sdl::KpPeriod, 0x53),
    (Sdl::NonUsBackslash, 0x56),
    (Sdl::F11, 0x57),
    (Sdl::F12, 0x58),
    (Sdl::KpEquals, 0x59),
    (Sdl::F13, 0x64),
    (Sdl::F14, 0x65),
    (Sdl::F15, 0x66),
    (Sdl::F16, 0x67),
    (Sdl::F17, 0x68),
    (Sdl::F18, 0x69),
    (Sdl::F19, 0x6A),
    (Sdl::F20, 0x6B),
    (Sdl::F21, 0x6C),
    (Sdl::F22, 0x6D),
    (Sdl::F23, 0x6E),
    (Sdl::F24, 0x76),
    (Sdl::International1, 0x73),
    (Sdl::International2, 0x70),
    (Sdl::International3, 0x7D),
    (Sdl::International4, 0x79),
    (Sdl::International5, 0x7B),
    (Sdl::KpComma, 0x7E),
];

/// E0-prefixed keys: the navigation block, right-hand modifiers, Windows keys, media keys.
const EXTENDED: &[(Sdl, u8)] = &[
    (Sdl::KpEnter, 0x1C),
    (Sdl::RCtrl, 0x1D),
    (Sdl::KpDivide, 0x35),
    (Sdl::PrintScreen, 0x37),
    (Sdl::RAlt, 0x38),
    (Sdl::Home, 0x47),
    (Sdl::Up, 0x48),
    (Sdl::PageUp, 0x49),
    (Sdl::Left, 0x4B),
    (Sdl::Right, 0x4D),
    (Sdl::End, 0x4F),
    (Sdl::Down, 0x50),
    (Sdl::PageDown, 0x51),
    (Sdl::Insert, 0x52),
    (Sdl::Delete, 0x53),
    (Sdl::LGui, 0x5B),
    (Sdl::RGui, 0x5C),
    (Sdl::Application, 0x5D),
    (Sdl::Power, 0x5E),
    (Sdl::Sleep, 0x5F),
    (Sdl::AudioNext, 0x19),
    (Sdl::AudioPrev, 0x10),
    (Sdl::AudioStop, 0x24),
    (Sdl::AudioPlay, 0x22),
    (Sdl::AudioMute, 0x20),
    (Sdl::Mute, 0x20),
    (Sdl::VolumeDown, 0x2E),
    (Sdl::VolumeUp, 0x30),
    (Sdl::AcHome, 0x32),
    (Sdl::AcSearch, 0x65),
    (Sdl::AcBookmarks, 0x66),
    (Sdl::AcRefresh, 0x67),
    (Sdl::AcStop, 0x68),
    (Sdl::AcForward, 0x69),
    (Sdl::AcBack, 0x6A),
    (Sdl::Computer, 0x6B),
    (Sdl::Mail, 0x6C),
    (Sdl::MediaSelect, 0x6D),
    (Sdl::Calculator, 0x21),
];

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
        // Two SDL names for one physical key each: the ISO hash key is the ANSI backslash's
        // position, and SDL reports the mute key under two names.
        let aliases = [Sdl::NonUsHash, Sdl::Mute];
        for (table, extended) in [(MAIN_BLOCK, false), (EXTENDED, true)] {
            let mut seen = std::collections::HashMap::new();
            for &(sdl, code) in table.iter().filter(|(sdl, _)| !aliases.contains(sdl)) {
                if let Some(other) = seen.insert(code, sdl) {
                    panic!("{sdl:?} and {other:?} both send {code:#x} (extended: {extended})");
                }
            }
        }
        assert!(MAIN_BLOCK.len() + EXTENDED.len() > 120, "too few keys mapped");
    }

    #[test]
    fn layouts_by_name_or_id() {
        assert_eq!(layout_id("de"), Some(0x407));
        assert_eq!(layout_id("0x40C"), Some(0x40C));
        assert_eq!(layout_id("klingon"), None);
    }
}
