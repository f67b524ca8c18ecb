//! A caller's deadline, the one way every hop holds it: read once from the
//! `grpc-timeout` header a client sends ([`crate::grpc::caller_deadline`]),
//! then checked before each piece of work and turned into the budget of the
//! next call, so nothing starts for a caller who has already given up.

use std::time::Duration;

use tokio::time::Instant;

/// The caller's deadline has passed: nothing more is worth starting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the caller's deadline passed")]
pub struct DeadlinePassed;

/// When the caller stops waiting; `None` when it set no deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: background refreshes and callers that set none.
    pub const NONE: Self = Self(None);

    pub fn at(instant: Instant) -> Self {
        Self(Some(instant))
    }

    /// `timeout` from now; a timeout too large to represent means no deadline.
    pub fn after(timeout: Duration) -> Self {
        Self(Instant::now().checked_add(timeout))
    }

    pub fn has_passed(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// Time left; `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// `budget`, shortened to the time the caller has left.
    pub fn cap(&self, budget: Duration) -> Duration {
        self.remaining().map_or(budget, |left| left.min(budget))
    }

    /// The deadline `margin` sooner: what is left once the time needed to
    /// send an answer back is set aside.
    pub fn earlier_by(self, margin: Duration) -> Self {
        Self(
            self.0
                .map(|at| at.checked_sub(margin).unwrap_or_else(Instant::now)),
        )
    }

    /// When the caller stops waiting; `None` when it set no deadline.
    pub fn instant(&self) -> Option<Instant> {
        self.0
    }

    /// `Err(DeadlinePassed)` once the deadline has passed.
    pub fn check(&self) -> Result<(), DeadlinePassed> {
        if self.has_passed() {
            Err(DeadlinePassed)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_passes_and_caps_budgets() {
        let deadline = Deadline::after(Duration::from_millis(100));
        assert!(deadline.check().is_ok());
        assert_eq!(
            deadline.cap(Duration::from_secs(3)),
            Duration::from_millis(100)
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(deadline.check(), Err(DeadlinePassed));
        assert_eq!(deadline.cap(Duration::from_secs(3)), Duration::ZERO);
        assert!(!Deadline::NONE.has_passed());
        let later = Deadline::after(Duration::from_secs(2));
        assert_eq!(
            later.earlier_by(Duration::from_millis(500)).remaining(),
            Some(Duration::from_millis(1500))
        );
        assert!(later.earlier_by(Duration::from_secs(3)).has_passed());
        assert_eq!(
            Deadline::NONE.earlier_by(Duration::from_secs(1)),
            Deadline::NONE
        );
        assert_eq!(
            Deadline::NONE.cap(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
