//! Connector errors as this crate's errors, with refused credentials told apart.

use ironrdp_connector::{ConnectorError, ConnectorErrorKind};

use crate::{Error, ErrorKind};

/// Wraps a connector error, classing a refusal of the credentials as
/// [`ErrorKind::Authentication`].
pub(crate) fn connector_error(context: &'static str, error: ConnectorError) -> Error {
    let kind = match error.kind() {
        ConnectorErrorKind::AccessDenied => ErrorKind::Authentication,
        ConnectorErrorKind::Credssp(e) if is_auth_failure(e) => ErrorKind::Authentication,
        _ => ErrorKind::Connector,
    };
    let detail = error.to_string();
    Error::new(kind, context).with_detail(detail).with_source(error)
}

fn is_auth_failure(error: &ironrdp_connector::sspi::Error) -> bool {
    use ironrdp_connector::sspi::credssp::NStatusCode as S;
    use ironrdp_connector::sspi::ErrorKind as K;
    // A server refusing the credentials reports an NTSTATUS in its TsRequest ([MS-CSSP]
    // 2.2.1); sspi surfaces it as `nstatus` on an otherwise generic error.
    const REFUSALS: [S; 12] = [
        S::WRONG_PASSWORD,
        S::LOGON_FAILURE,
        S::NO_SUCH_USER,
        S::ACCOUNT_RESTRICTION,
        S::INVALID_LOGON_HOURS,
        S::INVALID_WORKSTATION,
        S::PASSWORD_EXPIRED,
        S::ACCOUNT_DISABLED,
        S::LOGON_NOT_GRANTED,
        S::LOGON_TYPE_NOT_GRANTED,
        S::PASSWORD_MUST_CHANGE,
        S::ACCOUNT_LOCKED_OUT,
    ];
    matches!(
        error.error_type,
        K::LogonDenied | K::NoCredentials | K::UnknownCredentials | K::WrongPrincipalName | K::TimeSkew
    ) || error.nstatus.is_some_and(|status| {
        // sspi's own CredSSP server (IronRDP's) reports SEC_E_LOGON_DENIED with the NTSTATUS
        // customer bit pattern 0xC007030C rather than STATUS_LOGON_FAILURE.
        REFUSALS.contains(&status) || status == S(0xC007_030C)
    })
}
