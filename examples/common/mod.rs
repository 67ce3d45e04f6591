//! Shared bits of the example programs that are not their command line (that is
//! `async-rdp-cli`'s): `main` on one thread, the phase printer, PNG writing and process figures.

#![allow(dead_code, reason = "each example uses a different part")]

use std::time::{Duration, Instant};

/// Prints phases with their durations as they complete.
pub struct Phases {
    start: Instant,
    last: Instant,
}

impl Phases {
    pub fn start() -> Self {
        let now = Instant::now();
        Self { start: now, last: now }
    }

    pub fn done(&mut self, phase: &str) -> Duration {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        println!(
            "  {phase:<14} {:>8.1} ms   (total {:>8.1} ms)",
            ms(took),
            ms(now - self.start)
        );
        took
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes the framebuffer to a PNG file.
pub fn write_png(path: &str, fb: &async_rdp::Framebuffer<'_>) -> Result<(), String> {
    use std::io::Write as _;

    let file = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), u32::from(fb.width), u32::from(fb.height));
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .and_then(png::Writer::into_stream_writer)
        .map_err(|e| e.to_string())?;
    // Row by row, straight from the framebuffer: a packed copy of the image would cost as much
    // memory again as the framebuffer itself.
    let row = usize::from(fb.width) * 4;
    for y in 0..usize::from(fb.height) {
        writer
            .write_all(&fb.data[y * fb.stride..y * fb.stride + row])
            .map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())
}

/// The process's resident memory, from `/proc/self/status` (Linux), in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The names of the process's OS threads (`/proc/self/task/*/comm`).
pub fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// The body of an example's `main` once its command line is parsed: logging from `RUST_LOG`,
/// `run` on one thread ([`block_on`]), and exit status 1 with the error on stderr when it
/// fails.
pub fn main(run: impl std::future::Future<Output = Result<(), String>>) {
    env_logger::init();
    if let Err(e) = block_on(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Runs the example on one thread: async-rdp's own runtime where it exists (Linux), so that a
/// session against a real server starts no other OS thread; async-std's `block_on` elsewhere.
/// (The in-process demo server uses async-std's sockets, which start async-io's thread.)
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return async_rdp::runtime::block_on(future);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return async_std::task::block_on(future);
}
