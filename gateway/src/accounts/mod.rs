//! The official accounts a gateway serves. `settings` reads them (the
//! single-account variables or the accounts file); here each is live: its
//! endpoint (Token and keys, `doumi_wechat::envelope`) checks, opens and
//! seals its callbacks, its reply window and its courier answer them.
//! `routes` finds a request's account by its path, and nothing one account
//! holds serves another.

mod settings;

use std::{collections::HashMap, fmt::Write, sync::Arc};

use doumi_runtime::metrics::{Counters, Histograms};
use doumi_wechat::envelope::Endpoint;

pub use doumi_wechat::envelope::WechatToken;
pub use settings::{
    ACCOUNTS_FILE_VAR, AccountSettings, Accounts, Origin, RawAccount, SINGLE_ACCOUNT, load_file,
};

use crate::{delivery::Courier, metrics as m, window::ReplyWindow};

/// One account, live.
pub struct Account {
    name: Arc<str>,
    endpoint: Endpoint,
    window: ReplyWindow,
    courier: Option<Courier>,
    /// Its attempts by message kind and outcome, and its replies by kind.
    requests: Counters<2>,
    replies: Counters<1>,
    /// How long each attempt took to answer (one series for every account).
    attempt_latency: Histograms<0>,
}

impl Account {
    pub fn new(settings: AccountSettings, window: ReplyWindow, courier: Option<Courier>) -> Self {
        let name: Arc<str> = settings.name.into();
        let account = || vec![metrics::Label::new("account", name.to_string())];
        Self {
            endpoint: Endpoint::new(settings.token, settings.keys, settings.require_encryption),
            window,
            courier,
            requests: Counters::new(m::REQUESTS, ["kind", "outcome"], account()),
            replies: Counters::new(m::REPLIES, ["kind"], account()),
            attempt_latency: Histograms::new(m::ATTEMPT_LATENCY, [], Vec::new()),
            name,
        }
    }

    /// Counts one of WeChat's attempts: the message's kind and what became of it.
    pub fn count_request(&self, kind: &'static str, outcome: &'static str) {
        self.requests.increment([kind, outcome]);
    }

    /// Counts a reply given, by its kind.
    pub fn count_reply(&self, kind: &'static str) {
        self.replies.increment([kind]);
    }

    /// Records how long an attempt took, from arrival to the reply's bytes.
    pub fn time_attempt(&self, took: std::time::Duration) {
        self.attempt_latency.record([], took.as_secs_f64());
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its Token and keys: what checks, opens and seals its callbacks.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn window(&self) -> &ReplyWindow {
        &self.window
    }

    /// One line for `/readyz`: whether replies that miss WeChat's window
    /// reach the reader, and if not, why.
    fn standing(&self) -> String {
        match &self.courier {
            Some(courier) => courier.standing().to_string(),
            None => "no AppSecret: readers whose reply misses the window are asked to send again"
                .to_owned(),
        }
    }
}

/// Every account of the gateway, by where WeChat posts to it.
pub struct Directory {
    /// The single account, at `/wechat`.
    root: Option<Arc<Account>>,
    /// The accounts of an accounts file, at `/wechat/NAME`.
    named: HashMap<String, Arc<Account>>,
}

impl Directory {
    pub fn single(account: Account) -> Self {
        Self {
            root: Some(Arc::new(account)),
            named: HashMap::new(),
        }
    }

    pub fn named(accounts: impl IntoIterator<Item = Account>) -> Self {
        Self {
            root: None,
            named: accounts
                .into_iter()
                .map(|account| (account.name.to_string(), Arc::new(account)))
                .collect(),
        }
    }

    /// The account served at `/wechat`.
    pub fn root(&self) -> Option<&Arc<Account>> {
        self.root.as_ref()
    }

    /// The account served at `/wechat/NAME`.
    pub fn get(&self, name: &str) -> Option<&Arc<Account>> {
        self.named.get(name)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.root.iter().chain(self.named.values())
    }

    /// Each account's standing with WeChat, a line each, sorted by name.
    pub fn standing(&self) -> String {
        let mut accounts: Vec<_> = self.all().collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::new();
        for account in accounts {
            let _ = writeln!(text, "account {}: {}", account.name, account.standing());
        }
        text
    }
}
