//! The command line that async-rdp's programs share: which server (`TARGET`), as whom
//! (`--user`, `--domain`; the password from the URL, `RDP_PASSWORD` or a no-echo prompt), with
//! which security (`--security`) and which certificate trust (`--pin`, `--known-hosts`,
//! `--on-first-use`), as clap options that a program flattens into its own parser; and
//! [`explain`], which says what a refused certificate means.
//!
//! ```no_run
//! use async_rdp_cli::ConnectArgs;
//! use clap::Parser as _;
//!
//! /// Connects to a server and disconnects.
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     connect: ConnectArgs,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cli = Cli::parse();
//! let target = cli.connect.target()?.ok_or("no TARGET given")?;
//! let config = cli.connect.client_config(&target, None)?;
//! // async_rdp::connect(&target, config).await.map_err(|e| async_rdp_cli::explain(&e))?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::io::{BufRead, IsTerminal as _};
use std::path::PathBuf;
use std::sync::Arc;

use async_rdp::trust::{AskFn, Fingerprint, FirstContact, Refusal};
use async_rdp::{ClientConfig, OnFirstUse, Secret, Security, Target, Trust};

/// The environment variable the password is read from when the target's URL names none.
pub const PASSWORD_ENV: &str = "RDP_PASSWORD";

/// The server to connect to, and how: flatten it into a program's parser with
/// `#[command(flatten)]`.
///
/// ```
/// use async_rdp_cli::ConnectArgs;
/// use clap::Parser as _;
///
/// #[derive(clap::Parser)]
/// struct Cli {
///     #[command(flatten)]
///     connect: ConnectArgs,
/// }
///
/// let cli = Cli::try_parse_from(["prog", "rdp://alice:pw@192.0.2.10", "--domain", "CORP"])?;
/// let target = cli.connect.target()?.expect("a target was given");
/// let config = cli.connect.client_config(&target, None)?;
/// assert_eq!(config.username(), "alice");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The server, as text for [`Target`]'s parser (`None` when none was given).
    #[arg(
        value_name = "TARGET",
        help = "The server: rdp://[user[:password]@]host[:port], host[:port] or [v6]:port",
        long_help = "The server: rdp://[user[:password]@]host[:port], host[:port] or [v6]:port (the port \
                     defaults to 3389). The user may be DOMAIN\\user (quote the backslash for the shell). A \
                     password in the URL is accepted but visible to other users (ps); without one, it comes from \
                     the RDP_PASSWORD environment variable, else from a prompt on the terminal (the viewer, \
                     started with no terminal, asks in its window)."
    )]
    pub target: Option<String>,

    /// Credentials, security and trust.
    #[command(flatten)]
    pub options: ConnectOptions,
}

/// Everything [`ConnectArgs`] has but the target: for a program that takes several targets
/// (flatten this, and take the targets as its own positional arguments).
///
/// ```
/// use async_rdp_cli::ConnectOptions;
/// use clap::Parser as _;
///
/// #[derive(clap::Parser)]
/// struct Cli {
///     #[command(flatten)]
///     connect: ConnectOptions,
///     /// The servers.
///     targets: Vec<String>,
/// }
///
/// let cli = Cli::try_parse_from(["prog", "-u", "CORP\\alice", "rdp://:pw@a", "rdp://:pw@b"])?;
/// for text in &cli.targets {
///     let target = async_rdp_cli::parse_target(text)?;
///     assert_eq!(cli.connect.client_config(&target, None)?.username(), "alice");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectOptions {
    /// The user name, DOMAIN\user or user@domain (wins over the URL's)
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,

    /// The Windows domain (wins over the DOMAIN\ of the user name)
    #[arg(short, long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// Which security to offer: tls, nla or any (default: any, the server picks, NLA when it can)
    #[arg(long, value_enum, value_name = "MODE")]
    pub security: Option<SecurityArg>,

    /// Trust exactly this server certificate: its SHA-256 fingerprint (AB:CD:...; repeatable)
    ///
    /// Replaces the known-hosts check: only a certificate with one of these fingerprints is
    /// accepted.
    #[arg(long = "pin", value_name = "SHA256", conflicts_with_all = ["known_hosts", "on_first_use"])]
    pub pins: Vec<Fingerprint>,

    /// The known-hosts file (default: $XDG_CONFIG_HOME/async-rdp/known_hosts, else ~/.config/async-rdp/known_hosts)
    ///
    /// Without --pin, the server's certificate is checked against this file (host:port and
    /// SHA-256 per line, like ssh's): a certificate other than the one listed is refused.
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,

    /// What to do with a server not in the known-hosts file: remember, ask or refuse
    ///
    /// The default is the program's: most remember a new server's certificate on first use (and
    /// refuse it if it changes later).
    #[arg(long, value_enum, value_name = "CHOICE")]
    pub on_first_use: Option<FirstUseArg>,
}

