//! HTTP client for Douban API v2 or any server that speaks its book paths
//! (self-hosted mirrors are how most teams reach Douban today).

use std::time::{Duration, SystemTime};

use doumi_proto::catalog::v1::Book;
use secrecy::{ExposeSecret, SecretString};

use super::{
    classify_error,
    model::{DoubanBook, DoubanSearch},
};
use crate::{
    book,
    isbn::Isbn13,
    provider::{BookProvider, ProviderError, SearchPage},
};

/// Douban's JSON is a few KiB; anything this large is not a book.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Where and how to reach Douban.
#[derive(Debug, Clone)]
pub struct DoubanSettings {
    /// e.g. `https://api.douban.com` or a mirror; no trailing slash.
    pub base_url: String,
    pub apikey: Option<SecretString>,
    /// Budget for one whole request, connect to last byte.
    pub timeout: Duration,
}

/// A Douban v2 client; cheap to clone.
#[derive(Debug, Clone)]
pub struct DoubanClient {
    http: reqwest::Client,
    settings: DoubanSettings,
}

impl DoubanClient {
    pub fn new(settings: DoubanSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("doumi/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout.min(Duration::from_secs(2)))
            .timeout(settings.timeout)
            .build()?;
        Ok(Self { http, settings })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.settings.base_url);
        let mut request = self.http.get(&url).query(query);
        if let Some(apikey) = &self.settings.apikey {
            request = request.query(&[("apikey", apikey.expose_secret())]);
        }
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ProviderError::Unavailable(format!(
                    "response from {path} exceeds {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(classify_error(status.as_u16(), &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Unavailable(format!("undecodable JSON from {path}: {e}")))
    }
}

fn transport_error(error: reqwest::Error) -> ProviderError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ProviderError::Unavailable(format!("douban {what}"))
}

#[tonic::async_trait]
impl BookProvider for DoubanClient {
    fn name(&self) -> &'static str {
        "douban"
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        let raw: DoubanBook = self.get_json(&format!("/v2/book/isbn/{isbn}"), &[]).await?;
        if raw.title.is_empty() {
            return Err(ProviderError::Unavailable(
                "douban answered a book without a title".to_owned(),
            ));
        }
        Ok(book::from_douban(raw, self.name(), SystemTime::now()))
    }

    async fn search(
        &self,
        query: &str,
        start: u32,
        count: u32,
    ) -> Result<SearchPage, ProviderError> {
        let params = [
            ("q", query.to_owned()),
            ("start", start.to_string()),
            ("count", count.to_string()),
        ];
        let raw: DoubanSearch = self.get_json("/v2/book/search", &params).await?;
        let now = SystemTime::now();
        Ok(SearchPage {
            total: raw.total,
            books: raw
                .books
                .into_iter()
                .filter(|b| !b.title.is_empty())
                .map(|b| book::from_douban(b, self.name(), now))
                .collect(),
        })
    }
}
