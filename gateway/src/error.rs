//! Why the gateway refused a request, and the one place refusals become HTTP
//! statuses. Every refusal is a 4xx with a short reason and a log line; a
//! slow or broken bot is never a refusal (it gets an apology reply instead).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::inbound::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("missing signature, timestamp or nonce")]
    Unsigned,
    #[error("signature mismatch")]
    BadSignature,
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    #[error("not a WeChat message: {0}")]
    BadMessage(#[from] ParseError),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unsigned | Self::BadSignature | Self::StaleTimestamp => StatusCode::FORBIDDEN,
            Self::BadMessage(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::warn!(reason = %self, "request refused");
        let reason = match &self {
            // Parser details help an attacker more than an operator; the log has them.
            Self::BadMessage(_) => "malformed message".to_owned(),
            other => other.to_string(),
        };
        (self.status(), reason).into_response()
    }
}
