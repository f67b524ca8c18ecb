//! WeChat's API for the end-to-end tests: the stand-in `doumi up` serves
//! (tokens, customer-service messages, typing, menus, refusals on demand) on
//! a loopback port, with polling helpers for what a reader receives later.

use std::time::Duration;

use doumi_wechat::stand_in::StandIn;
use serde_json::Value;

use crate::{
    fake_upstream::Running,
    stack::{APP_ID, APP_SECRET, BRANCH_APP_ID, BRANCH_APP_SECRET},
};

/// How long a test waits for a late reply before failing: well past any
/// delivery deadline the tests set, so only a lost reply fails it.
const PATIENCE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);

/// A fake of WeChat's API for the test accounts (`APP_ID`, and
/// `BRANCH_APP_ID` for the tests of two accounts), stopped when dropped.
pub type FakeWechatApi = Running<StandIn>;

impl FakeWechatApi {
    pub async fn start() -> anyhow::Result<Self> {
        let stand_in =
            StandIn::for_accounts(&[(APP_ID, APP_SECRET), (BRANCH_APP_ID, BRANCH_APP_SECRET)]);
        Running::serve(stand_in, |stand_in| stand_in.router()).await
    }

    /// What it has seen, and refusals to inject.
    pub fn api(&self) -> &StandIn {
        self.state()
    }

    /// The first `count` customer-service messages `reader` receives;
    /// waits for them.
    pub async fn wait_for_messages(&self, reader: &str, count: usize) -> Vec<Value> {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        loop {
            let delivered = self.api().delivered_to(reader);
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "{reader} received {} of {count} messages: {delivered:?}",
                delivered.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `custom/send` has been called `count` times.
    pub async fn wait_for_send_calls(&self, count: u64) {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        while self.api().send_calls() < count {
            assert!(
                tokio::time::Instant::now() < give_up,
                "custom/send called {} of {count} times",
                self.api().send_calls()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The text of a customer-service text message.
pub fn text_of(message: &Value) -> &str {
    message
        .pointer("/text/content")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("not a text message: {message}"))
}
