//! The catalog's one error vocabulary and the one place it becomes a gRPC
//! status: a code, a short message, and the `google.rpc` details other teams
//! branch on (`ErrorInfo` with a stable reason, `RetryInfo` where a retry can
//! help, `BadRequest` for malformed fields). The reasons are part of the
//! public contract and are listed in `doumi/catalog/v1/catalog.proto`.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{isbn::IsbnError, providers::ProviderError};

/// `ErrorInfo.domain` of every catalog error: reasons are unique within it.
pub const DOMAIN: &str = "catalog.doumi";

/// Suggested wait after a provider rate-limits us. No provider tells us its
/// window (Douban's errors 111/112 and HTTP 429 carry no Retry-After), and
/// Douban counts its limits per minute, so a minute is the shortest wait that
/// is not simply another hit on the same limit.
pub const RATE_LIMIT_RETRY: Duration = Duration::from_secs(60);

/// Suggested wait after an outage with nothing cached: long enough for one
/// of our own upstream retries to have happened, short enough for a reader.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);

/// Everything a catalog call can fail with. Validation errors name the
/// request field they are about; provider errors keep their cause for the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// An ISBN that does not parse or whose check digit is wrong.
    #[error("{0}")]
    InvalidIsbn(#[from] IsbnError),
    /// Any other malformed field (query, page_size, read_mask, id, isbns).
    #[error("{description}")]
    InvalidArgument {
        field: &'static str,
        description: String,
    },
    /// A page token this service did not issue for this query.
    #[error("page_token is not one this service issued for this query")]
    InvalidPageToken,
    /// More ISBNs than one batch may carry.
    #[error("at most {max} ISBNs per batch, got {got}")]
    BatchTooLarge { max: usize, got: usize },
    /// What the providers said; `subject` names the book for NOT_FOUND.
    #[error("{error}")]
    Provider {
        error: ProviderError,
        subject: String,
    },
}

