use std::time::Duration;

use async_rdp::ironrdp_connector::Credentials;
use async_rdp::trust::Fingerprint;
use clap::{CommandFactory as _, Parser};

use super::*;

/// A program with nothing but the shared options.
#[derive(Parser, Debug)]
#[command(name = "prog")]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
}

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied())).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn parse_error(args: &[&str]) -> String {
    match Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied())) {
        Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
        Err(e) => e.to_string(),
    }
}

/// The configuration the arguments make (every target here names a password, so that no test
/// but the environment's reads `RDP_PASSWORD` or prompts).
fn config(args: &[&str]) -> ClientConfig {
    let cli = parse(args);
    let target = cli.connect.target().unwrap().expect("a target");
    assert!(target.password().is_some(), "a test target must name its password");
    cli.connect.client_config(&target, None).unwrap()
}

/// (domain, user, password) as the connector gets them.
fn logon(config: &ClientConfig) -> (Option<String>, String, String) {
    let connector = config.connector_config();
    match connector.credentials {
        Credentials::UsernamePassword { username, password } => (connector.domain, username, password),
        _ => panic!("credentials that are not a user name and password"),
    }
}

const PIN: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

#[test]
fn domain_backslash_user_is_split() {
    let from_url = config(&["rdp://CORP%5Calice:pw@host"]);
    assert_eq!(logon(&from_url), (Some("CORP".into()), "alice".into(), "pw".into()));
    // The backslash as typed (quoted for the shell).
    let typed = config(&["rdp://CORP\\alice:pw@host"]);
    assert_eq!(logon(&typed).0.as_deref(), Some("CORP"));

    let flag = config(&["rdp://bob:pw@host", "-u", "CORP\\alice"]);
    assert_eq!(logon(&flag), (Some("CORP".into()), "alice".into(), "pw".into()));
    let plain = config(&["rdp://bob:pw@host", "--user", "alice"]);
    assert_eq!(logon(&plain), (None, "alice".into(), "pw".into()));
    // A UPN stays whole: the server resolves it.
    let upn = config(&["rdp://:pw@host", "-u", "alice@corp.example"]);
    assert_eq!(logon(&upn), (None, "alice@corp.example".into(), "pw".into()));
    let none = config(&["rdp://:pw@host"]);
    assert_eq!(logon(&none), (None, String::new(), "pw".into()));
}

#[test]
fn domain_option_wins() {
    let over_user = config(&["rdp://:pw@host", "-u", "CORP\\alice", "--domain", "LAB"]);
    assert_eq!(logon(&over_user), (Some("LAB".into()), "alice".into(), "pw".into()));
    let over_url = config(&["rdp://CORP%5Calice:pw@host", "-d", "LAB"]);
    assert_eq!(logon(&over_url), (Some("LAB".into()), "alice".into(), "pw".into()));
    let alone = config(&["rdp://alice:pw@host", "-d", "LAB"]);
    assert_eq!(logon(&alone), (Some("LAB".into()), "alice".into(), "pw".into()));
}

#[test]
fn url_password_comes_first() {
    // Whatever the environment holds, the URL's password is the one used.
    let cli = parse(&["rdp://alice:from%20url@host"]);
    let target = cli.connect.target().unwrap().unwrap();
    assert_eq!(cli.connect.password(&target).unwrap().expose(), "from url");
    // A user without a password in the URL is fine: the password comes from elsewhere.
    let target = parse(&["rdp://alice@host"]).connect.target().unwrap().unwrap();
    assert_eq!(target.username(), Some("alice"));
    assert!(target.password().is_none());
}

