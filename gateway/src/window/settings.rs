//! How the window answers, as configured: the policy for early attempts,
//! the time an attempt may take, what is said while the reply is not ready,
//! and how many messages are remembered.

use std::time::Duration;

/// When attempts are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyPolicy {
    /// Early attempts wait for the real reply; the last is answered in its budget.
    Hold,
    /// Every attempt is answered within its budget.
    Immediate,
}

/// What the window remembers by default: WeChat's 15 s of retries at about
/// 1,300 messages a second per replica, in some 15 MiB (a message with its
/// finished reply takes about 700 bytes).
pub const DEFAULT_CAPACITY: usize = 20_000;

/// What an attempt answers when the real reply is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Interim {
    /// A short "still looking" text.
    Text,
    /// `success`: WeChat shows nothing.
    Success,
}

/// The window's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSettings {
    pub policy: ReplyPolicy,
    /// How long an attempt that must be answered may take.
    pub budget: Duration,
    pub interim: Interim,
    /// How many messages the window remembers at most (the oldest are
    /// forgotten first).
    pub capacity: usize,
}

impl WindowSettings {
    /// What the gateway runs with unless configured otherwise (the CLI's
    /// defaults are these).
    pub const DEFAULT: Self = Self {
        policy: ReplyPolicy::Hold,
        budget: Duration::from_millis(4500),
        interim: Interim::Text,
        capacity: DEFAULT_CAPACITY,
    };
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}