/// `--security`: which enhanced security protocols to offer ([`Security`]).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityArg {
    /// TLS only: the credentials travel inside the session, for a graphical logon
    Tls,
    /// NLA (CredSSP) only: the credentials are checked before the session starts
    Nla,
    /// Both; the server picks, NLA when it can
    Any,
}

impl From<SecurityArg> for Security {
    fn from(choice: SecurityArg) -> Self {
        match choice {
            SecurityArg::Tls => Security::Tls,
            SecurityArg::Nla => Security::Nla,
            SecurityArg::Any => Security::Any,
        }
    }
}

/// `--on-first-use`: what known hosts do with a server never seen ([`OnFirstUse`]).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUseArg {
    /// Trust the certificate and remember it
    Remember,
    /// Show its fingerprint and ask on the terminal
    Ask,
    /// Refuse it: only servers already in the file are trusted
    Refuse,
}

/// A command-line error: a message for the user.
///
/// ```
/// let error = async_rdp_cli::parse_target("host:port").unwrap_err();
/// assert!(error.to_string().contains("port"));
/// let as_text: String = error.into();
/// # let _ = as_text;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(String);

impl CliError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<CliError> for String {
    fn from(error: CliError) -> Self {
        error.0
    }
}

/// A target from the command line, with the library's parser ([`Target`]'s `FromStr`).
///
/// ```
/// let target = async_rdp_cli::parse_target("rdp://alice@[fe80::1]:3390")?;
/// assert_eq!((target.host(), target.port()), ("fe80::1", 3390));
/// # Ok::<(), async_rdp_cli::CliError>(())
/// ```
pub fn parse_target(text: &str) -> Result<Target, CliError> {
    text.parse()
        .map_err(|e: async_rdp::Error| CliError(async_rdp::report(&e)))
}

impl ConnectArgs {
    /// The target given, parsed; `None` when none was (a program may then use a server of its
    /// own, as the examples use the demo server).
    ///
    /// ```
    /// # use async_rdp_cli::ConnectArgs; use clap::Parser as _;
    /// # #[derive(clap::Parser)] struct Cli { #[command(flatten)] connect: ConnectArgs }
    /// let cli = Cli::try_parse_from(["prog"])?;
    /// assert!(cli.connect.target()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn target(&self) -> Result<Option<Target>, CliError> {
        self.target.as_deref().map(parse_target).transpose()
    }

    /// The password for `target`: see [`ConnectOptions::password`].
    pub fn password(&self, target: &Target) -> Result<Secret, CliError> {
        self.options.password(target)
    }

    /// The client configuration for `target`: see [`ConnectOptions::client_config`].
    pub fn client_config(&self, target: &Target, ask: Option<AskFn>) -> Result<ClientConfig, CliError> {
        self.options.client_config(target, ask)
    }

    /// See [`ConnectOptions::password_given`].
    pub fn password_given(&self, target: &Target) -> bool {
        self.options.password_given(target)
    }

    /// See [`ConnectOptions::client_config_asking`].
    pub fn client_config_asking(
        &self,
        target: &Target,
        ask: Option<AskFn>,
        ask_password: &mut AskPasswordFn<'_>,
    ) -> Result<ClientConfig, CliError> {
        self.options.client_config_asking(target, ask, ask_password)
    }
}

