//! doumi's book catalog: ISBN rules, a provider chain (Douban v2 first, Open
//! Library and Google Books as fallbacks, or the bundled sample catalog), and
//! a two-tier cache that keeps answering through faults — served as the
//! `doumi.catalog.v1.BookCatalog` gRPC API, with Prometheus metrics beside it.
//!
//! A request flows top to bottom through the tree:
//!
//! - `api/`: the gRPC face — request checks, page tokens, field masks, the
//!   one mapping of errors to statuses (with `google.rpc` details), health.
//! - `cache/`: the core ([`Books`]) — memory tier, Redis tier, search pages,
//!   stale-while-refresh and coalesced fetches.
//! - `providers/`: where books come from — one module per provider, the
//!   chain that asks them in order, and the manners each call keeps
//!   (timeouts, retries, concurrency, circuit breaker).
//! - `startup`: the chain built from the settings, the cache, metrics,
//!   health and the server, wired together (`run`, `serve`).
//! - beside them, what all three share: ISBNs, lookup keys, settings and
//!   metrics (the caller's deadline and the circuit breaker come from
//!   `doumi_runtime`).
#![forbid(unsafe_code)]

mod api;
mod cache;
mod cli;
mod config;
pub mod isbn;
mod key;
pub mod metrics;
mod providers;
mod startup;

pub use cache::{Books, CachePolicy, RedisPolicy};
pub use cli::Cli;
pub use config::{CatalogArgs, CatalogConfig, ProviderSettings, Source};
pub use doumi_runtime::breaker::BreakerSettings;
pub use doumi_runtime::deadline::Deadline;
pub use providers::{
    BookProvider, DoubanSettings, ProviderChain, ProviderError, ProviderKind, SearchPage, Upstream,
    UpstreamPolicy,
};
pub use startup::{Listeners, StartError, run, serve};
