//! One provider behind the manners a good client keeps: a timeout per
//! attempt, bounded retries with backoff for transient failures, a cap on
//! concurrent requests, a circuit breaker, and the caller's deadline checked
//! before every attempt. Every attempt is counted and timed.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{sync::Semaphore, time::Instant};

use doumi_runtime::deadline::Deadline;

use crate::{
    metrics as m,
    providers::provider::{Ask, BookProvider, ProviderError},
};
use doumi_runtime::{
    breaker::{BreakerSettings, BreakerState, CircuitBreaker},
    rate::{Pacer, RateLimit},
};

/// How every provider is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// Budget for one attempt, connect to last byte.
    pub timeout: Duration,
    /// Extra attempts after a transient failure (0 = no retries).
    pub retries: u32,
    /// Wait before the first retry; doubled (with jitter) for each next one.
    pub backoff: Duration,
    /// Requests in flight to one provider at most; more wait their turn.
    pub concurrency: usize,
    pub breaker: BreakerSettings,
}

impl UpstreamPolicy {
    /// What the catalog runs with unless configured otherwise (the CLI's
    /// defaults are these).
    pub const DEFAULT: Self = Self {
        timeout: Duration::from_secs(3),
        retries: 2,
        backoff: Duration::from_millis(100),
        concurrency: 16,
        breaker: BreakerSettings {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        },
    };
}

impl Default for UpstreamPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A provider with its breaker and concurrency limit.
pub struct Upstream {
    provider: Arc<dyn BookProvider>,
    policy: UpstreamPolicy,
    breaker: CircuitBreaker,
    permits: Semaphore,
    /// The operator's cap on this provider's request rate (its quota, its
    /// terms); over it a lookup goes to the next provider.
    cap: Option<Pacer>,
}

impl Upstream {
    pub fn new(
        provider: Arc<dyn BookProvider>,
        policy: UpstreamPolicy,
        cap: Option<RateLimit>,
    ) -> Self {
        Self {
            cap: cap.map(Pacer::new),
            breaker: CircuitBreaker::new(policy.breaker),
            permits: Semaphore::new(policy.concurrency.max(1)),
            provider,
            policy,
        }
    }

