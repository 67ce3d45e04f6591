//! Runs the connection sequence step by step with the low-level drivers and prints how long
//! each phase took: TCP, X.224 negotiation, TLS, NLA, activation.
//!
//! ```text
//! cargo run --example connect                                   # in-process demo server
//! cargo run --example connect -- rdp://user@host:3389 --pin AB:CD:...
//! cargo run --example connect -- --help
//! ```
//!
//! Against a real server, the certificate is checked as the other examples check it: against
//! known hosts (remembered on first contact, refused if it changes; `--on-first-use refuse`
//! or `ask` to decide otherwise), or pinned with `--pin <SHA-256>`. A refusal prints the
//! fingerprint, so that you can check it and pin it.

mod common;

use std::time::Duration;

use async_rdp::connector::{connect_begin, connect_finalize, mark_as_upgraded, perform_credssp, NoNetworkClient};
use async_rdp::framing::LocalFramed;
use async_rdp::ironrdp_connector::{ClientConnector, ConnectionOutcome};
use async_rdp::trust::Fingerprint;
use async_rdp::{net, tls, ClientConfig, Target, Trust};
use async_rdp_cli::ConnectArgs;
use clap::Parser as _;
use common::Phases;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the connection sequence step by step (TCP, X.224 negotiation, TLS, NLA, activation)
/// against an RDP server, or without TARGET an in-process demo server, and prints how long each
/// phase took.
#[derive(clap::Parser)]
#[command(name = "connect")]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
}

fn main() {
    let cli = Cli::parse();
    common::main(run(cli));
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.connect.target()? {
        Some(target) => {
            let config = cli.connect.client_config(&target, None)?;
            let trust = config.trust().clone();
            connect(&target, config, trust).await
        }
        None => {
            let config = async_rdp_demo_server::Config::default();
            let server = async_rdp_demo_server::DemoServer::bind(config.clone())
                .await
                .map_err(|e| e.to_string())?;
            let addr = server.local_addr().map_err(|e| e.to_string())?;
            println!("demo server on {addr} (NLA, user {:?})", config.username);
            let target = Target::new(addr.ip().to_string(), addr.port());
            let client = ClientConfig::new(&config.username, config.password.as_str());
            let trust = Trust::pinned([Fingerprint::of(server.certificate())]);
            let (client, served) = futures::join!(connect(&target, client, trust), server.accept());
            served.map_err(|e| format!("demo server: {}", async_rdp::report(&e)))?;
            client
        }
    }
}

async fn connect(target: &Target, config: ClientConfig, trust: Trust) -> Result<(), String> {
    let report = |e: async_rdp::Error| async_rdp::report(&e);
    let mut phases = Phases::start();
    println!("connecting to {target}");

    let tcp = net::connect(&target.to_string(), TIMEOUT).await.map_err(report)?;
    phases.done("tcp");
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let mut connector = ClientConnector::new(config.connector_config(), local);
    let mut framed = LocalFramed::new(tcp);

    let should_upgrade = net::with_timeout(TIMEOUT, "negotiation", connect_begin(&mut framed, &mut connector))
        .await
        .map_err(report)?;
    phases.done("negotiation");

    let verifier = trust.verifier(target).map_err(report)?;
    let upgraded = net::with_timeout(TIMEOUT, "tls", tls::upgrade(framed, target.host(), verifier))
        .await
        .map_err(|e| async_rdp_cli::explain(&e))?;
    println!(
        "  server certificate SHA-256 {}",
        Fingerprint::of(&upgraded.server_certificate)
    );
    phases.done("tls");
    let token = mark_as_upgraded(should_upgrade, &mut connector).map_err(report)?;
    let mut framed = LocalFramed::new(upgraded.stream);
    let mut network = NoNetworkClient;

    if connector.should_perform_credssp() {
        let nla = perform_credssp(
            &mut framed,
            &mut connector,
            &mut network,
            target.host().into(),
            upgraded.server_public_key.clone(),
            None,
        );
        net::with_timeout(TIMEOUT, "nla", nla).await.map_err(report)?;
        phases.done("nla");
    }

    let finalize = connect_finalize(
        &mut framed,
        connector,
        token,
        &mut network,
        target.host().into(),
        upgraded.server_public_key,
        None,
    );
    match net::with_timeout(TIMEOUT, "activation", finalize)
        .await
        .map_err(report)?
    {
        ConnectionOutcome::Connected(result) => {
            phases.done("activation");
            println!(
                "connected: desktop {}x{}, share id {:#x}",
                result.desktop_size.width, result.desktop_size.height, result.share_id
            );
        }
        ConnectionOutcome::Redirected(redirection) => {
            println!("server redirects to session {}", redirection.session_id);
        }
    }
    framed.close().await.map_err(report)?;
    Ok(())
}
