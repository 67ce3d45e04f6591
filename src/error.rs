//! The crate's one error type: what went wrong, in which phase, and why.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::panic::Location;

use crate::trust::CertificateRefused;
use crate::Phase;

/// The broad class of an [`Error`], for callers that react differently to each.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The transport failed (reset, refused, broken pipe, ...).
    Io,
    /// The peer closed the connection between two frames.
    Closed,
    /// The peer closed the connection in the middle of a frame.
    UnexpectedEof,
    /// The peer sent bytes that are not a valid frame header.
    InvalidFrame,
    /// A frame announced, or a hint asked for, more bytes than the frame bound allows.
    FrameTooLarge,
    /// Bytes were still buffered where none may be (they would have been lost).
    Leftover,
    /// The TLS handshake or the TLS layer failed (certificate refused, alert, ...).
    Tls,
    /// The RDP connection sequence (IronRDP's connector) reported an error.
    Connector,
    /// The active session (IronRDP's session processor) reported an error.
    Session,
    /// The server refused the credentials.
    Authentication,
    /// A Kerberos KDC or KDC proxy request failed.
    Kdc,
    /// An operation did not finish in its allotted time.
    Timeout,
    /// The API was used out of order (for example a phase token applied to a connector in
    /// another state).
    InvalidState,
    /// A value given to the API does not parse or is out of range (a target address, a
    /// fingerprint).
    InvalidInput,
    /// The server or the configuration does not support what was asked (a channel the
    /// server did not open, say).
    Unsupported,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "i/o error",
            ErrorKind::Closed => "connection closed by peer",
            ErrorKind::UnexpectedEof => "connection closed unexpectedly",
            ErrorKind::InvalidFrame => "invalid frame",
            ErrorKind::FrameTooLarge => "frame too large",
            ErrorKind::Leftover => "unconsumed buffered bytes",
            ErrorKind::Tls => "tls error",
            ErrorKind::Connector => "connection sequence error",
            ErrorKind::Session => "session error",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Kdc => "kdc request failed",
            ErrorKind::Timeout => "timed out",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "not supported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error from async-rdp.
///
/// It carries a [kind](Error::kind), a short context naming the operation that failed (for
/// example `"read frame"` or `"tls handshake"`), an optional detail message, the source error
/// as a value, and the source location where it was raised. `Display` joins them as
/// `"<context>: <kind>: <detail>"`; the cause is reachable through
/// [`source`](std::error::Error::source).
///
/// ```
/// use async_rdp::{Error, ErrorKind};
///
/// let e = Error::new(ErrorKind::Timeout, "tcp connect");
/// assert_eq!(e.kind(), ErrorKind::Timeout);
/// assert_eq!(e.to_string(), "tcp connect: timed out");
/// ```
pub struct Error {
    kind: ErrorKind,
    context: &'static str,
    phase: Option<Phase>,
    detail: Option<String>,
    source: Option<BoxError>,
    location: &'static Location<'static>,
}

impl Error {
    /// Creates an error of `kind` raised while doing `context`.
    #[track_caller]
    pub fn new(kind: ErrorKind, context: &'static str) -> Self {
        Self {
            kind,
            context,
            phase: None,
            detail: None,
            source: None,
            location: Location::caller(),
        }
    }

    /// Adds a human-readable detail, shown after the kind.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Wraps an I/O error, keeping `UnexpectedEof` and `TimedOut` as their own kinds.
    #[track_caller]
    pub fn io(context: &'static str, error: io::Error) -> Self {
        let kind = match error.kind() {
            io::ErrorKind::UnexpectedEof => ErrorKind::UnexpectedEof,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        };
        Self::new(kind, context).with_source(error)
    }

    /// The peer reset or aborted the connection, or it was already closed for writing: after
    /// our own goodbye, that is how a server that does not wait for ours says goodbye.
    pub(crate) fn is_peer_gone(&self) -> bool {
        let mut source: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|s| s as _);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<io::Error>() {
                return matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
                );
            }
            source = error.source();
        }
        false
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What the crate was doing when the error happened.
    pub fn context(&self) -> &'static str {
        self.context
    }

    /// The detail message, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Where in this crate the error was raised (useful in bug reports).
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Replaces the context, keeping everything else.
    #[must_use]
    pub fn in_context(mut self, context: &'static str) -> Self {
        self.context = context;
        self
    }

    /// The phase of the connection the error happened in, when it happened in one (every
    /// error of [`connect`](crate::connect) and of a [`Session`](crate::Session) has it).
    ///
    /// ```
    /// use async_rdp::{Error, ErrorKind, Phase};
    ///
    /// let e = Error::new(ErrorKind::Timeout, "read frame").in_phase(Phase::Nla);
    /// assert_eq!(e.phase(), Some(Phase::Nla));
    /// assert_eq!(e.to_string(), "nla: timed out");
    /// ```
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// Places the error in `phase`, which also becomes its context.
    #[must_use]
    pub fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self.context = phase.name();
        self
    }

    /// Places the error in `phase`, keeping its context (what was being done in it).
    pub(crate) fn with_phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    /// The certificate refusal behind this error, if a trust policy refused the server's
    /// certificate: who presented what, and what was expected, so that an application can ask
    /// its user whether to trust the server without parsing the message.
    pub fn certificate_refused(&self) -> Option<&CertificateRefused> {
        let mut next: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|s| s as _);
        while let Some(error) = next {
            if let Some(refused) = CertificateRefused::find_in(error) {
                return Some(refused);
            }
            next = error.source();
        }
        None
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.kind)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.kind).field("context", &self.context);
        if let Some(phase) = &self.phase {
            s.field("phase", phase);
        }
        if let Some(detail) = &self.detail {
            s.field("detail", detail);
        }
        if let Some(source) = &self.source {
            s.field("source", source);
        }
        s.field("location", &format_args!("{}", self.location)).finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

/// Converts at the `AsyncRead`/`AsyncWrite` edge, choosing the `io::ErrorKind` on purpose.
impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match error.kind {
            ErrorKind::UnexpectedEof | ErrorKind::Closed => io::ErrorKind::UnexpectedEof,
            ErrorKind::InvalidFrame | ErrorKind::FrameTooLarge => io::ErrorKind::InvalidData,
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Authentication => io::ErrorKind::PermissionDenied,
            ErrorKind::InvalidState | ErrorKind::Leftover | ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// Shorthand for results carrying this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Joins an error and its whole source chain into one line: `"a: b: c"`.
///
/// Handy for logs and command-line tools, where `Display` alone shows only the top error.
pub fn report(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        // Some wrappers repeat their source's message; don't print it twice.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}
