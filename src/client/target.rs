//! Where to connect: one parser for `host`, `host:port`, `[v6]:port` and
//! `rdp://[user[:password]@]host[:port]`, used by the library, redirections, known hosts and
//! the programs alike.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::{Error, ErrorKind, Result, Secret};

/// RDP's port.
pub const DEFAULT_PORT: u16 = 3389;

/// An RDP server to connect to: a host (name or IP address) and a port, and the user name and
/// password when the text named them (`rdp://user:password@host`; programs should rather take
/// the password from a prompt or the environment, where `ps` cannot see it).
///
/// A bare IPv6 address is a host (`::1` is port 3389 of `::1`); with a port it needs brackets
/// (`[::1]:3390`). `Display` gives `host:port`, bracketed for IPv6, as the known-hosts file
/// writes it; never the credentials.
///
/// ```
/// use async_rdp::Target;
///
/// let t: Target = "rdp://alice@[fe80::1]:3390".parse()?;
/// assert_eq!((t.host(), t.port(), t.username()), ("fe80::1", 3390, Some("alice")));
/// assert_eq!(t.to_string(), "[fe80::1]:3390");
/// assert_eq!("::1".parse::<Target>()?.port(), 3389);
/// assert_eq!("example.com:3391".parse::<Target>()?.to_string(), "example.com:3391");
/// # Ok::<(), async_rdp::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<Secret>,
}

impl Target {
    /// A target from its parts (`host` without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            username: None,
            password: None,
        }
    }

    /// The host: a name, or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name the text named, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password the text named, if any.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// Another host on the same port (a redirection keeps the port the client used).
    pub(crate) fn with_host(&self, host: &str) -> Self {
        Self::new(host, self.port)
    }

    /// `host:port` as the known-hosts file writes it: names in lower case, IPv6 bracketed.
    pub(crate) fn known_hosts_key(&self) -> String {
        if self.host.contains(':') {
            self.to_string()
        } else {
            format!("{}:{}", self.host.to_ascii_lowercase(), self.port)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid =
            |why: &str| Error::new(ErrorKind::InvalidInput, "parse target").with_detail(format!("{text:?}: {why}"));
        let rest = text.trim();
        let rest = rest.strip_prefix("rdp://").unwrap_or(rest).trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport).map_err(&invalid)?;
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let mut target = Target::new(host, port);
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            target.username = Some(percent_decode(user).map_err(|why| invalid(&why))?);
            target.password = match password {
                Some(p) => Some(Secret::new(percent_decode(p).map_err(|why| invalid(&why))?)),
                None => None,
            };
        }
        Ok(target)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn split_host_port(text: &str) -> std::result::Result<(&str, u16), &'static str> {
    let port = |p: &str| p.parse::<u16>().map_err(|_| "the port is not a number from 0 to 65535");
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("an unclosed [ in the host")?;
        return match after {
            "" => Ok((host, DEFAULT_PORT)),
            _ => Ok((
                host,
                port(after.strip_prefix(':').ok_or("text after ] that is not :port")?)?,
            )),
        };
    }
    if text.parse::<IpAddr>().is_ok() {
        // A bare IPv6 address has colons but no port.
        return Ok((text, DEFAULT_PORT));
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err("an IPv6 address with a port needs brackets: [v6]:port"),
        Some((host, p)) => Ok((host, port(p)?)),
        None => Ok((text, DEFAULT_PORT)),
    }
}

fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("a bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials that are not UTF-8".to_owned())
}

/// What [`connect`](crate::connect) accepts as a target: a [`Target`], or text or a socket
/// address to make one from.
pub trait IntoTarget {
    /// The target, or an [`ErrorKind::InvalidInput`] error saying why the text is not one.
    fn into_target(self) -> Result<Target>;
}

impl IntoTarget for Target {
    fn into_target(self) -> Result<Target> {
        Ok(self)
    }
}

impl IntoTarget for &Target {
    fn into_target(self) -> Result<Target> {
        Ok(self.clone())
    }
}

impl IntoTarget for &str {
    fn into_target(self) -> Result<Target> {
        self.parse()
    }
}

impl IntoTarget for &String {
    fn into_target(self) -> Result<Target> {
        self.parse()
    }
}

impl IntoTarget for String {
    fn into_target(self) -> Result<Target> {
        self.parse()
    }
}

impl IntoTarget for SocketAddr {
    fn into_target(self) -> Result<Target> {
        Ok(Target::new(self.ip().to_string(), self.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, u16) {
        let t: Target = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        (t.host().to_owned(), t.port())
    }

    #[test]
    fn every_form_parses_to_the_same_parts() {
        assert_eq!(parts("example.com"), ("example.com".into(), 3389));
        assert_eq!(parts("example.com:3390"), ("example.com".into(), 3390));
        assert_eq!(parts("10.0.0.1:3391"), ("10.0.0.1".into(), 3391));
        assert_eq!(parts("[::1]:3392"), ("::1".into(), 3392));
        assert_eq!(parts("[::1]"), ("::1".into(), 3389));
        assert_eq!(parts("rdp://bob@host:3393/"), ("host".into(), 3393));
        // Issue 11: the five old parsers disagreed here; "::1" is a host, never port 1.
        assert_eq!(parts("::1"), ("::1".into(), 3389));
        assert_eq!(parts("fe80::1:2"), ("fe80::1:2".into(), 3389));
    }

    #[test]
    fn credentials_and_display() {
        let t: Target = "rdp://al%40ice:p%3Ass@[::1]:3390".parse().unwrap();
        assert_eq!(t.username(), Some("al@ice"));
        assert_eq!(t.password().map(Secret::expose), Some("p:ss"));
        assert_eq!(t.to_string(), "[::1]:3390");
        assert!(!format!("{t:?}").contains("p:ss"));
        assert_eq!(Target::new("Example.COM", 3389).known_hosts_key(), "example.com:3389");
    }

    #[test]
    fn bad_targets_say_why() {
        for bad in [
            "",
            "host:port",
            "host:70000",
            "[::1",
            "[::1]x",
            "fe80::1:2:",
            "rdp://u@",
        ] {
            let e = bad.parse::<Target>().expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }
}
