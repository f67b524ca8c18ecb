//! Health beyond "the process is up": one `grpc.health.v1` entry per
//! dependency, so an operator (or grpcurl) sees which one is failing.
//!
//! The catalog's own entry (`doumi.catalog.v1.BookCatalog`, and `""`) stays
//! SERVING while it runs: with providers down it still answers from cache,
//! and NOT_FOUND or UNAVAILABLE are answers. Taking every replica out of
//! rotation because Douban is down would turn an upstream outage into ours.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::cache::Books;
use doumi_runtime::breaker::BreakerState;

/// How often dependency health is re-read.
const EVERY: Duration = Duration::from_millis(500);

/// Health name of a provider: SERVING while its circuit is closed.
pub fn provider_service(provider: &str) -> String {
    format!("doumi.catalog.provider.{provider}")
}

/// Health name of the Redis tier: SERVING unless Redis is being skipped
/// after failures (until a probe finds it back).
pub const REDIS_SERVICE: &str = "doumi.catalog.cache.redis";

/// Keeps the dependency entries current until `stop` is cancelled.
pub async fn report(books: Books, reporter: HealthReporter, stop: CancellationToken) {
    let mut last = None;
    loop {
        let now = books.dependencies();
        if last.as_ref() != Some(&now) {
            for (provider, circuit) in &now.providers {
                // Half-open is not yet proven: a probe has to succeed first.
                let status = match circuit {
                    BreakerState::Closed => ServingStatus::Serving,
                    BreakerState::Open | BreakerState::HalfOpen => ServingStatus::NotServing,
                };
                reporter
                    .set_service_status(provider_service(provider), status)
                    .await;
            }
            if let Some(up) = now.redis_up {
                let status = if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status(REDIS_SERVICE, status).await;
            }
            last = Some(now);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
