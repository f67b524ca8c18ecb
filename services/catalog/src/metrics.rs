//! The catalog's metrics in Prometheus text format: cache hits, misses, stale
//! serves and coalesced waits; search-cache hits and misses; upstream requests by provider and outcome, and
//! their latency; circuit state (Redis's is the runtime's `doumi_redis_*{service="catalog"}`). Served with the process's other
//! metrics on a small HTTP listener at `/metrics`, apart from the gRPC port.

use std::sync::Once;

pub const CACHE_HITS: &str = "doumi_catalog_cache_hits_total";
pub const CACHE_MISSES: &str = "doumi_catalog_cache_misses_total";
pub const CACHE_STALE_SERVED: &str = "doumi_catalog_cache_stale_served_total";
pub const CACHE_COALESCED_WAITS: &str = "doumi_catalog_cache_coalesced_waits_total";
pub const CACHE_REFRESHES: &str = "doumi_catalog_cache_background_refreshes_total";
pub const UPSTREAM_REQUESTS: &str = "doumi_catalog_upstream_requests_total";
pub const UPSTREAM_SKIPPED: &str = "doumi_catalog_upstream_skipped_total";
pub const UPSTREAM_LATENCY: &str = "doumi_catalog_upstream_latency_seconds";
pub const CIRCUIT_STATE: &str = "doumi_catalog_circuit_state";
pub const SEARCH_CACHE_HITS: &str = "doumi_catalog_search_cache_hits_total";
pub const SEARCH_CACHE_MISSES: &str = "doumi_catalog_search_cache_misses_total";
/// Every series of the catalog's own.
pub const NAMES: &[&str] = &[
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_STALE_SERVED,
    CACHE_COALESCED_WAITS,
    CACHE_REFRESHES,
    UPSTREAM_REQUESTS,
    UPSTREAM_SKIPPED,
    UPSTREAM_LATENCY,
    CIRCUIT_STATE,
    SEARCH_CACHE_HITS,
    SEARCH_CACHE_MISSES,
];

/// Installs the process-wide recorder (shared with any other service in the
/// same process, see `doumi_runtime::metrics`) and describes the catalog's
/// series, once.
pub fn install() {
    static DESCRIBED: Once = Once::new();
    doumi_runtime::metrics::describe_once(&DESCRIBED, describe);
}

fn describe() {
    metrics::describe_counter!(
        CACHE_HITS,
        "Lookups answered from a cache tier (memory, redis) with a fresh entry"
    );
    metrics::describe_counter!(CACHE_MISSES, "Lookups no cache tier could answer");
    metrics::describe_counter!(
        CACHE_STALE_SERVED,
        "Lookups answered with an entry past its soft TTL while it is refreshed"
    );
    metrics::describe_counter!(
        CACHE_COALESCED_WAITS,
        "Lookups that waited for another caller's fetch of the same book"
    );
    metrics::describe_counter!(
        CACHE_REFRESHES,
        "Background refreshes of stale entries, by result"
    );
    metrics::describe_counter!(
        UPSTREAM_REQUESTS,
        "Requests sent to a provider, by provider, operation and outcome"
    );
    metrics::describe_counter!(
        UPSTREAM_SKIPPED,
        "Requests not sent to a provider, by reason (circuit_open, overloaded, deadline)"
    );
    metrics::describe_histogram!(
        UPSTREAM_LATENCY,
        metrics::Unit::Seconds,
        "Provider request latency"
    );
    metrics::describe_gauge!(CIRCUIT_STATE, "Per provider: 0 closed, 0.5 probing, 1 open");
    // Apart from the book cache's series, whose hit ratio dashboards read.
    metrics::describe_counter!(
        SEARCH_CACHE_HITS,
        "Search pages answered from the search cache, including searches that joined an identical one in flight"
    );
    metrics::describe_counter!(
        SEARCH_CACHE_MISSES,
        "Search pages the search cache could not answer, sent to the providers"
    );
}
