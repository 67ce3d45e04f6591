//! The panic hook: it records the panics of threads running an input (quietly, with their
//! site, message and, the first time at each site, the async-rdp and IronRDP stack frames)
//! and leaves every other panic to the default hook.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

use crate::engine::outcome::{Finding, FUZZING};

thread_local! {
    /// The panics of the running input, in order.
    pub(crate) static PANICS: RefCell<Vec<Finding>> = const { RefCell::new(Vec::new()) };
    static BACKTRACED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Records panics of fuzzing threads (quietly) and leaves every other panic to the default
/// hook.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(Cell::get) {
                return default(info);
            }
            record(info);
        }));
    });
}

/// Adds a fuzzing thread's panic to [`PANICS`].
fn record(info: &PanicHookInfo<'_>) {
    let location = info.location().map_or_else(
        || "unknown".to_owned(),
        |l| format!("{}:{}:{}", crate_path(l.file()), l.line(), l.column()),
    );
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    // Symbolizing is slow: only for the first panic at each place.
    let first = BACKTRACED.with(|b| b.borrow_mut().insert(location.clone()));
    let backtrace = if first {
        relevant_frames(&Backtrace::force_capture())
    } else {
        String::new()
    };
    PANICS.with(|p| {
        p.borrow_mut().push(Finding {
            kind: "crash",
            location,
            message,
            backtrace,
        })
    });
}

/// A source path with the registry's prefix dropped: `ironrdp-session-0.13.0/src/rfx.rs`.
fn crate_path(file: &str) -> &str {
    match file.find("/registry/src/") {
        Some(at) => {
            let rest = &file[at + "/registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_index, path)| path)
        }
        None => file,
    }
}

/// The frames of a backtrace that name async-rdp or IronRDP code, with their source lines.
fn relevant_frames(backtrace: &Backtrace) -> String {
    let text = backtrace.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let name = line.trim();
        if ["ironrdp", "async_rdp"].iter().any(|c| name.contains(c)) && !name.starts_with("at ") {
            let at = lines.get(i + 1).map_or("", |l| l.trim());
            let _ = writeln!(out, "    {name}\n      {at}");
        }
    }
    out
}
