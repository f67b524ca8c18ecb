//! The WeChat API client's series.

/// WeChat API calls that ended in an error, by call and `errcode`.
pub const API_ERRORS: &str = "doumi_wechat_api_errors_total";
/// `access_token` requests to WeChat, by kind (`fetch`, `forced`).
pub const TOKEN_REQUESTS: &str = "doumi_wechat_token_requests_total";
/// Every series of the WeChat API client.
pub const METRIC_NAMES: &[&str] = &[API_ERRORS, TOKEN_REQUESTS];

/// HELP text for the WeChat API client's series.
pub fn describe_metrics() {
    metrics::describe_counter!(
        API_ERRORS,
        "WeChat API calls that ended in an error (after retries), by call and errcode"
    );
    metrics::describe_counter!(
        TOKEN_REQUESTS,
        "access_token requests sent to WeChat, by kind (fetch, forced)"
    );
}
