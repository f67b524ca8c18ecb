//! Replies that miss WeChat's window still reach the reader: sent as a
//! customer-service message once they are ready (with the account's AppSecret
//! configured). WeChat's refusals are counted and logged with their code —
//! summarised, since a refusal repeats for every message — and never retried
//! blindly: each has a reason a retry would not change.
//!
//! A refusal that says the account cannot deliver at all (48001, a server IP
//! outside the whitelist, a wrong AppID or AppSecret) stops the promises:
//! readers whose reply misses the window are asked to send again instead of
//! promised a message that cannot come. The credentials are checked when the
//! gateway starts, and again every probe interval while promises are
//! stopped; they resume when WeChat accepts the account again. Each account
//! of a gateway has its own courier: one account refused stops only its own
//! promises.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use doumi_proto::bot::v1::Reply;
use doumi_runtime::throttle::LogThrottle;
use doumi_wechat::api::{ApiError, CustomMessage, ErrCode, OfficialAccount};

/// Sends late replies; cheap to clone.
#[derive(Clone)]
pub struct Courier {
    inner: Arc<Inner>,
}

struct Inner {
    /// The account's name, for the series and `/readyz`.
    name: Arc<str>,
    account: OfficialAccount,
    deadline: Duration,
    probe_interval: Duration,
    throttle: LogThrottle,
    /// Set by a refusal that concerns the account itself; cleared by a probe
    /// WeChat accepts.
    stopped: AtomicBool,
    /// What WeChat said about the account when it was last asked.
    standing: Mutex<Standing>,
}

/// What WeChat last said about an account's credentials, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Not asked yet (the check at start is under way).
    Unchecked,
    /// WeChat accepts the account: late replies are promised.
    Accepted,
    /// WeChat refuses the account: no promises until a probe passes.
    Refused(ErrCode),
    /// The check failed for another reason (the label of its failure):
    /// promises stand, the first late reply will tell.
    Unknown(String),
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unchecked => f.write_str("checking the credentials with WeChat"),
            Self::Accepted => f.write_str(
                "WeChat accepts the account: replies that miss the window are delivered",
            ),
            Self::Refused(code) => write!(
                f,
                "WeChat refuses the account ({code}: {}): readers are asked to send again; {}",
                code.meaning(),
                code.remedy()
            ),
            Self::Unknown(label) => write!(
                f,
                "the credentials could not be checked ({label}): replies that miss the window \
                 are still promised"
            ),
        }
    }
}

impl Courier {
    /// `deadline`: how long a message's work may run when its reply is to be
    /// delivered (the delivery itself follows, bounded by the API's timeouts);
    /// `probe_interval`: how often the account is checked again while
    /// WeChat refuses it.
    pub fn new(
        name: &str,
        account: OfficialAccount,
        deadline: Duration,
        probe_interval: Duration,
    ) -> Self {
        let courier = Self {
            inner: Arc::new(Inner {
                name: name.into(),
                account,
                deadline,
                probe_interval,
                throttle: LogThrottle::default(),
                stopped: AtomicBool::new(false),
                standing: Mutex::new(Standing::Unchecked),
            }),
        };
        courier.show_delivering(true);
        courier
    }

    /// The gauge an alert watches: whether the account delivers.
    fn show_delivering(&self, delivering: bool) {
        metrics::gauge!(crate::metrics::ACCOUNT_DELIVERING, "account" => self.inner.name.clone())
            .set(if delivering { 1.0 } else { 0.0 });
    }

    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// False while WeChat refuses the account: no promise is made then.
    pub fn active(&self) -> bool {
        !self.inner.stopped.load(Ordering::Relaxed)
    }

    /// What WeChat last said about the account.
    pub fn standing(&self) -> Standing {
        lock(&self.inner.standing).clone()
    }

