//! When to look at the window system again: its connection's file descriptor, watched by the
//! session's own `epoll`, so that the one thread sleeps until either the server or the user
//! does something — no polling on a timer.
//!
//! SDL2 does not hand out that descriptor, but it hands out the connection (X11's `Display*`,
//! Wayland's `wl_display*`), and the window system's own library, which SDL2 has loaded, turns
//! it into the descriptor. Drivers without one connection (KMS/DRM reads several input devices)
//! fall back to looking every [`FALLBACK`] — a wake-up every 10 ms, measured in BENCHMARKS.md.

use std::ffi::{c_int, c_void, CStr};
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use async_rdp::runtime::WatchedFd;
use sdl2::video::Window;

/// How often to look at SDL's events when the window system gives no descriptor.
pub const FALLBACK: Duration = Duration::from_millis(10);

/// A longest sleep even with a descriptor: events that the window system's library read into
/// its own queue behind our back (while drawing) would otherwise wait for the next input.
pub const SAFETY_NET: Duration = Duration::from_millis(500);

/// The window system's connection, watched; `None` when it has none to give.
pub fn watch(window: &Window) -> Option<WatchedFd> {
    use raw_window_handle::{HasDisplayHandle, RawDisplayHandle};

    // sdl2's `display_handle` panics (rather than failing) on drivers without window-manager
    // info, KMS/DRM and offscreen among them: ask only the two that have a connection.
    let driver = window.subsystem().current_video_driver();
    if driver != "x11" && driver != "wayland" {
        return None;
    }
    let fd = match window.display_handle().ok()?.as_raw() {
        RawDisplayHandle::Xlib(handle) => connection_fd(c"libX11.so.6", c"XConnectionNumber", handle.display?.as_ptr()),
        RawDisplayHandle::Wayland(handle) => {
            connection_fd(c"libwayland-client.so.0", c"wl_display_get_fd", handle.display.as_ptr())
        }
        _ => None,
    }?;
    // SAFETY: `fd` is the open socket of the window system's connection, which lives as long
    // as SDL's video subsystem (and so past this call); it is borrowed only for the duration
    // of `WatchedFd::new`, which duplicates it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match WatchedFd::new(borrowed) {
        Ok(watched) => Some(watched),
        Err(e) => {
            log::warn!("Cannot watch the window system's connection ({e}); looking every {FALLBACK:?}");
            None
        }
    }
}

/// Calls `symbol(display) -> int` from `library`, if that library is already loaded (by SDL).
fn connection_fd(library: &CStr, symbol: &CStr, display: *mut c_void) -> Option<RawFd> {
    if display.is_null() {
        return None;
    }
    // SAFETY: `dlopen` with RTLD_NOLOAD only looks up a library already in the process (SDL
    // loaded it to open `display`) and takes a reference that `dlclose` gives back; both get
    // valid NUL-terminated names. The symbol, when found, is the window system's documented
    // function `int f(Display *)` / `int f(struct wl_display *)`, so the transmute gives it its
    // real signature, and `display` is the live connection SDL opened with that same library.
    unsafe {
        let lib = libc::dlopen(library.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if lib.is_null() {
            return None;
        }
        let function = libc::dlsym(lib, symbol.as_ptr());
        let fd = (!function.is_null()).then(|| {
            let function: extern "C" fn(*mut c_void) -> c_int = std::mem::transmute(function);
            function(display)
        });
        libc::dlclose(lib);
        fd.filter(|fd| *fd >= 0)
    }
}
