//! The catalog's core: answer from the cache when it can, ask the provider
//! when it must, and remember what the provider said.

use std::sync::Arc;

use doumi_proto::catalog::v1::Book;

use crate::{
    cache::BookCache,
    isbn::Isbn13,
    provider::{BookProvider, ProviderError, SearchPage},
};

/// Books by ISBN and by keywords, cached.
#[derive(Clone)]
pub struct Books {
    provider: Arc<dyn BookProvider>,
    cache: BookCache,
}

impl Books {
    pub fn new(provider: Arc<dyn BookProvider>, cache: BookCache) -> Self {
        Self { provider, cache }
    }

    pub async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        if let Some(book) = self.cache.get(isbn).await {
            tracing::debug!(%isbn, "cache hit");
            return Ok(book);
        }
        let book = self.provider.by_isbn(isbn).await?;
        tracing::info!(%isbn, provider = self.provider.name(), "fetched");
        self.cache.put(isbn, &book).await;
        Ok(book)
    }

    pub async fn search(
        &self,
        query: &str,
        start: u32,
        count: u32,
    ) -> Result<SearchPage, ProviderError> {
        self.provider.search(query, start, count).await
    }
}
