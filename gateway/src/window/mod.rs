//! WeChat's 5-second window and its retries, used together.
//!
//! WeChat waits 5 s for a reply, drops the connection and sends the *same*
//! request again — three attempts in all. doumi turns that into a ~14 s budget
//! for slow lookups: the work for a message starts once, runs to the end even
//! when WeChat hangs up (the attempt that started it drives it while it
//! waits, and hands what is left to a task when it ends first), and every
//! retry **joins** it instead of asking the bot again.
//!
//! Under `hold`, an attempt that is not the last never answers with anything
//! but the real reply: it waits for it, and when WeChat has surely hung up it
//! ends without a body. An early answer would be taken as *the* answer — WeChat
//! sends no retry after it — and its 5 s start before the request reaches us,
//! so an interim at 5.0 s can win the race and the book never arrives. Only
//! the last attempt (every attempt under `immediate`) is answered inside its
//! budget: with the real reply if ready, the interim otherwise. Once the real
//! reply exists, every later attempt gets exactly that reply.
//!
//! With a [`Courier`] (the account's AppSecret configured), the work may run
//! past WeChat's window and a reply that missed it is sent as a
//! customer-service message. Whether a message's reply goes passively or by
//! delivery is decided once ([`Fate`]): an attempt about to give the reply
//! claims it (`Answered`), an attempt that gives up on it promises it
//! (`Late`), and once WeChat's last attempt is past the work settles it
//! `Late` unless an attempt gave it — so the reader gets it once.
//!
//! With Redis configured, attempts, the claim on the work, the fate and the
//! finished reply live there too, so several gateway replicas agree. The
//! claim is a lease its replica renews while the work runs: when a replica
//! dies, the next attempt at any replica takes the work over once the lease
//! runs out. A reply promised for delivery is recorded there with the
//! message, and every replica sweeps for promises whose lease ran out (or was
//! handed off by a replica shutting down) and does their work again; one
//! claim per delivery keeps it to one message.
//!
//! Past 600 lines on purpose: this file is one state machine (an attempt's
//! answer, the work, its fate, its delivery, the sweep of promises), read
//! top to bottom; what stands on its own is beside it — `settings.rs`, the
//! memory of messages (`slots.rs`), the Redis side (`shared_store.rs`), who
//! drives a message's work (`work.rs`).

use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime},
};

use doumi_proto::bot::v1::{InboundMessage, Reply};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    bot_link::{self, BotLink},
    delivery::Courier,
};

mod settings;
mod shared_store;
mod slots;
mod work;

pub use settings::{DEFAULT_CAPACITY, Interim, ReplyPolicy, WindowSettings};
pub use shared_store::SharedStore;
pub use slots::{message_key, message_tag};

use shared_store::Pending;
use slots::{Fate, Slot, Slots};
use work::Work;

/// WeChat gives up on an attempt after this long.
pub const WECHAT_WINDOW: Duration = Duration::from_secs(5);
/// WeChat sends a message at most this many times.
pub const WECHAT_ATTEMPTS: u32 = 3;
/// How long an early attempt is held: WeChat's 5 s started before the request
/// reached us, so by twice that it has surely hung up.
const HOLD: Duration = Duration::from_secs(10);
/// How long a message is remembered in this process: WeChat's retries come
/// within its 15 s, and a reply still to be delivered keeps its own slot.
const MEMORY: Duration = Duration::from_secs(30);
/// How often a replica that does not own the work looks for its reply.
const SHARED_POLL: Duration = Duration::from_millis(100);
/// How often finished work whose fate is still open looks for one decided
/// on another replica (a retry that landed there gave or promised the reply).
const SHARED_FATE_POLL: Duration = Duration::from_secs(1);
/// How long a replica's claim on a message's work lasts unless renewed: how
/// long the work of a replica that died waits before another takes it over.
const LEASE: Duration = Duration::from_secs(6);
/// How often a replica renews the leases of the work it is doing.
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a replica looks for promises nobody is keeping.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What the reader sees when the real reply is not ready in time.
pub const INTERIM_TEXT: &str = "正在查询，请稍后再发一次…";
/// The same, when the reply will be delivered as soon as it is ready.
pub const INTERIM_DELIVERY_TEXT: &str = "正在查询，查到后马上发给你。";

