//! The connection drivers against the demo server (IronRDP's acceptor) over real loopback TCP
//! and real TLS: negotiation, TLS upgrade, NLA, and the rest of the connection sequence.

use async_rdp::connector::skip_connect_begin;
use async_rdp::ironrdp_connector::{ClientConnector, ConnectionOutcome};
use async_rdp::{ClientConfig, ErrorKind};
use async_rdp_demo_server::testing::{connect_with_drivers, TestResult};
use async_rdp_demo_server::{Config, DemoServer, Security};

fn server_config(security: Security) -> Config {
    Config {
        security,
        ..Config::default()
    }
}

/// Runs the client side of the whole connection sequence with the driver functions against a
/// fresh server; says whether the server accepted the connection.
async fn run(security: Security, config: ClientConfig) -> TestResult<(async_rdp::Result<ConnectionOutcome>, bool)> {
    let server = DemoServer::bind(server_config(security)).await?;
    let client = async { Ok(connect_with_drivers(&server, config).await?.1) };
    let (client, accepted) = futures::join!(client, server.accept());
    Ok((client, accepted.is_ok()))
}

#[async_std::test]
async fn tls_only_connection_completes() -> TestResult {
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
async fn nla_connection_completes() -> TestResult {
    let d = Config::default();
    let config = ClientConfig::new(&d.username, d.password.as_str());
    let (outcome, accepted) = run(Security::Nla, config).await?;
    assert!(matches!(outcome?, ConnectionOutcome::Connected(_)));
    assert!(accepted);
    Ok(())
}

#[async_std::test]
async fn nla_wrong_password_is_an_authentication_error() -> TestResult {
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
async fn nla_only_client_against_tls_only_server_names_the_protocol() -> TestResult {
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
