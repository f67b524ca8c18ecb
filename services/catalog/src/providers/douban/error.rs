//! Douban's error body `{"msg","code","request"}` and what each code means for
//! us: "not found" is an answer, an apikey or rate-limit problem is not.

use serde::Deserialize;

use crate::providers::provider::ProviderError;

/// Douban's error JSON. `msg` may carry detail after a colon
/// (`"rate_limit_exceeded2: 111.202.166.3"`); `code` is what counts.
#[derive(Debug, Clone, Deserialize)]
pub struct DoubanErrorBody {
    #[serde(default)]
    pub msg: String,
    pub code: i64,
}

impl DoubanErrorBody {
    /// The token before the first colon, e.g. `rate_limit_exceeded2`.
    pub fn kind(&self) -> &str {
        self.msg.split(':').next().unwrap_or_default().trim()
    }
}

/// Maps a failed response (HTTP status and raw body) to a provider error.
pub fn classify_error(status: u16, body: &[u8]) -> ProviderError {
    let Ok(error) = serde_json::from_slice::<DoubanErrorBody>(body) else {
        return match status {
            403 => ProviderError::Rejected(
                "HTTP 403 without a Douban error body (blocked at the edge)".to_owned(),
            ),
            429 => ProviderError::RateLimited("HTTP 429".to_owned()),
            _ => ProviderError::Unavailable(format!("HTTP {status} without a Douban error body")),
        };
    };
    let detail = format!("douban {} {}", error.code, error.kind());
    match error.code {
        6000 => ProviderError::NotFound,
        111 | 112 => ProviderError::RateLimited(detail),
        100 | 103 | 104 | 105 | 106 | 109 | 1000 => ProviderError::Rejected(detail),
        _ => ProviderError::Unavailable(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/douban/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn recorded_error_bodies_map_as_specified() {
        let cases = [
            (
                "douban_error_6000_book_not_found_isbn.json",
                404,
                "NotFound",
            ),
            ("douban_error_6000_book_not_found_id.json", 404, "NotFound"),
            (
                "douban_error_112_rate_limit_exceeded2.json",
                400,
                "RateLimited",
            ),
            ("douban_error_104_invalid_apikey.json", 403, "Rejected"),
            ("douban_error_105_apikey_is_blocked.json", 400, "Rejected"),
            (
                "douban_error_100_invalid_request_scheme.json",
                400,
                "Rejected",
            ),
        ];
        for (file, status, want) in cases {
            let got = classify_error(status, &fixture(file));
            assert!(format!("{got:?}").starts_with(want), "{file}: {got:?}");
        }
    }

    #[test]
    fn every_code_the_issue_names_is_a_provider_failure() {
        let body = |code: i64, msg: &str| {
            format!(
                r#"{{"msg":"{msg}","code":{code},"request":"GET \/v2\/book\/isbn\/9787121139512"}}"#
            )
        };
        let cases = [
            (104, "invalid_apikey", 403, "Rejected"),
            (105, "apikey_is_blocked: 0df9", 400, "Rejected"),
            (109, "invalid_credencial2", 403, "Rejected"),
            (111, "rate_limit_exceeded1", 400, "RateLimited"),
            (112, "rate_limit_exceeded2: 1.2.3.4", 400, "RateLimited"),
            (6000, "book_not_found", 404, "NotFound"),
        ];
        for (code, msg, status, want) in cases {
            let got = classify_error(status, body(code, msg).as_bytes());
            assert!(format!("{got:?}").starts_with(want), "{code}: {got:?}");
        }
    }

    #[test]
    fn rate_limit_detail_after_the_colon_is_dropped() {
        let body: DoubanErrorBody =
            serde_json::from_slice(&fixture("douban_error_112_rate_limit_exceeded2.json")).unwrap();
        assert_eq!(body.kind(), "rate_limit_exceeded2");
    }

    #[test]
    fn html_403_and_bare_5xx_are_provider_failures_not_not_found() {
        let html = b"<html><body><center>dae</center></body></html>";
        assert!(matches!(
            classify_error(403, html),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            classify_error(500, b"oops"),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            classify_error(404, b""),
            ProviderError::Unavailable(_)
        ));
    }
}
