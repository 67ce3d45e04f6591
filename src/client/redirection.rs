//! Following a server redirection ([MS-RDPBCGR] 3.1.5.13): where it sends the client, and
//! what the client tells the new server so that it finds the session.
//!
//! [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/

use ironrdp_connector::ClientConnector;
use ironrdp_pdu::gcc::{ClientClusterData, RedirectionFlags, RedirectionVersion};
use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;

use crate::{Error, ErrorKind, Phase, Result, Target};

/// Where a redirection sends us: its target address, on the port we used.
pub(super) fn redirect_target(from: &Target, redirection: &ServerRedirectionPdu) -> Result<Target> {
    let host = redirection
        .target_net_address
        .clone()
        .or_else(|| {
            redirection
                .target_net_addresses
                .as_ref()
                .and_then(|a| a.first().cloned())
        })
        .or_else(|| redirection.target_fqdn.clone())
        .ok_or_else(|| {
            Error::new(ErrorKind::Connector, "redirection")
                .with_detail("the server redirected to a target without an address")
                .in_phase(Phase::Activation)
        })?;
    Ok(from.with_host(host.trim_end_matches('\0')))
}

/// Tells the redirected server which session we come for ([MS-RDPBCGR] 3.1.5.13.1).
pub(super) fn prepare_redirected(
    mut connector: ClientConnector,
    redirection: &ServerRedirectionPdu,
) -> ClientConnector {
    if let Some(info) = &redirection.load_balance_info {
        connector = connector.with_load_balance_info(String::from_utf8_lossy(info).into_owned());
    }
    if let Some(cookie) = &redirection.password {
        connector = connector.with_redirection_password_cookie(cookie.clone());
    }
    connector.with_cluster_data(ClientClusterData {
        flags: RedirectionFlags::REDIRECTION_SUPPORTED | RedirectionFlags::REDIRECTED_SESSION_FIELD_VALID,
        redirection_version: RedirectionVersion::V4,
        redirected_session_id: redirection.session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: the old `redirect_target` took the last `:`-separated part of `::1` as the
    /// port; the redirection keeps the port of the target the client used.
    #[test]
    fn a_redirection_keeps_the_port_the_client_used() {
        let redirection = |address: &str| ServerRedirectionPdu {
            target_net_address: Some(format!("{address}\0")),
            ..ServerRedirectionPdu::default()
        };
        let from: Target = "::1".parse().unwrap();
        let to = redirect_target(&from, &redirection("fe80::2")).unwrap();
        assert_eq!((to.host(), to.port()), ("fe80::2", 3389));
        let from: Target = "[::1]:3390".parse().unwrap();
        assert_eq!(
            redirect_target(&from, &redirection("10.0.0.2")).unwrap().to_string(),
            "10.0.0.2:3390"
        );
    }
}