/// The whole time WeChat gives a message: three attempts of 5 s. Without
/// delivery the bot's work is cut off then, after the last attempt has been
/// answered (in its budget), so a failure deep in the chain never pre-empts
/// the interim answer.
pub const WECHAT_PATIENCE: Duration = Duration::from_secs(5 * WECHAT_ATTEMPTS as u64);

/// How an attempt was answered (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This attempt started the work and got its reply.
    Fresh,
    /// A retry joined work in flight and got its reply.
    Joined,
    /// The reply already existed.
    Replayed,
    /// The real reply was not ready within the attempt's budget.
    Interim,
    /// An early attempt held until WeChat hung up, ended without an answer.
    Held,
    /// Too many messages at once: answered "busy" without asking the bot.
    Shed,
    /// The reply was already promised for delivery: this attempt says nothing.
    Delivered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Joined => "joined",
            Self::Replayed => "replayed",
            Self::Interim => "interim",
            Self::Held => "held",
            Self::Shed => "shed",
            Self::Delivered => "delivered",
        }
    }
}

/// De-duplicates WeChat's attempts and decides when each is answered. One
/// per account ([`ReplyWindow::for_account`]); the accounts of a gateway
/// share its memory of messages, its limit on work and its stop.
#[derive(Clone)]
pub struct ReplyWindow {
    settings: WindowSettings,
    /// The account's name, for the series.
    account: Arc<str>,
    /// Put before message keys (here and in Redis) for an account of an
    /// accounts file; `None` for the single account, whose keys are as they
    /// were before accounts existed.
    scope: Option<Arc<str>>,
    bot: BotLink,
    slots: Arc<Slots>,
    shared: Option<SharedStore>,
    courier: Option<Courier>,
    /// One permit per message whose work is running or whose reply is not
    /// yet given to an attempt or handed to delivery: past the limit a new
    /// message is answered "busy" at once instead of piling up work (and
    /// memory) behind a slow catalog. A reply given passively releases it at
    /// once, not when WeChat's retry window ends: what the message needs
    /// after that is its slot, which the window's capacity bounds.
    works: Arc<Semaphore>,
    /// Every work in flight, so that a stop can wait for them.
    tracker: TaskTracker,
    /// Cancelled when the gateway stops: work hands its message to the
    /// other replicas, or (alone) finishes.
    stopping: CancellationToken,
}

impl ReplyWindow {
    /// The gateway's window, before any account: what the accounts share.
    pub fn new(
        settings: WindowSettings,
        max_in_flight: usize,
        bot: BotLink,
        shared: Option<SharedStore>,
    ) -> Self {
        Self {
            settings,
            // Named by `for_account`, which every account's window comes from.
            account: "".into(),
            scope: None,
            bot,
            slots: Arc::new(Slots::new(settings.capacity, MEMORY)),
            shared,
            courier: None,
            works: Arc::new(Semaphore::new(max_in_flight)),
            tracker: TaskTracker::new(),
            stopping: CancellationToken::new(),
        }
    }

    /// The window of the account `name`, delivering through `courier`;
    /// `scoped` for an account of an accounts file, whose messages and
    /// promises are kept apart from the others'.
    pub fn for_account(&self, name: &str, scoped: bool, courier: Option<Courier>) -> Self {
        let window = Self {
            account: name.into(),
            scope: scoped.then(|| name.into()),
            shared: match &self.shared {
                Some(shared) if scoped => Some(shared.for_account(name)),
                shared => shared.clone(),
            },
            courier,
            ..self.clone()
        };
        if window.shared.is_some() && window.courier.is_some() {
            tokio::spawn(window.clone().sweep());
        }
        window
    }