/// The one test that touches `RDP_PASSWORD` (the environment is the process's).
#[test]
fn password_from_environment() {
    let cli = parse(&["rdp://alice@host"]);
    let target = cli.connect.target().unwrap().unwrap();
    std::env::set_var(PASSWORD_ENV, "from env");
    let password = cli.connect.password(&target);
    let configured = cli.connect.client_config(&target, None).map(|c| logon(&c));
    std::env::remove_var(PASSWORD_ENV);
    assert_eq!(password.unwrap().expose(), "from env");
    assert_eq!(configured.unwrap(), (None, "alice".into(), "from env".into()));

    // Neither URL nor environment, and no terminal to ask on: the error says what to set.
    if !std::io::stdin().is_terminal() {
        let error = cli.connect.password(&target).unwrap_err().to_string();
        assert!(error.contains(PASSWORD_ENV), "{error}");
        assert!(error.contains("alice@host"), "{error}");
    }
}

#[test]
fn no_target_is_none_and_a_bad_one_an_error() {
    assert!(parse(&[]).connect.target().unwrap().is_none());
    let error = parse(&["host:99999"]).connect.target().unwrap_err().to_string();
    assert!(error.contains("port"), "{error}");
    let v6 = parse(&["[::1]:3390"]).connect.target().unwrap().unwrap();
    assert_eq!((v6.host(), v6.port()), ("::1", 3390));
}

#[test]
fn security_values() {
    let security = |args: &[&str]| config(args).connector_config();
    let tls = security(&["rdp://a:pw@host", "--security", "tls"]);
    assert!(tls.enable_tls && !tls.enable_credssp);
    let nla = security(&["rdp://a:pw@host", "--security", "nla"]);
    assert!(!nla.enable_tls && nla.enable_credssp);
    let any = security(&["rdp://a:pw@host", "--security", "any"]);
    assert!(any.enable_tls && any.enable_credssp);
    // Not given: the library's default.
    let default = security(&["rdp://a:pw@host"]);
    let library = ClientConfig::new("a", "pw").connector_config();
    assert_eq!(
        (default.enable_tls, default.enable_credssp),
        (library.enable_tls, library.enable_credssp)
    );

    let error = parse_error(&["--security", "rdp"]);
    assert!(error.contains("--security") && error.contains("rdp"), "{error}");
    assert_eq!(
        SecurityArg::Nla,
        parse(&["--security", "nla"]).connect.options.security.unwrap()
    );
}

#[test]
fn pins_parse_or_fail() {
    let cli = parse(&["--pin", PIN, "--pin", &PIN.replace(':', "").to_ascii_lowercase()]);
    let expected: Fingerprint = PIN.parse().unwrap();
    assert_eq!(cli.connect.options.pins, [expected, expected]);
    assert!(format!("{:?}", cli.connect.options.trust(None)).starts_with("Pinned(2)"));

    let short = parse_error(&["--pin", "AB:CD"]);
    assert!(short.contains("--pin") && short.contains("AB:CD"), "{short}");
    assert!(short.contains("32 bytes"), "{short}");
    let not_hex = parse_error(&["--pin", &PIN.replace("AA", "ZZ")]);
    assert!(not_hex.contains("--pin"), "{not_hex}");
    let missing = parse_error(&["--pin"]);
    assert!(missing.contains("--pin"), "{missing}");
    // A pin replaces known hosts: asking for both is a mistake.
    let both = parse_error(&["--pin", PIN, "--known-hosts", "/tmp/x"]);
    assert!(both.contains("cannot be used with"), "{both}");
}

#[test]
fn trust_choices() {
    let trust = |args: &[&str], ask: Option<AskFn>| format!("{:?}", parse(args).connect.options.trust(ask));
    let default = trust(&[], None);
    assert!(
        default.contains("path: None") && default.contains("Remember"),
        "{default}"
    );
    let file = trust(&["--known-hosts", "/etc/rdp_hosts"], None);
    assert!(file.contains("/etc/rdp_hosts") && file.contains("Remember"), "{file}");
    let refuse = trust(&["--on-first-use", "refuse"], None);
    assert!(refuse.contains("Refuse"), "{refuse}");
    let yes: AskFn = Arc::new(|_: &FirstContact| true);
    // The program's callback is the default; the option still wins.
    assert!(trust(&[], Some(yes.clone())).contains("Ask"));
    assert!(trust(&["--on-first-use", "remember"], Some(yes.clone())).contains("Remember"));
    assert!(trust(&["--on-first-use", "ask"], None).contains("Ask"));
    let error = parse_error(&["--on-first-use", "maybe"]);
    assert!(error.contains("--on-first-use"), "{error}");
}