impl ConnectOptions {
    /// The password for `target`: the one its URL named; else the `RDP_PASSWORD` environment
    /// variable; else, when standard input is a terminal, a prompt that does not echo; else an
    /// error that says to set `RDP_PASSWORD`.
    ///
    /// ```
    /// # use async_rdp_cli::ConnectOptions; use clap::Parser as _;
    /// # #[derive(clap::Parser)] struct Cli { #[command(flatten)] connect: ConnectOptions }
    /// let cli = Cli::try_parse_from(["prog"])?;
    /// let target = async_rdp_cli::parse_target("rdp://alice:s3cret@host")?;
    /// assert_eq!(cli.connect.password(&target)?.expose(), "s3cret");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn password(&self, target: &Target) -> Result<Secret, CliError> {
        self.password_asking(target, &mut ask_password_on_terminal)
    }

    /// Whether the password for `target` comes without asking: in its URL or in
    /// `RDP_PASSWORD`. (A program can then decide where it would have to ask, before it does.)
    pub fn password_given(&self, target: &Target) -> bool {
        target.password().is_some() || std::env::var_os(PASSWORD_ENV).is_some()
    }

    /// [`password`](Self::password) with another way to ask when neither the URL nor
    /// `RDP_PASSWORD` has it: `ask` gets who the password is for (`DOMAIN\user@host`) and may
    /// ask in a window, as the viewer does when it has no terminal.
    ///
    /// ```
    /// # use async_rdp_cli::ConnectOptions; use clap::Parser as _;
    /// # #[derive(clap::Parser)] struct Cli { #[command(flatten)] connect: ConnectOptions }
    /// let cli = Cli::try_parse_from(["prog"])?;
    /// let target = async_rdp_cli::parse_target("rdp://alice@host")?;
    /// let mut ask = |who: &str| Ok(async_rdp::Secret::new(format!("typed for {who}")));
    /// let password = cli.connect.password_asking(&target, &mut ask)?;
    /// # if std::env::var_os("RDP_PASSWORD").is_none() {
    /// assert_eq!(password.expose(), "typed for alice@host");
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn password_asking(&self, target: &Target, ask: &mut AskPasswordFn<'_>) -> Result<Secret, CliError> {
        if let Some(password) = target.password() {
            return Ok(password.clone());
        }
        match std::env::var(PASSWORD_ENV) {
            Ok(password) => return Ok(Secret::new(password)),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(CliError(format!("{PASSWORD_ENV} is not valid UTF-8")));
            }
            Err(std::env::VarError::NotPresent) => {}
        }
        let (domain, user) = self.logon(target);
        let who = match (domain, user.is_empty()) {
            (Some(domain), _) => format!("{domain}\\{user}@{}", target.host()),
            (None, false) => format!("{user}@{}", target.host()),
            (None, true) => target.host().to_owned(),
        };
        ask(&who)
    }

    /// The client configuration for `target`: the user (`--user`, else the URL's; a
    /// `DOMAIN\user` split into domain and user, `--domain` winning), the [password](Self::password),
    /// `--security` if given, and the [trust](Self::trust).
    ///
    /// `ask` decides about a server never seen before when `--on-first-use` is not given (and
    /// is what `--on-first-use ask` asks; [`ask_on_terminal`] when `None`). Without `ask` and
    /// without the option, a new server is remembered.
    ///
    /// ```
    /// # use async_rdp_cli::ConnectOptions; use clap::Parser as _;
    /// # #[derive(clap::Parser)] struct Cli { #[command(flatten)] connect: ConnectOptions }
    /// let cli = Cli::try_parse_from(["prog", "--user", "CORP\\alice", "--security", "nla"])?;
    /// let target = async_rdp_cli::parse_target("rdp://:pw@192.0.2.10")?;
    /// let config = cli.connect.client_config(&target, None)?;
    /// assert_eq!(config.username(), "alice");
    /// assert_eq!(config.connector_config().domain.as_deref(), Some("CORP"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_config(&self, target: &Target, ask: Option<AskFn>) -> Result<ClientConfig, CliError> {
        self.client_config_asking(target, ask, &mut ask_password_on_terminal)
    }

    /// [`client_config`](Self::client_config) with the password asked by `ask_password` when
    /// it has to be asked (see [`password_asking`](Self::password_asking)).
    pub fn client_config_asking(
        &self,
        target: &Target,
        ask: Option<AskFn>,
        ask_password: &mut AskPasswordFn<'_>,
    ) -> Result<ClientConfig, CliError> {
        let password = self.password_asking(target, ask_password)?;
        let (domain, user) = self.logon(target);
        let mut config = ClientConfig::new(user, password).with_trust(self.trust(ask));
        if let Some(domain) = domain {
            config = config.with_domain(domain);
        }
        if let Some(security) = self.security {
            config = config.with_security(security.into());
        }
        Ok(config)
    }

    /// The certificate trust: `--pin` pins; otherwise known hosts (`--known-hosts` or the
    /// default file), deciding about a new server by `--on-first-use`, else by `ask`, else
    /// remembering it.
    ///
    /// ```
    /// # use async_rdp_cli::ConnectOptions; use clap::Parser as _;
    /// # #[derive(clap::Parser)] struct Cli { #[command(flatten)] connect: ConnectOptions }
    /// let cli = Cli::try_parse_from(["prog", "--known-hosts", "/etc/rdp_hosts", "--on-first-use", "refuse"])?;
    /// let trust = cli.connect.trust(None);
    /// assert!(format!("{trust:?}").contains("Refuse"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust(&self, ask: Option<AskFn>) -> Trust {
        if !self.pins.is_empty() {
            return Trust::pinned(self.pins.iter().copied());
        }
        let trust = match &self.known_hosts {
            Some(path) => Trust::known_hosts_at(path),
            None => Trust::known_hosts(),
        };
        trust.on_first_use(match (self.on_first_use, ask) {
            (Some(FirstUseArg::Remember), _) => OnFirstUse::Remember,
            (Some(FirstUseArg::Refuse), _) => OnFirstUse::Refuse,
            (Some(FirstUseArg::Ask), ask) => OnFirstUse::Ask(ask.unwrap_or_else(ask_on_terminal)),
            (None, Some(ask)) => OnFirstUse::Ask(ask),
            (None, None) => OnFirstUse::Remember,
        })
    }

    /// The domain and user name: `--user` or the URL's, `DOMAIN\user` split, `--domain` winning.
    fn logon(&self, target: &Target) -> (Option<String>, String) {
        let named = self.user.as_deref().or(target.username()).unwrap_or_default();
        let (domain, user) = match named.split_once('\\') {
            Some((domain, user)) => (Some(domain), user),
            None => (None, named),
        };
        (self.domain.as_deref().or(domain).map(str::to_owned), user.to_owned())
    }
}

