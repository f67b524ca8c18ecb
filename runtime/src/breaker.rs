//! A circuit breaker, so a dead upstream (or a dead Redis) is not hammered:
//! after `failure_threshold` failures in a row the circuit opens and calls are
//! refused at once; after `cooldown` one probe call is let through, and its
//! outcome closes the circuit or opens it for another cooldown.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// When to open and how long to stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed calls that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before letting one probe through.
    pub cooldown: Duration,
}

/// What a breaker is doing, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 0.5 probing: a gauge that reads as "how broken".
    pub fn as_gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 0.5,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is in flight. A probe whose caller vanished without reporting
    /// back must not wedge the circuit, so another probe is allowed once
    /// `since` is a cooldown old.
    HalfOpen {
        since: Instant,
    },
}

/// One breaker; shared by every call to one dependency.
#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go ahead now. When it returns true the caller must
    /// report the outcome with [`Self::succeeded`] or [`Self::failed`].
    pub fn allow(&self) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        let next_probe = match *state {
            State::Closed { .. } => return true,
            State::Open { until } => until,
            State::HalfOpen { since } => since + self.settings.cooldown,
        };
        if now >= next_probe {
            *state = State::HalfOpen { since: now };
            true
        } else {
            false
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.lock();
        if !matches!(*state, State::Closed { failures: 0 }) {
            if !matches!(*state, State::Closed { .. }) {
                tracing::info!("circuit closed again");
            }
            *state = State::Closed { failures: 0 };
        }
    }

    pub fn failed(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        let open = match *state {
            State::Closed { failures } => failures + 1 >= self.settings.failure_threshold,
            State::HalfOpen { .. } => true,
            // A call let through before the circuit opened; it changes nothing.
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: now + self.settings.cooldown,
            };
        } else if let State::Closed { failures } = &mut *state {
            *failures += 1;
        }
    }

    /// How long until the breaker lets a probe through: what a refused caller
    /// is told to wait before retrying. Zero when the circuit is closed.
    pub fn remaining_cooldown(&self) -> Duration {
        let now = Instant::now();
        let next_probe = match *self.lock() {
            State::Closed { .. } => return Duration::ZERO,
            State::Open { until } => until,
            State::HalfOpen { since } => since + self.settings.cooldown,
        };
        next_probe.saturating_duration_since(now)
    }

    pub fn state(&self) -> BreakerState {
        let now = Instant::now();
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value that is always valid, so a panic
        // elsewhere while holding the lock cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_closes_after_a_good_probe() {
        let b = breaker();
        for _ in 0..2 {
            assert!(b.allow());
            b.failed();
        }
        assert!(b.allow());
        b.succeeded(); // a success resets the count
        for _ in 0..3 {
            assert!(b.allow());
            b.failed();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(), "open: refused at once");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(b.remaining_cooldown(), Duration::from_secs(6));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(b.remaining_cooldown(), Duration::ZERO);

        assert!(b.allow(), "after the cooldown one probe goes through");
        assert!(!b.allow(), "but only one");
        b.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_for_another_cooldown() {
        let b = breaker();
        for _ in 0..3 {
            b.allow();
            b.failed();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.allow());
        b.failed();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_probe_does_not_wedge_the_circuit() {
        let b = breaker();
        for _ in 0..3 {
            b.allow();
            b.failed();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.allow()); // this probe's caller never reports back
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.allow(), "another probe after a cooldown");
    }
}