#[test]
fn help_explains_every_option() {
    let help = Cli::command().render_long_help().to_string();
    for needle in [
        "[TARGET]",
        "rdp://[user[:password]@]host[:port]",
        "DOMAIN\\user",
        "-u, --user <USER>",
        "-d, --domain <DOMAIN>",
        "--security <MODE>",
        "--pin <SHA256>",
        "--known-hosts <PATH>",
        "--on-first-use <CHOICE>",
        "RDP_PASSWORD",
        "remember",
        "refuse",
        "nla",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
    let short = Cli::command().render_help().to_string();
    assert!(short.contains("--pin <SHA256>") && short.contains("SHA-256"), "{short}");
    Cli::command().debug_assert();
}

/// A refusal by the demo server's real TLS handshake, explained: found as a value, with both
/// fingerprints of a changed certificate.
#[test]
fn explain_refusals() -> async_rdp_demo_server::testing::TestResult {
    use async_rdp_demo_server::testing::{alongside, block_on};
    use async_rdp_demo_server::{Config, DemoServer};

    block_on(Duration::from_secs(60), async {
        let server = DemoServer::bind(Config::default()).await?;
        let addr = server.local_addr()?;
        let actual = Fingerprint::of(server.certificate());
        let dir = std::env::temp_dir().join(format!("async-rdp-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("known_hosts");
        std::fs::write(&file, format!("# a comment\n{addr} {PIN}\n"))?;
        let empty = dir.join("empty");
        std::fs::write(&empty, "")?;

        let url = format!("rdp://user:pw@{addr}");
        let refused = |args: Vec<String>| {
            let server = &server;
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let cli = parse(&args);
                let target = cli.connect.target()?.ok_or("no target")?;
                let config = cli.connect.client_config(&target, None)?;
                match alongside(server.serve_forever(), async_rdp::connect(&target, config)).await {
                    Ok(_) => Err::<String, async_rdp_demo_server::testing::BoxError>("connected".into()),
                    Err(e) => {
                        assert!(e.certificate_refused().is_some(), "{}", async_rdp::report(&e));
                        Ok(explain(&e))
                    }
                }
            }
        };

        let changed = refused(vec![url.clone(), "--known-hosts".into(), file.display().to_string()]).await?;
        assert!(changed.contains("CHANGED"), "{changed}");
        assert!(changed.contains(PIN), "known fingerprint missing: {changed}");
        assert!(
            changed.contains(&actual.to_string()),
            "presented fingerprint missing: {changed}"
        );
        assert!(changed.contains(&format!("{} line 2", file.display())), "{changed}");

        let pinned = refused(vec![url.clone(), "--pin".into(), PIN.into()]).await?;
        assert!(pinned.contains("matches no --pin"), "{pinned}");
        assert!(pinned.contains(PIN) && pinned.contains(&actual.to_string()), "{pinned}");

        let unknown = refused(vec![
            url.clone(),
            "--known-hosts".into(),
            empty.display().to_string(),
            "--on-first-use".into(),
            "refuse".into(),
        ])
        .await?;
        assert!(
            unknown.contains("not in") && unknown.contains(&actual.to_string()),
            "{unknown}"
        );
        assert_eq!(std::fs::read_to_string(&empty)?, "", "a refused server was remembered");

        // Any other error: the library's report.
        let other = async_rdp::Error::new(async_rdp::ErrorKind::InvalidInput, "parse target");
        assert_eq!(explain(&other), async_rdp::report(&other));

        std::fs::remove_dir_all(&dir)?;
        Ok(())
    })
}
