//! The gateway's own series, beside the process and gRPC ones every service
//! has and the WeChat API's.

use std::sync::Once;

pub const REQUESTS: &str = "doumi_gateway_requests_total";
pub const REPLIES: &str = "doumi_gateway_replies_total";
pub const ATTEMPT_LATENCY: &str = "doumi_gateway_attempt_seconds";
pub const REFUSALS: &str = "doumi_gateway_refusals_total";
pub const CRYPTO_FAILURES: &str = "doumi_gateway_crypto_failures_total";
pub const BOT_LATENCY: &str = "doumi_gateway_bot_latency_seconds";
pub const BOT_ERRORS: &str = "doumi_gateway_bot_errors_total";
pub const DEADLINE_HITS: &str = "doumi_gateway_deadline_hits_total";
pub const DELIVERIES: &str = "doumi_gateway_deliveries_total";
pub const WINDOW_EVICTIONS: &str = "doumi_gateway_window_evictions_total";
pub const PROMISES: &str = "doumi_gateway_promises_total";
pub const ACCOUNT_CHECKS: &str = "doumi_gateway_account_checks_total";
pub const PREVIOUS_KEY: &str = "doumi_gateway_previous_key_total";
pub const ACCOUNT_DELIVERING: &str = "doumi_gateway_account_delivering";

/// Every series of the gateway's own.
pub const NAMES: &[&str] = &[
    REQUESTS,
    REPLIES,
    ATTEMPT_LATENCY,
    REFUSALS,
    CRYPTO_FAILURES,
    BOT_LATENCY,
    BOT_ERRORS,
    DEADLINE_HITS,
    DELIVERIES,
    WINDOW_EVICTIONS,
    PROMISES,
    ACCOUNT_CHECKS,
    PREVIOUS_KEY,
    ACCOUNT_DELIVERING,
];

/// Installs the process-wide recorder and describes the gateway's series
/// (and the WeChat API client's), once.
pub fn install() {
    static DESCRIBED: Once = Once::new();
    doumi_runtime::metrics::describe_once(&DESCRIBED, describe);
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "Attempts at a message WeChat sent, by message kind and how each was answered"
    );
    describe_counter!(REPLIES, "Replies given passively, by reply kind");
    describe_histogram!(
        ATTEMPT_LATENCY,
        Unit::Seconds,
        "Time from an attempt's arrival to its answer (answered attempts; WeChat waits 5 s)"
    );
    describe_counter!(
        REFUSALS,
        "Requests refused before reaching the bot, by reason"
    );
    describe_counter!(
        CRYPTO_FAILURES,
        "Safe-mode messages that failed to decrypt or verify, by WeChat's error code"
    );
    describe_histogram!(BOT_LATENCY, Unit::Seconds, "Time the bot took to reply");
    describe_counter!(BOT_ERRORS, "Bot calls that failed");
    describe_counter!(DEADLINE_HITS, "Bot calls cut off at the message's deadline");
    describe_counter!(
        DELIVERIES,
        "Replies that missed WeChat's window, sent as customer-service messages, by outcome"
    );
    describe_counter!(
        WINDOW_EVICTIONS,
        "Messages forgotten early because the reply window was full"
    );
    describe_counter!(
        PROMISES,
        "Replies promised for delivery that changed hands, by outcome: handed_off (this replica \
         stopped and left it to the others), taken_over (this replica took over one whose \
         replica stopped or died), expired (its deadline passed with nobody to deliver it)"
    );
    describe_counter!(
        ACCOUNT_CHECKS,
        "Checks of an account's credentials with WeChat (at start, then while WeChat refuses \
         it), by account and result: ok or WeChat's errcode"
    );
    describe_counter!(
        PREVIOUS_KEY,
        "Safe-mode messages opened with the account's previous EncodingAESKey, by account: \
         once it stays at zero the previous key can be dropped"
    );
    describe_gauge!(
        ACCOUNT_DELIVERING,
        "1 while replies that miss WeChat's window are promised and delivered for the account \
         (an AppSecret, and WeChat accepts it), 0 while WeChat refuses the account"
    );
    doumi_wechat::api::describe_metrics();
}
