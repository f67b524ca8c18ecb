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
    isbn::Isbn13,
    key::DoubanId,
    providers::book,
    providers::http::HttpClient,
    providers::provider::{
        Ask, BookProvider, ProviderError, ProviderKind, SearchPage, SearchQuery,
    },
};

/// Where to reach Douban.
#[derive(Debug, Clone)]
pub struct DoubanSettings {
    /// e.g. `https://api.douban.com` or a mirror; no trailing slash.
    pub base_url: String,
    pub apikey: Option<SecretString>,
    /// Time for one Douban request; `None` = the upstream timeout every
    /// provider gets.
    pub timeout: Option<Duration>,
}

impl DoubanSettings {
    /// Time allowed for one Douban request unless configured: Douban is asked
    /// first and WeChat's retries give a message ~15 s, so a 7 s answer must
    /// still get through; the caller's deadline, when shorter, rules.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(8);
}

/// A Douban v2 client; cheap to clone.
#[derive(Debug, Clone)]
pub struct DoubanClient {
    http: HttpClient,
    settings: DoubanSettings,
}

impl DoubanClient {
    pub fn new(settings: DoubanSettings, http: HttpClient) -> Self {
        Self { http, settings }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.settings.base_url);
        let mut query = query.to_vec();
        if let Some(apikey) = &self.settings.apikey {
            query.push(("apikey", apikey.expose_secret()));
        }
        let response = self.http.get(&url, &query).await?;
        if !response.is_success() {
            return Err(classify_error(response.status, &response.body));
        }
        response.json(self.name())
    }

    fn to_book(&self, raw: DoubanBook) -> Result<Book, ProviderError> {
        if raw.title.is_empty() {
            return Err(ProviderError::Unavailable(
                "douban answered a book without a title".to_owned(),
            ));
        }
        Ok(book::from_douban(
            raw,
            ProviderKind::Douban,
            SystemTime::now(),
        ))
    }
}

#[tonic::async_trait]
impl BookProvider for DoubanClient {
    fn name(&self) -> &'static str {
        ProviderKind::Douban.name()
    }

    fn can(&self, _ask: Ask) -> bool {
        true
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        let raw = self.get_json(&format!("/v2/book/isbn/{isbn}"), &[]).await?;
        self.to_book(raw)
    }

    async fn by_douban_id(&self, id: &DoubanId) -> Result<Book, ProviderError> {
        let raw = self.get_json(&format!("/v2/book/{id}"), &[]).await?;
        self.to_book(raw)
    }

    async fn search(&self, search: &SearchQuery) -> Result<SearchPage, ProviderError> {
        let (query, start, count) = (search.query(), search.start(), search.count());
        let (start, count) = (start.to_string(), count.to_string());
        let params = [("q", query), ("start", &start), ("count", &count)];
        let raw: DoubanSearch = self.get_json("/v2/book/search", &params).await?;
        let now = SystemTime::now();
        Ok(SearchPage {
            total: raw.total,
            books: raw
                .books
                .into_iter()
                .filter(|b| !b.title.is_empty())
                .map(|b| book::from_douban(b, ProviderKind::Douban, now))
                .collect(),
        })
    }
}
