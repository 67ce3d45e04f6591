//! Input from the application to the server: keys by scan code or Unicode, the mouse, and
//! the bookkeeping that releases what is held when focus goes.

use ironrdp_pdu::input::fast_path::{FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::input::mouse_x::PointerXFlags;
use ironrdp_pdu::input::{scan_code, unicode, InputEvent, InputEventPdu, MousePdu, MouseXPdu};
use ironrdp_pdu::rdp::capability_sets::InputFlags;
use ironrdp_pdu::rdp::headers::ShareDataPdu;

use super::driver::in_session;
use super::output::session_error;
use super::{Session, State};
use crate::{Error, ErrorKind, Result};

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MouseButton {
    /// Left (primary) button.
    Left,
    /// Right (secondary) button.
    Right,
    /// Middle button (wheel click).
    Middle,
    /// First extra button (back).
    X1,
    /// Second extra button (forward).
    X2,
}

/// A key by its physical position: a scan code (set 1), and whether it is one of the
/// E0-prefixed "extended" keys (arrows, right Ctrl and Alt, Insert, Delete, ...). Physical keys
/// make any keyboard layout the server uses work.
///
/// ```
/// use async_rdp::Scancode;
///
/// let a = Scancode::new(0x1E);
/// let up = Scancode::extended(0x48);
/// assert!(!a.is_extended() && up.is_extended());
/// // Pause is E1 1D 45: press `extended1(0x1D)` then `new(0x45)`, release both.
/// assert!(Scancode::extended1(0x1D).is_extended1());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scancode {
    code: u8,
    extended: bool,
    extended1: bool,
}

impl Scancode {
    /// A key of the main block (no E0 prefix).
    pub fn new(code: u8) -> Self {
        Self {
            code,
            extended: false,
            extended1: false,
        }
    }

    /// An E0-prefixed (extended) key.
    pub fn extended(code: u8) -> Self {
        Self {
            code,
            extended: true,
            extended1: false,
        }
    }

    /// An E1-prefixed code: only Pause uses it, as `E1 1D` (a Ctrl that is not a Ctrl)
    /// followed by NumLock's `45` ([MS-RDPBCGR] 2.2.8.1.2.2.1, KBDFLAGS_EXTENDED1).
    pub fn extended1(code: u8) -> Self {
        Self {
            code,
            extended: false,
            extended1: true,
        }
    }

    /// The scan code.
    pub fn code(self) -> u8 {
        self.code
    }

    /// Whether the key is E0-prefixed.
    pub fn is_extended(self) -> bool {
        self.extended
    }

    /// Whether the code is E1-prefixed (Pause).
    pub fn is_extended1(self) -> bool {
        self.extended1
    }
}

/// Whether a key goes down or comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Pressed.
    Down,
    /// Released.
    Up,
}

/// Whether a mouse button goes down or comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ButtonState {
    /// Pressed.
    Down,
    /// Released.
    Up,
}