    /// The message's key across its attempts, within this account.
    fn key(&self, message: &InboundMessage) -> String {
        let key = message_key(message);
        match &self.scope {
            Some(scope) => format!("{scope}/{key}"),
            None => key,
        }
    }

    /// The gateway stops (after its last attempt was answered). With Redis
    /// every work still running gives its lease up, so that WeChat's next
    /// attempt or a promise sweep at another replica takes it over at once;
    /// a reply already made is delivered first when it was promised.
    /// Without Redis this replica is the only one: its work finishes. Returns
    /// when every work has.
    pub async fn stop(&self) {
        self.stopping.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// The courier, while it may deliver.
    fn courier(&self) -> Option<&Courier> {
        self.courier.as_ref().filter(|courier| courier.active())
    }

    /// How long a message's work may run: until the delivery deadline when
    /// late replies are delivered, WeChat's three attempts otherwise.
    fn work_deadline(&self) -> Duration {
        self.courier()
            .map_or(WECHAT_PATIENCE, |courier| courier.deadline())
    }

    /// The answer to one attempt at `message`, which reached the gateway at
    /// `arrived`; `None` when the attempt is to end without an answer.
    pub async fn answer(
        &self,
        message: InboundMessage,
        arrived: Instant,
    ) -> (Option<Reply>, Outcome) {
        let key = self.key(&message);
        let slot = self.slots.get_or_insert(&key);
        let local_attempt = slot.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let attempt = match &self.shared {
            Some(shared) => shared.attempt(&key).await.unwrap_or(local_attempt),
            None => local_attempt,
        };

        if let Some(reply) = self.finished(&slot, &key).await {
            return self.give(&slot, &key, reply, Outcome::Replayed).await;
        }

        // A new message needs a permit for its work, and so does taking over
        // work whose replica stopped renewing its lease. A retry goes on
        // without one otherwise: its work runs (or ran) somewhere, and "busy"
        // would end WeChat's retries and hide the reply.
        let started = slot.started.load(Ordering::SeqCst);
        let permit = if started && !slot.remote.load(Ordering::SeqCst) {
            None
        } else {
            match self.works.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) if attempt == 1 && !started => {
                    return (Some(bot_link::busy()), Outcome::Shed);
                }
                Err(_) => None,
            }
        };
        let owner = permit.is_some() && self.take_work(&slot, &key).await;
        let reader = message.from_user.clone();
        // The work this attempt started: driven while it waits for the
        // reply, a task of its own from when the attempt ends.
        let mut work = None;
        // Kept (when promises are shared) so that a promise can be recorded
        // with the message, for any replica to keep.
        let message = match (owner, permit) {
            (true, Some(permit)) => {
                let kept = self.shares_promises().then(|| message.clone());
                let deadline = self.work_deadline();
                work = Some(self.work(message, key.clone(), slot.clone(), permit, deadline, None));
                kept
            }
            _ => Some(message),
        };
        let outcome = if owner && attempt == 1 {
            Outcome::Fresh
        } else {
            Outcome::Joined
        };

