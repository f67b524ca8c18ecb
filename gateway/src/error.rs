//! Why the gateway refused a request, and the one place refusals become HTTP
//! statuses. Every refusal is a 4xx with a short reason and a counter, and
//! shows in the log; a slow or broken bot is never a refusal (it gets an
//! apology).

use std::sync::LazyLock;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use doumi_runtime::throttle::LogThrottle;
use doumi_wechat::{crypto::CryptoError, envelope::EnvelopeError, inbound::ParseError};

/// Refusals answer whatever anyone sends to a public address: the first of
/// each reason is logged at once, then a line a minute with how many were
/// held back, so a flood of forged or malformed requests cannot flood the
/// log too (the counter still counts every one).
static LOGGED: LazyLock<LogThrottle> = LazyLock::new(LogThrottle::default);

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request's envelope: its signature, timestamp or safe-mode seal,
    /// or the message inside.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("no account is served at this path")]
    NoSuchAccount,
}

/// A message that opened but does not parse is refused like a bad envelope.
impl From<ParseError> for Refusal {
    fn from(error: ParseError) -> Self {
        Self::Envelope(EnvelopeError::BadMessage(error))
    }
}

impl Refusal {
    fn status(&self) -> StatusCode {
        use EnvelopeError as E;
        let Self::Envelope(error) = self else {
            return StatusCode::NOT_FOUND;
        };
        match error {
            E::Unsigned
            | E::BadSignature
            | E::StaleTimestamp
            | E::PlaintextRefused
            | E::Crypto(CryptoError::ValidateSignature | CryptoError::ValidateAppId) => {
                StatusCode::FORBIDDEN
            }
            E::RepeatedParameter | E::EncryptionNotConfigured | E::Crypto(_) | E::BadMessage(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// A short, stable label for metrics.
    fn reason(&self) -> &'static str {
        use EnvelopeError as E;
        let Self::Envelope(error) = self else {
            return "no_such_route";
        };
        match error {
            E::Unsigned => "unsigned",
            E::RepeatedParameter => "malformed",
            E::BadSignature => "bad_signature",
            E::StaleTimestamp => "stale_timestamp",
            E::PlaintextRefused => "plaintext_refused",
            E::EncryptionNotConfigured => "encryption_not_configured",
            E::Crypto(_) => "crypto",
            E::BadMessage(ParseError::Doctype) => "doctype",
            E::BadMessage(ParseError::TooDeep | ParseError::FieldTooLong) => "too_large",
            E::BadMessage(_) => "malformed",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        metrics::counter!(crate::metrics::REFUSALS, "reason" => self.reason()).increment(1);
        if let Self::Envelope(EnvelopeError::Crypto(error)) = &self {
            metrics::counter!(crate::metrics::CRYPTO_FAILURES, "code" => error.code().to_string())
                .increment(1);
        }
        if let Some(held_back) = LOGGED.admit(self.reason()) {
            tracing::warn!(reason = %self, held_back, "request refused");
        }
        let reason = match &self {
            // Parser details help an attacker more than an operator; the log has them.
            Self::Envelope(EnvelopeError::BadMessage(_)) => "malformed message".to_owned(),
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
pub fn count_other_refusals(response: Response) -> Response {
    let status = response.status();
    if status.is_client_error() && response.extensions().get::<Counted>().is_none() {
        let reason = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "no_such_route",
            StatusCode::REQUEST_TIMEOUT => "too_slow",
            _ => "malformed",
        };
        metrics::counter!(crate::metrics::REFUSALS, "reason" => reason).increment(1);
        if let Some(held_back) = LOGGED.admit(reason) {
            tracing::warn!(
                status = status.as_u16(),
                reason,
                held_back,
                "request refused"
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What WeChat (and the dashboards) see for each refusal: status,
    /// metric reason and body.
    #[tokio::test]
    async fn each_refusal_keeps_its_status_reason_and_text() {
        use EnvelopeError as E;
        let cases = [
            (
                Refusal::from(E::Unsigned),
                403,
                "unsigned",
                "missing signature, timestamp or nonce",
            ),
            (
                E::RepeatedParameter.into(),
                400,
                "malformed",
                "a query parameter is given twice",
            ),
            (
                E::BadSignature.into(),
                403,
                "bad_signature",
                "signature mismatch",
            ),
            (
                E::StaleTimestamp.into(),
                403,
                "stale_timestamp",
                "timestamp outside the accepted window",
            ),
            (
                E::PlaintextRefused.into(),
                403,
                "plaintext_refused",
                "plaintext messages are refused: this account is in safe mode",
            ),
            (
                E::EncryptionNotConfigured.into(),
                400,
                "encryption_not_configured",
                "encrypted message, but no EncodingAESKey is configured",
            ),
            (
                E::Crypto(CryptoError::ValidateSignature).into(),
                403,
                "crypto",
                "safe-mode message refused: -40001 msg_signature check failed",
            ),
            (
                E::Crypto(CryptoError::ValidateAppId).into(),
                403,
                "crypto",
                "safe-mode message refused: -40005 AppID in the message is not ours",
            ),
            (
                E::Crypto(CryptoError::DecryptAes).into(),
                400,
                "crypto",
                "safe-mode message refused: -40007 AES decryption failed",
            ),
            (
                ParseError::Doctype.into(),
                400,
                "doctype",
                "malformed message",
            ),
            (
                ParseError::TooDeep.into(),
                400,
                "too_large",
                "malformed message",
            ),
            (
                ParseError::Missing("MsgType").into(),
                400,
                "malformed",
                "malformed message",
            ),
            (
                Refusal::NoSuchAccount,
                404,
                "no_such_route",
                "no account is served at this path",
            ),
        ];
        for (refusal, status, reason, text) in cases {
            assert_eq!(refusal.reason(), reason, "{refusal:?}");
            let response = refusal.into_response();
            assert_eq!(response.status().as_u16(), status, "{reason}");
            assert!(response.extensions().get::<Counted>().is_some());
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&body), text, "{reason}");
        }
    }
}