    /// Checks at start that WeChat accepts the account's credentials from
    /// this server, so that a wrong AppSecret or a missing whitelist entry
    /// shows in the log at once, not with the first late reply. Never fatal:
    /// passive replies need none of it.
    pub async fn check_at_start(&self) {
        let account = &*self.inner.name;
        match self.check().await {
            Ok(()) => tracing::info!(
                account,
                "WeChat accepts the account's credentials: replies that miss the window are \
                 delivered as customer-service messages"
            ),
            Err(error) => {
                if !self.refused_account(&error) {
                    tracing::warn!(account, %error, "checking the account's credentials with WeChat failed");
                }
            }
        }
    }

    /// Asks WeChat about the credentials (a token, then a call with it),
    /// recording and counting its answer.
    async fn check(&self) -> Result<(), ApiError> {
        let result = self.inner.account.check().await;
        let (standing, label) = match &result {
            Ok(()) => (Standing::Accepted, "ok".to_owned()),
            Err(error) => match error.errcode() {
                Some(code) if code.account_cannot_deliver() => {
                    (Standing::Refused(code), code.to_string())
                }
                _ => (Standing::Unknown(error.code_label()), error.code_label()),
            },
        };
        metrics::counter!(
            crate::metrics::ACCOUNT_CHECKS,
            "account" => self.inner.name.clone(),
            "result" => label
        )
        .increment(1);
        *lock(&self.inner.standing) = standing;
        result
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
            self.count("nothing_to_send");
            return;
        };
        let error = match self.inner.account.send(&message).await {
            Ok(()) => {
                self.count("delivered");
                tracing::info!("late reply delivered");
                return;
            }
            Err(error) => error,
        };
        let outcome = match error.errcode() {
            Some(ErrCode::ReaderSilent) => "reader_silent",
            Some(ErrCode::TooManyMessages) => "too_many_messages",
            Some(code) if code.account_cannot_deliver() => "no_permission",
            Some(_) => "refused",
            None => "unreachable",
        };
        self.count(outcome);
        if !self.refused_account(&error)
            && let Some(held_back) = self.inner.throttle.admit(outcome)
        {
            tracing::warn!(%error, outcome, held_back, "late reply not delivered");
        }
    }

    /// Stops the promises when `error` says the account cannot deliver, and
    /// probes until WeChat accepts it again; true when it did say so.
    fn refused_account(&self, error: &ApiError) -> bool {
        let Some(code) = error.errcode().filter(|code| code.account_cannot_deliver()) else {
            return false;
        };
        *lock(&self.inner.standing) = Standing::Refused(code);
        if !self.inner.stopped.swap(true, Ordering::Relaxed) {
            self.show_delivering(false);
            tracing::error!(
                account = &*self.inner.name,
                %error,
                remedy = code.remedy(),
                probe_interval = ?self.inner.probe_interval,
                "WeChat refuses the account ({code}): until it accepts it again (checked every \
                 probe interval), readers whose reply misses WeChat's 5-second window are asked \
                 to send again"
            );
            tokio::spawn(self.clone().probe());
        }
        true
    }

    /// Checks the account every probe interval until WeChat accepts it,
    /// then lets promises resume. A refusal only a send shows (48001) cannot
    /// be probed: promises resume, and the next such refusal stops them again.
    async fn probe(self) {
        loop {
            tokio::time::sleep(self.inner.probe_interval).await;
            match self.check().await {
                Err(error) if error.errcode().is_some_and(ErrCode::account_cannot_deliver) => {
                    if let Some(held_back) = self.inner.throttle.admit("probe") {
                        tracing::warn!(account = &*self.inner.name, %error, held_back, "WeChat still refuses the account");
                    }
                }
                _ => {
                    self.inner.stopped.store(false, Ordering::Relaxed);
                    self.show_delivering(true);
                    tracing::info!(
                        account = &*self.inner.name,
                        "WeChat accepts the account again: late replies are promised again"
                    );
                    return;
                }
            }
        }
    }

    /// Counts a delivery's outcome, by account.
    fn count(&self, outcome: &'static str) {
        metrics::counter!(
            crate::metrics::DELIVERIES,
            "account" => self.inner.name.clone(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
