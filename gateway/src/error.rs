//! Why the gateway refused a request, and the one place refusals become HTTP
//! statuses. Every refusal is a 4xx with a short reason, a log line and a
//! counter; a slow or broken bot is never a refusal (it gets an apology).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use doumi_wechat::{crypto::CryptoError, inbound::ParseError};

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("missing signature, timestamp or nonce")]
    Unsigned,
    #[error("signature mismatch")]
    BadSignature,
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    #[error("plaintext messages are refused: this account is in safe mode")]
    PlaintextRefused,
    #[error("encrypted message, but no EncodingAESKey is configured")]
    EncryptionNotConfigured,
    #[error("safe-mode message refused: {0}")]
    Crypto(#[from] CryptoError),
    #[error("not a WeChat message: {0}")]
    BadMessage(#[from] ParseError),
    #[error("no account is served at this path")]
    NoSuchAccount,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unsigned
            | Self::BadSignature
            | Self::StaleTimestamp
            | Self::PlaintextRefused
            | Self::Crypto(CryptoError::ValidateSignature | CryptoError::ValidateAppId) => {
                StatusCode::FORBIDDEN
            }
            Self::EncryptionNotConfigured | Self::Crypto(_) | Self::BadMessage(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::NoSuchAccount => StatusCode::NOT_FOUND,
        }
    }

    /// A short, stable label for metrics.
    fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::PlaintextRefused => "plaintext_refused",
            Self::EncryptionNotConfigured => "encryption_not_configured",
            Self::Crypto(_) => "crypto",
            Self::BadMessage(ParseError::Doctype) => "doctype",
            Self::BadMessage(ParseError::TooDeep | ParseError::FieldTooLong) => "too_large",
            Self::BadMessage(_) => "malformed",
            Self::NoSuchAccount => "no_such_route",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        metrics::counter!(crate::metrics::REFUSALS, "reason" => self.reason()).increment(1);
        if let Self::Crypto(error) = &self {
            metrics::counter!(crate::metrics::CRYPTO_FAILURES, "code" => error.code().to_string())
                .increment(1);
        }
        tracing::warn!(reason = %self, "request refused");
        let reason = match &self {
            // Parser details help an attacker more than an operator; the log has them.
            Self::BadMessage(_) => "malformed message".to_owned(),
            other => other.to_string(),
        };
        let mut response = (self.status(), reason).into_response();
        response.extensions_mut().insert(Counted);
        response
    }
}

/// Marks a response whose refusal was already logged and counted.
#[derive(Debug, Clone, Copy)]
struct Counted;

/// Logs and counts the refusals axum makes before a handler runs (a body
/// over the limit, a query that does not parse, an unknown path or method),
/// so every 4xx leaves a trace, not only ours.
pub async fn count_other_refusals(response: Response) -> Response {
    let status = response.status();
    if status.is_client_error() && response.extensions().get::<Counted>().is_none() {
        let reason = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "no_such_route",
            StatusCode::REQUEST_TIMEOUT => "too_slow",
            _ => "malformed",
        };
        metrics::counter!(crate::metrics::REFUSALS, "reason" => reason).increment(1);
        tracing::warn!(status = status.as_u16(), reason, "request refused");
    }
    response
}
