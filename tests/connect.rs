//! The connection drivers against the demo server (IronRDP's acceptor) over real loopback TCP
//! and real TLS: negotiation, TLS upgrade, NLA, and the rest of the connection sequence.

use async_rdp::connector::{connect_begin, connect_finalize, mark_as_upgraded, skip_connect_begin, NoNetworkClient};
use async_rdp::framing::LocalFramed;
use async_rdp::ironrdp_connector::{ClientConnector, ConnectionOutcome};
use async_rdp::{tls, ClientConfig, ErrorKind};
use async_rdp_demo_server::{Config, DemoServer, Security};
use async_std::net::TcpStream;

type BoxError = Box<dyn std::error::Error>;

/// Runs the client side of the whole connection sequence with the driver functions.
async fn client(server: &DemoServer, config: ClientConfig) -> async_rdp::Result<ConnectionOutcome> {
    let addr = server.local_addr().map_err(|e| async_rdp::Error::io("test", e))?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| async_rdp::Error::io("tcp connect", e))?;
    let local = tcp.local_addr().map_err(|e| async_rdp::Error::io("tcp connect", e))?;
    let mut connector = ClientConnector::new(config.connector_config(), local);
    let mut framed = LocalFramed::new(tcp);

    let should_upgrade = connect_begin(&mut framed, &mut connector).await?;
    let verifier = async_rdp::Trust::pinned([async_rdp::trust::Fingerprint::of(server.certificate())])
        .verifier(&async_rdp::Target::new("127.0.0.1", 3389))?;
    let upgraded = tls::upgrade(framed, "127.0.0.1", verifier).await?;
    let token = mark_as_upgraded(should_upgrade, &mut connector)?;
    let mut framed = LocalFramed::new(upgraded.stream);
    connect_finalize(
        &mut framed,
        connector,
        token,
        &mut NoNetworkClient,
        "127.0.0.1".into(),
        upgraded.server_public_key,
        None,
    )
    .await
}

fn server_config(security: Security) -> Config {
    Config {
        security,
        ..Config::default()
    }
}

async fn run(
    security: Security,
    config: ClientConfig,
) -> Result<(async_rdp::Result<ConnectionOutcome>, bool), BoxError> {
    let server = DemoServer::bind(server_config(security)).await?;
    let (client, accepted) = futures::join!(client(&server, config), server.accept());
    Ok((client, accepted.is_ok()))
}

#[async_std::test]
async fn tls_only_connection_completes() -> Result<(), BoxError> {
    let d = Config::default();
    let config = ClientConfig::new(&d.username, d.password.as_str())
        .with_security(async_rdp::Security::Tls)
        .with_desktop_size(1024, 768);
    let (outcome, accepted) = run(Security::Tls, config).await?;
    let ConnectionOutcome::Connected(result) = outcome? else {
        return Err("expected a connection, got a redirection".into());
    };
    assert!(accepted);
    // The demo server honours its own size, not the client's request.
    assert_eq!((result.desktop_size.width, result.desktop_size.height), (1280, 720));
    Ok(())
}

#[async_std::test]
async fn nla_connection_completes() -> Result<(), BoxError> {
    let d = Config::default();
    let config = ClientConfig::new(&d.username, d.password.as_str());
    let (outcome, accepted) = run(Security::Nla, config).await?;
    assert!(matches!(outcome?, ConnectionOutcome::Connected(_)));
    assert!(accepted);
    Ok(())
}

#[async_std::test]
async fn nla_wrong_password_is_an_authentication_error() -> Result<(), BoxError> {
    let d = Config::default();
    let config = ClientConfig::new(&d.username, "not-the-password");
    let (outcome, accepted) = run(Security::Nla, config).await?;
    let err = outcome.err().ok_or("a wrong password connected")?;
    assert_eq!(err.kind(), ErrorKind::Authentication, "{}", async_rdp::report(&err));
    assert_eq!(err.phase(), Some(async_rdp::Phase::Nla));
    assert!(!accepted);
    Ok(())
}

#[async_std::test]
async fn nla_only_client_against_tls_only_server_names_the_protocol() -> Result<(), BoxError> {
    let d = Config::default();
    let config = ClientConfig::new(&d.username, d.password.as_str()).with_security(async_rdp::Security::Nla);
    let (outcome, _) = run(Security::Tls, config).await?;
    let err = outcome.err().ok_or("connected without a common protocol")?;
    assert_eq!(err.phase(), Some(async_rdp::Phase::Negotiation));
    let text = async_rdp::report(&err);
    assert!(text.to_lowercase().contains("negotiation"), "{text}");
    Ok(())
}

#[test]
fn tokens_refuse_a_connector_in_the_wrong_state() {
    let config = ClientConfig::new("u", "p").connector_config();
    let mut connector = ClientConnector::new(config, "127.0.0.1:1".parse().expect("address"));
    let err = skip_connect_begin(&mut connector).expect_err("a fresh connector is not ready for TLS");
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}