    pub fn name(&self) -> &'static str {
        self.provider.name()
    }

    pub fn can(&self, ask: Ask) -> bool {
        self.provider.can(ask)
    }

    pub fn circuit(&self) -> BreakerState {
        let state = self.breaker.state();
        metrics::gauge!(m::CIRCUIT_STATE, "provider" => self.name()).set(state.as_gauge());
        state
    }

    /// Runs `call` against the provider with the policy's manners.
    ///
    /// The breaker sees one outcome per call (after retries), so a single
    /// unlucky request cannot open it; "not found" is a healthy answer.
    #[tracing::instrument(level = "debug", name = "provider", skip_all, fields(otel.kind = "client", provider = self.name(), operation = ask.as_str()))]
    pub async fn call<T, F, Fut>(
        &self,
        ask: Ask,
        deadline: Deadline,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn(Arc<dyn BookProvider>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let name = self.name();
        let skipped = |reason: &'static str| {
            metrics::counter!(m::UPSTREAM_SKIPPED, "provider" => name, "reason" => reason)
                .increment(1);
        };
        if deadline.has_passed() {
            skipped("deadline");
            return Err(ProviderError::DeadlineExceeded);
        }
        // Wait for a slot no longer than one attempt may take, or the caller waits.
        let permit =
            tokio::time::timeout(deadline.cap(self.policy.timeout), self.permits.acquire()).await;
        let _permit = match permit {
            Ok(Ok(permit)) => permit,
            _ if deadline.has_passed() => {
                skipped("deadline");
                return Err(ProviderError::DeadlineExceeded);
            }
            _ => {
                skipped("overloaded");
                return Err(ProviderError::Unavailable(format!(
                    "{name} has {} requests in flight",
                    self.policy.concurrency
                )));
            }
        };
        // Capped before the breaker: a request not sent says nothing of the
        // provider's health.
        if self.cap.as_ref().is_some_and(|cap| !cap.allow()) {
            skipped("rate_cap");
            return Err(ProviderError::RateLimited(format!(
                "{name}: over the configured request rate"
            )));
        }
        if !self.breaker.allow() {
            skipped("circuit_open");
            self.circuit();
            return Err(ProviderError::CircuitOpen(
                name,
                self.breaker.remaining_cooldown(),
            ));
        }

        let mut attempt = 0;
        let result = loop {
            let result = self.attempt(ask, deadline, &call).await;
            let Err(error) = &result else { break result };
            if !error.is_transient() || attempt >= self.policy.retries {
                break result;
            }
            let pause = self.backoff(attempt);
            if deadline.remaining().is_some_and(|left| left <= pause) {
                break result;
            }
            tracing::debug!(provider = name, attempt, %error, "retrying after a transient failure");
            tokio::time::sleep(pause).await;
            attempt += 1;
        };
        match &result {
            Ok(_) | Err(ProviderError::NotFound) => self.breaker.succeeded(),
            // The caller ran out of time: that says nothing about the provider
            // (an unfinished probe is simply retried after a cooldown).
            Err(ProviderError::DeadlineExceeded | ProviderError::Unsupported) => {}
            Err(_) => self.breaker.failed(),
        }
        self.circuit();
        result
    }

    async fn attempt<T, F, Fut>(
        &self,
        ask: Ask,
        deadline: Deadline,
        call: &F,
    ) -> Result<T, ProviderError>
    where
        F: Fn(Arc<dyn BookProvider>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let name = self.name();
        if deadline.has_passed() {
            metrics::counter!(m::UPSTREAM_SKIPPED, "provider" => name, "reason" => "deadline")
                .increment(1);
            return Err(ProviderError::DeadlineExceeded);
        }
        let budget = deadline.cap(self.policy.timeout);
        let started = Instant::now();
        let result = match tokio::time::timeout(budget, call(self.provider.clone())).await {
            Ok(result) => result,
            Err(_) if deadline.has_passed() => Err(ProviderError::DeadlineExceeded),
            Err(_) => Err(ProviderError::TimedOut(format!(
                "{name} timed out after {budget:?}"
            ))),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        metrics::counter!(m::UPSTREAM_REQUESTS, "provider" => name, "operation" => ask.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::UPSTREAM_LATENCY, "provider" => name)
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result
            && !matches!(error, ProviderError::NotFound)
        {
            tracing::warn!(provider = name, operation = ask.as_str(), %error, "upstream call failed");
        }
        result
    }

    /// `backoff · 2^attempt`, with up to 50 % jitter so retries from many
    /// callers do not arrive together.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.policy.backoff.saturating_mul(1 << attempt.min(10));
        let jitter = rand::random_range(0.0..0.5);
        base.mul_f64(1.0 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use doumi_proto::catalog::v1::Book;

    use super::*;
    use crate::{isbn::Isbn13, providers::fake::FakeProvider};

    /// An upstream over a provider that answers `script`, then finds every book.
    fn upstream(script: Vec<Result<Book, ProviderError>>) -> (Arc<FakeProvider>, Upstream) {
        let provider = Arc::new(FakeProvider::named("scripted").scripted(script));
        let policy = UpstreamPolicy {
            breaker: BreakerSettings {
                failure_threshold: 2,
                cooldown: Duration::from_secs(30),
            },
            ..UpstreamPolicy::default()
        };
        (provider.clone(), Upstream::new(provider, policy, None))
    }

    async fn ask(up: &Upstream, deadline: Deadline) -> Result<Book, ProviderError> {
        let isbn = Isbn13::parse("9787121139512").unwrap();
        up.call(Ask::Isbn, deadline, |p| {
            let isbn = isbn.clone();
            async move { p.by_isbn(&isbn).await }
        })
        .await
    }

    fn down() -> Result<Book, ProviderError> {
        Err(ProviderError::Unavailable("HTTP 500".to_owned()))
    }

    #[tokio::test(start_paused = true)]
    async fn over_its_cap_a_provider_is_not_asked_and_its_breaker_not_touched() {
        let (provider, capped) = upstream(vec![]);
        let cap = RateLimit::parse("4/s").unwrap();
        let capped = Upstream::new(provider.clone(), capped.policy, cap);
        assert!(ask(&capped, Deadline::NONE).await.is_ok());
        for _ in 0..5 {
            assert!(matches!(
                ask(&capped, Deadline::NONE).await,
                Err(ProviderError::RateLimited(_))
            ));
        }
        assert_eq!(provider.calls(), 1, "one call sent");
        assert_eq!(capped.circuit(), BreakerState::Closed);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(ask(&capped, Deadline::NONE).await.is_ok(), "the next slot");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let (provider, up) = upstream(vec![down(), down()]);
        assert!(
            ask(&up, Deadline::NONE).await.is_ok(),
            "third attempt succeeds"
        );
        assert_eq!(provider.calls(), 3);

        let (provider, up) = upstream(vec![down(), down(), down(), down()]);
        assert!(ask(&up, Deadline::NONE).await.is_err());
        assert_eq!(provider.calls(), 3, "1 + 2 retries");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_and_not_found_are_not_retried() {
        let (provider, up) = upstream(vec![Err(ProviderError::RateLimited("112".to_owned()))]);
        assert!(matches!(
            ask(&up, Deadline::NONE).await,
            Err(ProviderError::RateLimited(_))
        ));
        let (_, nf) = upstream(vec![Err(ProviderError::NotFound)]);
        assert!(matches!(
            ask(&nf, Deadline::NONE).await,
            Err(ProviderError::NotFound)
        ));
        assert_eq!(provider.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_starts_no_attempt() {
        let (provider, up) = upstream(vec![]);
        let deadline = Deadline::after(Duration::from_millis(10));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(matches!(
            ask(&up, deadline).await,
            Err(ProviderError::DeadlineExceeded)
        ));
        assert_eq!(provider.calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_when_the_backoff_would_outlast_the_deadline() {
        let (provider, up) = upstream(vec![down(), down()]);
        let deadline = Deadline::after(Duration::from_millis(50));
        assert!(ask(&up, deadline).await.is_err());
        assert_eq!(provider.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_failed_calls_and_closes_after_recovery() {
        let (provider, up) = upstream(vec![down(); 6]);
        assert!(ask(&up, Deadline::NONE).await.is_err());
        assert!(ask(&up, Deadline::NONE).await.is_err());
        assert_eq!(provider.calls(), 6);
        assert_eq!(up.circuit(), BreakerState::Open);
        assert!(matches!(
            ask(&up, Deadline::NONE).await,
            Err(ProviderError::CircuitOpen(..))
        ));
        assert_eq!(provider.calls(), 6, "open: not asked");

        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(ask(&up, Deadline::NONE).await.is_ok(), "the probe succeeds");
        assert_eq!(up.circuit(), BreakerState::Closed);
    }
}