impl CatalogError {
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            description: description.into(),
        }
    }

    pub fn provider(error: ProviderError, subject: impl Into<String>) -> Self {
        Self::Provider {
            error,
            subject: subject.into(),
        }
    }

    /// The stable `ErrorInfo.reason`: what clients branch on, never the text.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidIsbn(_) => "INVALID_ISBN",
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::BatchTooLarge { .. } => "BATCH_TOO_LARGE",
            Self::Provider { error, .. } => match error {
                ProviderError::NotFound => "BOOK_NOT_FOUND",
                ProviderError::RateLimited(_) => "PROVIDER_RATE_LIMITED",
                ProviderError::Rejected(_) => "PROVIDER_KEY_REFUSED",
                ProviderError::Unavailable(_) | ProviderError::TimedOut(_) => {
                    "PROVIDERS_UNAVAILABLE"
                }
                ProviderError::CircuitOpen(..) => "CIRCUIT_OPEN",
                ProviderError::DeadlineExceeded => "DEADLINE_EXCEEDED",
                ProviderError::Unsupported => "NOT_SUPPORTED",
            },
        }
    }

    /// The gRPC status code. Codes are unchanged from before details existed
    /// (a refused apikey stays UNAVAILABLE): clients that read only the code
    /// keep working, and the reason tells the permanent failure apart.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidIsbn(_)
            | Self::InvalidArgument { .. }
            | Self::InvalidPageToken
            | Self::BatchTooLarge { .. } => Code::InvalidArgument,
            Self::Provider { error, .. } => match error {
                ProviderError::NotFound => Code::NotFound,
                ProviderError::RateLimited(_) => Code::ResourceExhausted,
                ProviderError::Rejected(_)
                | ProviderError::Unavailable(_)
                | ProviderError::TimedOut(_)
                | ProviderError::CircuitOpen(..) => Code::Unavailable,
                ProviderError::DeadlineExceeded => Code::DeadlineExceeded,
                ProviderError::Unsupported => Code::Unimplemented,
            },
        }
    }

    /// The short message for the caller. Provider causes (apikeys, upstream
    /// bodies) stay in the log.
    fn message(&self) -> String {
        match self {
            Self::Provider { error, subject } => match error {
                ProviderError::NotFound => subject.clone(),
                ProviderError::RateLimited(_) => {
                    "the book provider is rate-limiting us, try again later".to_owned()
                }
                ProviderError::Rejected(_) => {
                    "the book provider refused our credentials; retrying will not help".to_owned()
                }
                ProviderError::Unavailable(_) | ProviderError::TimedOut(_) => {
                    "the book provider is unavailable and nothing is cached".to_owned()
                }
                ProviderError::CircuitOpen(provider, _) => {
                    format!("{provider} is failing and nothing is cached")
                }
                ProviderError::DeadlineExceeded => {
                    "the caller's deadline passed before an answer".to_owned()
                }
                ProviderError::Unsupported => {
                    "no configured book provider answers this kind of request".to_owned()
                }
            },
            other => other.to_string(),
        }
    }

    /// The details every status of this cause carries.
    fn details(&self) -> ErrorDetails {
        let mut metadata = HashMap::new();
        let mut details = ErrorDetails::new();
        match self {
            Self::InvalidIsbn(error) => {
                details.add_bad_request_violation("isbn", error.to_string());
            }
            Self::InvalidArgument { field, description } => {
                details.add_bad_request_violation(*field, description.clone());
            }
            Self::InvalidPageToken => {
                details.add_bad_request_violation("page_token", self.to_string());
            }
            Self::BatchTooLarge { max, .. } => {
                metadata.insert("max".to_owned(), max.to_string());
                details.add_bad_request_violation("isbns", self.to_string());
            }
            Self::Provider { error, .. } => match error {
                ProviderError::RateLimited(_) => {
                    details.set_retry_info(Some(RATE_LIMIT_RETRY));
                }
                ProviderError::Unavailable(_) | ProviderError::TimedOut(_) => {
                    details.set_retry_info(Some(UNAVAILABLE_RETRY));
                }
                ProviderError::CircuitOpen(provider, cooldown) => {
                    metadata.insert("provider".to_owned(), (*provider).to_owned());
                    details.set_retry_info(Some(*cooldown));
                }
                ProviderError::NotFound
                | ProviderError::Rejected(_)
                | ProviderError::DeadlineExceeded
                | ProviderError::Unsupported => {}
            },
        }
        details.set_error_info(self.reason(), DOMAIN, metadata);
        details
    }

    /// The status the caller gets.
    pub fn to_status(&self) -> Status {
        Status::with_error_details(self.code(), self.message(), self.details())
    }

    /// The same status as a `google.rpc.Status` message, for a batch item:
    /// exactly what the single call would have returned.
    pub fn to_rpc_status(&self) -> tonic_types::pb::Status {
        use prost::Message;
        let status = self.to_status();
        // with_error_details encodes its google.rpc.Status into the details
        // bytes; decoding them back cannot fail, but a fallback keeps the
        // code and message even if it ever did.
        tonic_types::pb::Status::decode(status.details()).unwrap_or_else(|_| {
            tonic_types::pb::Status {
                code: status.code() as i32,
                message: status.message().to_owned(),
                details: Vec::new(),
            }
        })
    }
}

