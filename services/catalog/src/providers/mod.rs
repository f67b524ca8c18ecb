//! Where books come from: Douban (or a v2-compatible server), Open Library,
//! Google Books and the bundled sample catalog all answer the same questions,
//! each as far as it can (`provider.rs`: the questions, the answers and the
//! errors they share).

pub(crate) mod book;
mod chain;
mod douban;
#[cfg(test)]
pub(crate) mod fake;
mod googlebooks;
mod http;
mod openlibrary;
mod provider;
mod sample;
mod upstream;

pub use chain::ProviderChain;
pub use douban::{DoubanClient, DoubanSettings};
pub use googlebooks::GoogleBooksClient;
pub use http::HttpClient;
pub use openlibrary::OpenLibraryClient;
pub use provider::{BookProvider, ProviderError, ProviderKind, SearchPage, SearchQuery};
pub use sample::SampleCatalog;
pub use upstream::{Upstream, UpstreamPolicy};
