//! Replies that miss WeChat's window still reach the reader: sent as a
//! customer-service message once they are ready (with the account's AppSecret
//! configured). WeChat's refusals are counted and logged with their code —
//! summarised, since a refusal like 48001 repeats for every message — and
//! never retried blindly: each has a reason a retry would not change.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use doumi_proto::bot::v1::Reply;
use doumi_runtime::throttle::LogThrottle;
use doumi_wechat::api::{CustomMessage, ErrCode, OfficialAccount};

/// Sends late replies; cheap to clone.
#[derive(Clone)]
pub struct Courier {
    inner: Arc<Inner>,
}

struct Inner {
    account: OfficialAccount,
    deadline: Duration,
    throttle: LogThrottle,
    /// Cleared by WeChat's 48001: the account may not send customer-service
    /// messages, so readers are asked to send again instead of promised a
    /// message that cannot come.
    permitted: AtomicBool,
}

impl Courier {
    /// `deadline`: how long a message's work may run when its reply is to be
    /// delivered (the delivery itself follows, bounded by the API's timeouts).
    pub fn new(account: OfficialAccount, deadline: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                account,
                deadline,
                throttle: LogThrottle::default(),
                permitted: AtomicBool::new(true),
            }),
        }
    }

    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// False once WeChat has said the account lacks the permission.
    pub fn active(&self) -> bool {
        self.inner.permitted.load(Ordering::Relaxed)
    }

    /// Shows `reader` that an answer is coming. Best effort: a failure only
    /// means the reader waits without the indicator.
    pub async fn typing(&self, reader: &str) {
        if let Err(error) = self.inner.account.typing(reader).await
            && let Some(held_back) = self.inner.throttle.admit("typing")
        {
            tracing::debug!(%error, held_back, "typing indicator not shown");
        }
    }

    /// Sends `reply` to `reader`, once.
    pub async fn deliver(&self, reader: &str, reply: &Reply) {
        let Some(message) = CustomMessage::new(reader, reply) else {
            count("nothing_to_send");
            return;
        };
        let error = match self.inner.account.send(&message).await {
            Ok(()) => {
                count("delivered");
                tracing::info!("late reply delivered");
                return;
            }
            Err(error) => error,
        };
        let outcome = match error.errcode() {
            Some(ErrCode::ReaderSilent) => "reader_silent",
            Some(ErrCode::TooManyMessages) => "too_many_messages",
            Some(ErrCode::Unauthorized) => "no_permission",
            Some(_) => "refused",
            None => "unreachable",
        };
        count(outcome);
        if outcome == "no_permission" && self.inner.permitted.swap(false, Ordering::Relaxed) {
            tracing::error!(
                %error,
                "wechat refused customer-service messages (48001): this account lacks the \
                 permission (unverified subscription accounts do); from now on readers whose \
                 reply misses WeChat's 5-second window are asked to send again"
            );
        } else if let Some(held_back) = self.inner.throttle.admit(outcome) {
            tracing::warn!(%error, outcome, held_back, "late reply not delivered");
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!(crate::metrics::DELIVERIES, "outcome" => outcome).increment(1);
}