impl From<CatalogError> for Status {
    fn from(error: CatalogError) -> Self {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;
    use crate::isbn::Isbn13;

    fn bad_isbn() -> CatalogError {
        match Isbn13::parse("9787121139513") {
            Err(error) => CatalogError::InvalidIsbn(error),
            Ok(isbn) => panic!("{isbn} should not parse"),
        }
    }

    fn provider(error: ProviderError) -> CatalogError {
        CatalogError::provider(error, "no book with ISBN 9787121139512")
    }

    /// Code, reason, retry delay and the field a BadRequest names.
    type Expected = (Code, &'static str, Option<Duration>, Option<&'static str>);

    #[test]
    fn every_cause_has_its_code_reason_and_details() {
        let cases: Vec<(CatalogError, Expected)> = vec![
            (
                bad_isbn(),
                (Code::InvalidArgument, "INVALID_ISBN", None, Some("isbn")),
            ),
            (
                CatalogError::invalid("page_size", "page_size is negative"),
                (
                    Code::InvalidArgument,
                    "INVALID_ARGUMENT",
                    None,
                    Some("page_size"),
                ),
            ),
            (
                CatalogError::InvalidPageToken,
                (
                    Code::InvalidArgument,
                    "INVALID_PAGE_TOKEN",
                    None,
                    Some("page_token"),
                ),
            ),
            (
                CatalogError::BatchTooLarge { max: 50, got: 51 },
                (
                    Code::InvalidArgument,
                    "BATCH_TOO_LARGE",
                    None,
                    Some("isbns"),
                ),
            ),
            (
                provider(ProviderError::NotFound),
                (Code::NotFound, "BOOK_NOT_FOUND", None, None),
            ),
            (
                provider(ProviderError::RateLimited("112".into())),
                (
                    Code::ResourceExhausted,
                    "PROVIDER_RATE_LIMITED",
                    Some(RATE_LIMIT_RETRY),
                    None,
                ),
            ),
            (
                provider(ProviderError::Rejected("104".into())),
                (Code::Unavailable, "PROVIDER_KEY_REFUSED", None, None),
            ),
            (
                provider(ProviderError::Unavailable("500".into())),
                (
                    Code::Unavailable,
                    "PROVIDERS_UNAVAILABLE",
                    Some(UNAVAILABLE_RETRY),
                    None,
                ),
            ),
            (
                provider(ProviderError::CircuitOpen("douban", Duration::from_secs(7))),
                (
                    Code::Unavailable,
                    "CIRCUIT_OPEN",
                    Some(Duration::from_secs(7)),
                    None,
                ),
            ),
            (
                provider(ProviderError::DeadlineExceeded),
                (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", None, None),
            ),
            (
                provider(ProviderError::Unsupported),
                (Code::Unimplemented, "NOT_SUPPORTED", None, None),
            ),
        ];
        for (error, (code, reason, retry, field)) in cases {
            let status = error.to_status();
            assert_eq!(status.code(), code, "{error:?}");
            let details: ErrorDetails = status.get_error_details();
            let info = details
                .error_info()
                .cloned()
                .expect("every status has an ErrorInfo");
            assert_eq!(info.reason, reason, "{error:?}");
            assert_eq!(info.domain, DOMAIN, "{error:?}");
            assert_eq!(
                details.retry_info().and_then(|r| r.retry_delay),
                retry,
                "{error:?}"
            );
            let violated = details
                .bad_request()
                .and_then(|b| b.field_violations.first())
                .map(|v| v.field.clone());
            assert_eq!(violated.as_deref(), field, "{error:?}");
        }
    }

    #[test]
    fn a_bad_isbn_names_the_field_with_the_isbn_rule_it_broke() {
        let error = bad_isbn();
        let details = error.to_status().get_error_details();
        let violation = details
            .bad_request()
            .and_then(|b| b.field_violations.first().cloned())
            .unwrap_or_default();
        assert_eq!(violation.field, "isbn");
        assert_eq!(violation.description, error.to_string());
        assert!(!violation.description.is_empty());
    }

    #[test]
    fn an_open_circuit_names_its_provider() {
        let status =
            provider(ProviderError::CircuitOpen("douban", Duration::from_secs(3))).to_status();
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(
            info.metadata.get("provider").map(String::as_str),
            Some("douban")
        );
    }

    #[test]
    fn causes_stay_in_the_log_not_in_the_reply() {
        let status =
            provider(ProviderError::Rejected("apikey_is_blocked: 0df9".into())).to_status();
        assert!(!status.message().contains("0df9"));
        assert!(!format!("{:?}", status.get_error_details()).contains("0df9"));
    }

    #[test]
    fn a_batch_item_carries_the_single_calls_status() {
        let error = provider(ProviderError::RateLimited("112".into()));
        let single = error.to_status();
        let item = error.to_rpc_status();
        assert_eq!(item.code, single.code() as i32);
        assert_eq!(item.message, single.message());
        let types: Vec<&str> = item.details.iter().map(|d| d.type_url.as_str()).collect();
        assert_eq!(
            types,
            [
                "type.googleapis.com/google.rpc.RetryInfo",
                "type.googleapis.com/google.rpc.ErrorInfo"
            ],
        );
    }
}
