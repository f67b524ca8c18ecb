//! The HTTP side every provider shares: one reqwest client per provider with
//! its timeout, a cap on response size, and transport failures as
//! [`ProviderError`] (never with the URL, which may carry an apikey).

use std::time::Duration;

use crate::providers::provider::ProviderError;

/// Book JSON is a few KiB; anything this large is not a book.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A response read in full: status and body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes the body, calling undecodable JSON what it is: a broken upstream.
    pub fn json<T: serde::de::DeserializeOwned>(&self, provider: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::Unavailable(format!("undecodable JSON from {provider}: {e}"))
        })
    }
}

/// An HTTP client for one provider; cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    provider: &'static str,
}

impl HttpClient {
    /// `user_agent`: what doumi says it is to the provider (see
    /// `Source::user_agent`).
    pub fn new(
        provider: &'static str,
        user_agent: &str,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .build()?;
        Ok(Self { http, provider })
    }

    /// GETs `url` with `query`, reading at most [`MAX_BODY_BYTES`].
    pub async fn get(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<RawResponse, ProviderError> {
        let mut response = self
            .http
            .get(url)
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ProviderError::Unavailable(format!(
                    "{} answered more than {MAX_BODY_BYTES} bytes",
                    self.provider
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse { status, body })
    }

    fn transport_error(&self, error: &reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            return ProviderError::TimedOut(self.provider.to_string());
        }
        let what = if error.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        ProviderError::Unavailable(format!("{} {what}", self.provider))
    }
}