        let last = attempt >= WECHAT_ATTEMPTS || self.settings.policy == ReplyPolicy::Immediate;
        if !last {
            return match self.wait(&slot, &key, arrived + HOLD, work.as_mut()).await {
                Some(reply) => self.give(&slot, &key, reply, outcome).await,
                None => (None, Outcome::Held),
            };
        }
        let budget = arrived + self.settings.budget;
        if let Some(reply) = self.wait(&slot, &key, budget, work.as_mut()).await {
            return self.give(&slot, &key, reply, outcome).await;
        }
        let Some(courier) = self.courier() else {
            return (Some(self.interim(INTERIM_TEXT)), Outcome::Interim);
        };
        match self.settle(&slot, &key, Fate::Late).await {
            Fate::Late => {
                if let (Some(shared), Some(message)) = (&self.shared, message) {
                    let left = self
                        .work_deadline()
                        .saturating_sub(slot.first_seen.elapsed());
                    let deadline = SystemTime::now() + left;
                    shared.promise(&key, &Pending { message, deadline }).await;
                }
                let (courier, reader) = (courier.clone(), reader);
                tokio::spawn(async move { courier.typing(&reader).await });
                (Some(self.interim(INTERIM_DELIVERY_TEXT)), Outcome::Interim)
            }
            // Another attempt gave the reply already: this one is a copy of it.
            Fate::Answered => match self.finished(&slot, &key).await {
                Some(reply) => (Some(reply), Outcome::Replayed),
                None => (Some(self.interim(INTERIM_TEXT)), Outcome::Interim),
            },
        }
    }

    /// An attempt about to answer with the real reply. With delivery on, it
    /// first claims the reply for the passive answer; when the message was
    /// already promised for delivery, the courier brings it and this attempt
    /// answers with nothing, so the reader never gets it twice.
    async fn give(
        &self,
        slot: &Slot,
        key: &str,
        reply: Reply,
        outcome: Outcome,
    ) -> (Option<Reply>, Outcome) {
        if self.courier().is_some() && self.settle(slot, key, Fate::Answered).await == Fate::Late {
            return (Some(self.interim_none()), Outcome::Delivered);
        }
        (Some(reply), outcome)
    }

    /// The finished reply, from this process or the shared store.
    async fn finished(&self, slot: &Slot, key: &str) -> Option<Reply> {
        if let Some(reply) = slot.finished() {
            return Some(reply);
        }
        let reply = self.shared.as_ref()?.finished(key).await?;
        slot.reply.publish(reply.clone());
        Some(reply)
    }

    /// Whether this attempt starts the message's work, or takes it over from
    /// a replica that stopped renewing its lease.
    async fn take_work(&self, slot: &Slot, key: &str) -> bool {
        if slot.remote.load(Ordering::SeqCst) {
            return self.claim(slot, key).await;
        }
        !slot.started.swap(true, Ordering::SeqCst) && self.claim(slot, key).await
    }

    /// Promises are recorded where every replica sees them.
    fn shares_promises(&self) -> bool {
        self.shared.is_some() && self.courier().is_some()
    }

    /// Claims the work across replicas; without a shared store (or when it is
    /// down) this process simply does the work.
    async fn claim(&self, slot: &Slot, key: &str) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let claimed = shared.claim(key, LEASE).await.unwrap_or(true);
        slot.remote.store(!claimed, Ordering::SeqCst);
        claimed
    }

    /// Decides the message's fate — across replicas when Redis is there,
    /// in this process otherwise — and returns the one decided.
    async fn settle(&self, slot: &Slot, key: &str, fate: Fate) -> Fate {
        let decided = match &self.shared {
            Some(shared) => {
                shared
                    .settle(key, fate, self.work_deadline() + WECHAT_PATIENCE)
                    .await
            }
            None => None,
        };
        match decided {
            Some(decided) => {
                slot.settle(decided);
                decided
            }
            None => slot.settle(fate),
        }
    }

    /// Once the reply is ready: waits for an attempt (here or on another
    /// replica) to decide how it reaches the reader; `None` when WeChat's
    /// last attempt is past and none did.
    async fn decided_fate(&self, slot: &Slot, key: &str) -> Option<Fate> {
        if let Some(fate) = slot.fate.get() {
            return Some(fate);
        }
        let from_local = async { Some(slot.fate.wait().await) };
        // Only an attempt on another replica leaves the local fate open, so
        // the shared store is asked after a pause, not at once.
        let from_shared = async {
            let Some(shared) = &self.shared else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(SHARED_FATE_POLL).await;
                if let Some(fate) = shared.fate(key).await {
                    return Some(slot.settle(fate));
                }
            }
        };
        tokio::select! {
            fate = from_local => fate,
            fate = from_shared => fate,
            () = tokio::time::sleep_until(slot.first_seen + WECHAT_PATIENCE) => None,
        }
    }

    /// A message's work, to run to its end whoever drives it: the bot's
    /// reply within `deadline` (unless `ready`, a reply another replica
    /// made), then, with delivery on, its fate and its delivery.
    fn work(
        &self,
        message: InboundMessage,
        key: String,
        slot: Arc<Slot>,
        permit: OwnedSemaphorePermit,
        deadline: Duration,
        ready: Option<Reply>,
    ) -> Work {
        let window = self.clone();
        // A child of the attempt that started it, in the same trace, though
        // it may outlive that attempt; calls made inside carry the tag.
        let span = tracing::info_span!("work");
        let tag = message_tag(&message);
        // Never tied to an attempt: it runs to the end even when WeChat drops
        // the connection of the attempt that started it.
        let work = async move {
            let reader = message.from_user.clone();
            let reply = async {
                match ready {
                    Some(reply) => reply,
                    None => window.bot.reply(message, deadline).await,
                }
            };
            let reply = tokio::select! {
                reply = reply => reply,
                never = window.keep_lease(&key) => match never {},
                () = window.stopping.cancelled(), if window.shared.is_some() => {
                    // Stopping, the reply not made: the other replicas take
                    // the work over (WeChat's next attempt, or the sweep of
                    // a promise), now that the lease is free.
                    window.hand_off(&slot, &key).await;
                    return;
                }
            };
            // Published (here first: a slow Redis must not delay the attempts
            // waiting in this process) before any fate is settled, so an
            // attempt that loses the race below finds the reply.
            slot.reply.publish(reply.clone());
            if let Some(shared) = &window.shared {
                shared.finish(&key, &reply).await;
            }
            // Attempts may still give the reply passively until WeChat's last
            // one has been answered; past that nobody will, so unless an
            // attempt did, it is delivered. This also covers a last attempt
            // that never settled (its connection dropped, its count lost),
            // and a replica that stops meanwhile: its last chance to deliver.
            if window.courier().is_some() {
                // The attempt the reply just woke usually gives it at once:
                // letting it run first spares this work a wait (and a timer)
                // for a fate that is then already decided.
                tokio::task::yield_now().await;
                let decided = tokio::select! {
                    fate = window.decided_fate(&slot, &key) => fate,
                    never = window.keep_lease(&key) => match never {},
                    () = window.stopping.cancelled() => None,
                };
                let fate = match decided {
                    Some(fate) => fate,
                    None => window.settle(&slot, &key, Fate::Late).await,
                };
                // Boxed: a delivery (an HTTPS call to WeChat) is the largest
                // state here and the rare case; inline, every message's work
                // would carry it.
                if fate == Fate::Late {
                    Box::pin(window.deliver(&key, &reader, &reply)).await;
                }
            }
            // Given, delivered or past delivering: the work is over.
            drop(permit);
        };
        // Boxed: the work's state machine (the bot call, the lease, the fate,
        // the delivery) is tens of kilobytes, and each wrapper and the task
        // would otherwise copy it whole — measured at ~80,000 instructions of
        // memcpy per message; moving a box costs a pointer.
        let work = Box::pin(work);
        Work::new(
            &self.tracker,
            Box::pin(doumi_runtime::telemetry::for_message(tag, work).instrument(span)),
        )
    }

    /// Renews this replica's lease on the message's work for as long as it
    /// is polled (never ends); nothing to renew without Redis.
    async fn keep_lease(&self, key: &str) -> Infallible {
        let Some(shared) = &self.shared else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            shared.renew(key, LEASE).await;
        }
    }

    /// Leaves a message's work to the other replicas.
    async fn hand_off(&self, slot: &Slot, key: &str) {
        if let Some(shared) = &self.shared {
            shared.release(key).await;
        }
        if slot.fate.get() == Some(Fate::Late) {
            metrics::counter!(crate::metrics::PROMISES, "account" => self.account.clone(), "outcome" => "handed_off")
                .increment(1);
        }
    }

    /// Sends a promised reply, once across replicas: a replica that took the
    /// work over may have made the same reply.
    async fn deliver(&self, key: &str, reader: &str, reply: &Reply) {
        let Some(courier) = self.courier() else {
            return;
        };
        if let Some(shared) = &self.shared
            && shared
                .sent(key, self.work_deadline() + WECHAT_PATIENCE)
                .await
                == Some(false)
        {
            return;
        }
        courier
            .deliver(reader, reply)
            .instrument(tracing::info_span!("deliver"))
            .await;
    }

    /// Looks, every [`SWEEP_EVERY`] until the gateway stops, for promises
    /// whose replica stopped renewing their lease, and keeps them.
    async fn sweep(self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        loop {
            tokio::select! {
                () = self.stopping.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            if self.courier().is_none() {
                continue;
            }
            let Some((due, expired)) = shared.due().await else {
                continue;
            };
            if expired > 0 {
                metrics::counter!(crate::metrics::PROMISES, "account" => self.account.clone(), "outcome" => "expired")
                    .increment(expired);
                tracing::warn!(
                    expired,
                    "promised replies passed their deadline undelivered"
                );
            }
            for key in due {
                if self.stopping.is_cancelled() {
                    return;
                }
                if shared.claim(&key, LEASE).await == Some(true) {
                    self.take_over(&shared, key).await;
                }
            }
        }
    }

    /// Keeps a promise whose lease this replica just won: its reply, made
    /// again unless some replica stored it, delivered before its deadline.
    async fn take_over(&self, shared: &SharedStore, key: String) {
        let Some(pending) = shared.pending(&key).await else {
            shared.release(&key).await;
            return;
        };
        let Ok(permit) = self.works.clone().try_acquire_owned() else {
            // Busy: the next sweep here or at another replica takes it.
            shared.release(&key).await;
            return;
        };
        let left = pending
            .deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let slot = self.slots.get_or_insert(&key);
        slot.started.store(true, Ordering::SeqCst);
        slot.remote.store(false, Ordering::SeqCst);
        slot.settle(Fate::Late);
        let ready = shared.finished(&key).await;
        metrics::counter!(crate::metrics::PROMISES, "account" => self.account.clone(), "outcome" => "taken_over")
            .increment(1);
        tracing::info!(
            message = %message_tag(&pending.message),
            "took over a promised reply whose replica stopped"
        );
        self.work(pending.message, key, slot, permit, left, ready)
            .detach();
    }

    /// Waits until the reply exists or `deadline` passes, driving `work`
    /// (the message's, when this attempt started it) meanwhile.
    async fn wait(
        &self,
        slot: &Slot,
        key: &str,
        deadline: Instant,
        work: Option<&mut Work>,
    ) -> Option<Reply> {
        let from_local = async { Some(slot.reply.wait().await) };
        let from_shared = async {
            // Alone, the reply can only come from this process: no poll, and
            // no timer per attempt for one.
            if self.shared.is_none() {
                return std::future::pending().await;
            }
            loop {
                if slot.remote.load(Ordering::SeqCst)
                    && let Some(reply) = self.finished(slot, key).await
                {
                    return Some(reply);
                }
                tokio::time::sleep(SHARED_POLL).await;
            }
        };
        let driven = async {
            match work {
                Some(work) => work.drive().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            reply = from_local => reply,
            reply = from_shared => reply,
            never = driven => match never {},
            () = tokio::time::sleep_until(deadline) => None,
        }
    }

    /// Nothing for WeChat to show (`success`).
    fn interim_none(&self) -> Reply {
        Reply::none()
    }

    fn interim(&self, text: &str) -> Reply {
        match self.settings.interim {
            Interim::Text => Reply::text(text),
            Interim::Success => Reply::none(),
        }
    }
}
