//! What both caches (books, and search pages) follow: the clock their
//! entries age by, and how often a shared fetch is joined again.

use std::{sync::Arc, time::SystemTime};

/// The wall clock, replaceable so tests can move time past a TTL.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A coalesced fetch that ran out of the first caller's time is retried for
/// waiters that still have time, this many times at most.
pub(crate) const MAX_JOINS: usize = 3;