/// A first-use decision on the terminal: prints the server and its certificate's fingerprint
/// on standard error and reads `yes` or `no` from the terminal (`/dev/tty`, else standard
/// input when it is one). Declines when there is no terminal to ask.
///
/// ```no_run
/// use async_rdp::{OnFirstUse, Trust};
///
/// let trust = Trust::known_hosts().on_first_use(OnFirstUse::Ask(async_rdp_cli::ask_on_terminal()));
/// # let _ = trust;
/// ```
pub fn ask_on_terminal() -> AskFn {
    Arc::new(|contact: &FirstContact| {
        let Some(mut terminal) = terminal() else {
            eprintln!(
                "{} is not a known host, and there is no terminal to ask whether to trust it",
                contact.host
            );
            return false;
        };
        let via = if contact.redirected {
            " (reached through a redirection)"
        } else {
            ""
        };
        eprintln!(
            "{}{via} is not a known host. The SHA-256 fingerprint of its certificate is\n  {}\nCheck it out of band \
             (on the server itself) before you trust it.",
            contact.host, contact.fingerprint
        );
        for _ in 0..3 {
            eprint!("Trust this server and remember it (yes/no)? ");
            let mut answer = String::new();
            match terminal.read_line(&mut answer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            match answer.trim().to_ascii_lowercase().as_str() {
                "yes" => return true,
                "no" => return false,
                _ => eprintln!("Please type yes or no."),
            }
        }
        eprintln!();
        false
    })
}

/// How a program asks for a password it was not given: told who it is for (`DOMAIN\user@host`).
pub type AskPasswordFn<'a> = dyn FnMut(&str) -> Result<Secret, CliError> + 'a;

/// Asks for the password of `who` on the terminal, without echo; when standard input is not a
/// terminal, an error that says to set `RDP_PASSWORD`.
pub fn ask_password_on_terminal(who: &str) -> Result<Secret, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError(format!(
            "no password for {who}: set the {PASSWORD_ENV} environment variable (or run on a terminal to be asked)"
        )));
    }
    rpassword::prompt_password(format!("Password for {who}: "))
        .map(Secret::new)
        .map_err(|e| CliError(format!("reading the password: {e}")))
}

