//! The shared peers' test desktops, seen from outside: shell commands in the xrdp session's X
//! display, and the lines the GNOME test desktop logs for typed text. Shared by the interop
//! tests and the viewer's Xvfb tests (`#[path]`-included by both).
//!
//! The xrdp session's display is looked up, not assumed: xrdp-sesman gives a new session the
//! first free display from `:10`, so another user's session, or a lock file that an earlier
//! run's killed X server left in `/tmp`, moves it to `:11` and up.

use std::process::Command;

/// The display `user`'s xrdp session runs on: the one its newest Xorg was started with, or
/// `:10` (sesman's first) when none runs yet.
pub fn session_display(user: &str) -> String {
    let listed = Command::new("pgrep").args(["-n", "-u", user, "-a", "Xorg"]).output();
    let from_xorg = listed.ok().and_then(|out| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find(|word| word.len() > 1 && word.starts_with(':') && word[1..].parse::<u32>().is_ok())
            .map(str::to_owned)
    });
    from_xorg.unwrap_or_else(|| ":10".to_owned())
}

/// `sh -c script` as `user`, on the display of their xrdp session, with their X authority.
pub fn in_session(user: &str, script: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", user, "--", "env"]);
    command.arg(format!("DISPLAY={}", session_display(user)));
    command.arg(format!("XAUTHORITY=/home/{user}/.Xauthority"));
    command.args(["sh", "-c", script]);
    command
}

/// Where `start-gnome-rd.sh` keeps GNOME Remote Desktop's state and logs.
pub const GNOME_STATE: &str = "/tmp/rdp-peers/gnome-rd";

/// The lines the GNOME test desktop logged for text typed into its entry (`typed: …`).
pub fn gnome_typed_lines() -> std::io::Result<Vec<String>> {
    let log = std::fs::read_to_string(format!("{GNOME_STATE}/desktop.log"))?;
    Ok(log
        .lines()
        .filter_map(|l| l.strip_prefix("typed: "))
        .map(str::to_owned)
        .collect())
}