impl<S> Session<S> {
    /// Presses or releases a key by its [`Scancode`]. Queued, like all input, and sent by the
    /// next [`next_event`](Session::next_event) or [`flush`](Session::flush).
    ///
    /// ```no_run
    /// # fn press(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
    /// use async_rdp::{KeyState, Scancode};
    ///
    /// session.key(Scancode::extended(0x5B), KeyState::Down)?; // left Windows key
    /// session.key(Scancode::extended(0x5B), KeyState::Up)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn key(&mut self, key: Scancode, state: KeyState) -> Result<()> {
        self.pressed_keys.retain(|k| *k != key);
        if state == KeyState::Down {
            self.pressed_keys.push(key);
        }
        let mut flags = KeyboardFlags::empty();
        flags.set(KeyboardFlags::EXTENDED, key.extended);
        flags.set(KeyboardFlags::EXTENDED1, key.extended1);
        flags.set(KeyboardFlags::RELEASE, state == KeyState::Up);
        self.send_input(&[FastPathInputEvent::KeyboardEvent(flags, key.code)])
    }

    /// Types a character by its Unicode value. Characters outside the Basic Multilingual Plane
    /// are sent as their two UTF-16 units.
    pub fn key_unicode(&mut self, ch: char, state: KeyState) -> Result<()> {
        let flags = match state {
            KeyState::Down => KeyboardFlags::empty(),
            KeyState::Up => KeyboardFlags::RELEASE,
        };
        let mut units = [0u16; 2];
        let events: Vec<_> = ch
            .encode_utf16(&mut units)
            .iter()
            .map(|unit| FastPathInputEvent::UnicodeKeyboardEvent(flags, *unit))
            .collect();
        self.send_input(&events)
    }

    /// Moves the pointer to (`x`, `y`).
    pub fn mouse_move(&mut self, x: u16, y: u16) -> Result<()> {
        self.mouse = (x, y);
        self.send_input(&[FastPathInputEvent::MouseEvent(MousePdu {
            flags: PointerFlags::MOVE,
            number_of_wheel_rotation_units: 0,
            x_position: x,
            y_position: y,
        })])
    }

    /// Presses or releases a mouse button at the current pointer position.
    pub fn mouse_button(&mut self, button: MouseButton, state: ButtonState) -> Result<()> {
        self.pressed_buttons.retain(|b| *b != button);
        let pressed = state == ButtonState::Down;
        if pressed {
            self.pressed_buttons.push(button);
        }
        let (x, y) = self.mouse;
        let event = match button {
            MouseButton::Left | MouseButton::Right | MouseButton::Middle => {
                let mut flags = match button {
                    MouseButton::Left => PointerFlags::LEFT_BUTTON,
                    MouseButton::Right => PointerFlags::RIGHT_BUTTON,
                    _ => PointerFlags::MIDDLE_BUTTON_OR_WHEEL,
                };
                flags.set(PointerFlags::DOWN, pressed);
                FastPathInputEvent::MouseEvent(MousePdu {
                    flags,
                    number_of_wheel_rotation_units: 0,
                    x_position: x,
                    y_position: y,
                })
            }
            MouseButton::X1 | MouseButton::X2 => {
                let mut flags = if button == MouseButton::X1 {
                    PointerXFlags::BUTTON1
                } else {
                    PointerXFlags::BUTTON2
                };
                flags.set(PointerXFlags::DOWN, pressed);
                FastPathInputEvent::MouseEventEx(MouseXPdu {
                    flags,
                    x_position: x,
                    y_position: y,
                })
            }
        };
        self.send_input(&[event])
    }

    /// Turns the vertical wheel; positive is away from the user. One notch is 120 on Windows.
    /// Values are clamped to the protocol's range (-256..=255).
    pub fn mouse_wheel(&mut self, delta: i16) -> Result<()> {
        self.wheel(PointerFlags::VERTICAL_WHEEL, delta)
    }

    /// Turns the horizontal wheel; positive is to the right.
    pub fn mouse_hwheel(&mut self, delta: i16) -> Result<()> {
        self.wheel(PointerFlags::HORIZONTAL_WHEEL, delta)
    }

    fn wheel(&mut self, axis: PointerFlags, delta: i16) -> Result<()> {
        let (x, y) = self.mouse;
        self.send_input(&[FastPathInputEvent::MouseEvent(MousePdu {
            flags: axis,
            number_of_wheel_rotation_units: delta.clamp(
                *MousePdu::WHEEL_ROTATION_RANGE.start(),
                *MousePdu::WHEEL_ROTATION_RANGE.end(),
            ),
            x_position: x,
            y_position: y,
        })])
    }

    /// Releases every key and button this session pressed and has not released (call it when
    /// the application loses focus).
    pub fn release_all(&mut self) -> Result<()> {
        for key in std::mem::take(&mut self.pressed_keys) {
            self.key(key, KeyState::Up)?;
        }
        for button in std::mem::take(&mut self.pressed_buttons) {
            self.mouse_button(button, ButtonState::Up)?;
        }
        Ok(())
    }

    /// Encodes input as fast-path input when the server accepts it, slow-path otherwise
    /// ([MS-RDPBCGR] 2.2.8.1.2: some servers drop the connection on unsolicited fast-path input).
    fn send_input(&mut self, events: &[FastPathInputEvent]) -> Result<()> {
        crate::redact::scoped(|| self.encode_input(events)).map_err(in_session)
    }

    fn encode_input(&mut self, events: &[FastPathInputEvent]) -> Result<()> {
        if self.state != State::Active {
            return Err(Error::new(ErrorKind::Closed, "send input").with_detail("the session has ended"));
        }
        let flags = self.negotiated.input_flags;
        if flags.intersects(InputFlags::FASTPATH_INPUT | InputFlags::FASTPATH_INPUT_2) {
            let outputs = self
                .stage
                .process_fastpath_input(&mut self.image, events)
                .map_err(|e| session_error("encode input", e))?;
            return self.handle_outputs(outputs);
        }
        let slow: Vec<InputEvent> = events.iter().filter_map(slow_path_event).collect();
        self.scratch.clear();
        let len = self
            .stage
            .encode_static(&mut self.scratch, ShareDataPdu::Input(InputEventPdu(slow)))
            .map_err(|e| session_error("encode input", e))?;
        self.out.extend_from_slice(&self.scratch.filled()[..len]);
        Ok(())
    }
}

/// The slow-path form of a fast-path input event.
fn slow_path_event(event: &FastPathInputEvent) -> Option<InputEvent> {
    let key_flags = |flags: &KeyboardFlags| {
        let mut out = scan_code::KeyboardFlags::empty();
        out.set(
            scan_code::KeyboardFlags::RELEASE,
            flags.contains(KeyboardFlags::RELEASE),
        );
        out.set(
            scan_code::KeyboardFlags::EXTENDED,
            flags.contains(KeyboardFlags::EXTENDED),
        );
        out.set(
            scan_code::KeyboardFlags::EXTENDED_1,
            flags.contains(KeyboardFlags::EXTENDED1),
        );
        out
    };
    Some(match event {
        FastPathInputEvent::KeyboardEvent(flags, code) => InputEvent::ScanCode(scan_code::ScanCodePdu {
            flags: key_flags(flags),
            key_code: u16::from(*code),
        }),
        FastPathInputEvent::UnicodeKeyboardEvent(flags, code) => InputEvent::Unicode(unicode::UnicodePdu {
            flags: if flags.contains(KeyboardFlags::RELEASE) {
                unicode::KeyboardFlags::RELEASE
            } else {
                unicode::KeyboardFlags::empty()
            },
            unicode_code: *code,
        }),
        FastPathInputEvent::MouseEvent(pdu) => InputEvent::Mouse(*pdu),
        FastPathInputEvent::MouseEventEx(pdu) => InputEvent::MouseX(*pdu),
        _ => return None,
    })
}
