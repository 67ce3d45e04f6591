//! Shared bits of the example programs: the `rdp://user:pass@host:port` target syntax and the
//! in-process demo server used when no server is given.

#![allow(dead_code, reason = "each example uses a different part")]

use std::time::{Duration, Instant};

/// A server to connect to, from `rdp://[user[:password]@]host[:port]`.
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("rdp://").unwrap_or(text);
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (percent_decode(user)?, percent_decode(pass)?),
                None => (percent_decode(u)?, String::new()),
            },
            None => (String::new(), String::new()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
            (host.to_owned(), after.strip_prefix(':').unwrap_or("3389"))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p),
                None => (hostport.to_owned(), "3389"),
            }
        };
        let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(Self {
            host,
            port,
            username,
            password,
        })
    }

    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials are not UTF-8".into())
}

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
