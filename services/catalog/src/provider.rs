//! Where books come from: Douban (or a v2-compatible server) and the bundled
//! sample catalog both answer the same two questions.

use doumi_proto::catalog::v1::Book;

use crate::isbn::Isbn13;

/// One page of keyword-search results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub books: Vec<Book>,
    /// Total matches the provider knows of, beyond this page.
    pub total: u32,
}

/// Why a provider gave no book. Only [`ProviderError::NotFound`] is an answer;
/// every other variant means "ask again later or elsewhere".
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("no such book")]
    NotFound,
    #[error("the provider rate-limits us: {0}")]
    RateLimited(String),
    #[error("the provider refused our credentials: {0}")]
    Rejected(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

/// A source of books.
#[tonic::async_trait]
pub trait BookProvider: Send + Sync {
    /// A short stable name for logs, metrics and provenance ("douban", "sample").
    fn name(&self) -> &'static str;

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError>;

    /// Books whose title or author match `query`, skipping `start`, at most `count`.
    async fn search(
        &self,
        query: &str,
        start: u32,
        count: u32,
    ) -> Result<SearchPage, ProviderError>;
}