/// Where to read an answer from: the controlling terminal, else standard input if it is one.
fn terminal() -> Option<Box<dyn BufRead>> {
    if let Ok(tty) = std::fs::File::open("/dev/tty") {
        return Some(Box::new(std::io::BufReader::new(tty)));
    }
    let stdin = std::io::stdin();
    stdin.is_terminal().then(|| Box::new(stdin.lock()) as Box<dyn BufRead>)
}

/// A connection error for the user: when a trust policy refused the server's certificate, what
/// was refused, the fingerprints involved and what to do about it; any other error as
/// [`async_rdp::report`] writes it.
///
/// The refusal is found as a value
/// ([`CertificateRefused`](async_rdp::trust::CertificateRefused), reached through the error's
/// sources with [`async_rdp::Error::certificate_refused`]), never by reading the message.
///
/// ```no_run
/// # async fn run(config: async_rdp::ClientConfig) -> Result<(), String> {
/// let session = async_rdp::connect("192.0.2.10", config)
///     .await
///     .map_err(|e| async_rdp_cli::explain(&e))?;
/// # drop(session); Ok(())
/// # }
/// ```
pub fn explain(error: &async_rdp::Error) -> String {
    // The library walks the sources and downcasts each, looking also inside the `Arc` that
    // rustls carries a verifier's reason in (where a plain `downcast_ref::<CertificateRefused>()`
    // on each source finds nothing).
    let Some(refused) = error.certificate_refused() else {
        return async_rdp::report(error);
    };
    let (host, presented) = (refused.host(), refused.presented());
    let file = refused
        .known_hosts_file()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the known-hosts file".to_owned());
    match refused.reason() {
        Refusal::Changed => {
            let line = refused
                .known_hosts_line()
                .map(|l| format!(" line {l}"))
                .unwrap_or_default();
            let expected: Vec<String> = refused.expected().iter().map(ToString::to_string).collect();
            format!(
                "refused {host}: its certificate CHANGED. Someone may be intercepting the connection.\n  \
                 known ({file}{line}): {}\n  presented now: {presented}\nIf the change is expected (the \
                 server got a new certificate), delete{line} of {file} and connect again, or pass --pin \
                 {presented}.",
                expected.join(", ")
            )
        }
        Refusal::Unknown => format!(
            "refused {host}: it is not in {file}, and it was not trusted on first use (refused, or declined \
             when asked).\n  presented: {presented}\nIf that is the server's fingerprint (check on the server itself), pass --pin \
             {presented}, or connect once with --on-first-use remember or ask."
        ),
        Refusal::RedirectedToUnknown => format!(
            "refused {host}: the server redirected there, and a redirection is only followed to a server in \
             {file}.\n  presented: {presented}\nConnect to {host} directly once to trust it."
        ),
        Refusal::NotPinned => {
            let pinned: Vec<String> = refused.expected().iter().map(ToString::to_string).collect();
            format!(
                "refused {host}: its certificate matches no --pin.\n  pinned:    {}\n  presented: {presented}\nIf \
                 that is the server's fingerprint (check on the server itself), pin it instead.",
                if pinned.is_empty() {
                    "(none)".to_owned()
                } else {
                    pinned.join(", ")
                }
            )
        }
        _ => async_rdp::report(error),
    }
}

#[cfg(test)]
mod tests;
