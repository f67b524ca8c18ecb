//! Under load the gateway degrades, it does not fail: past its limit WeChat
//! still gets a valid answer inside its window, and the reply window's memory
//! stays within its bound however many distinct messages arrive. Run with
//! delivery on (an AppSecret and WeChat's API), as production runs: the limit
//! counts work in flight, not messages WeChat may still retry.

use std::time::Duration;

use doumi_gateway::{BOT_UNAVAILABLE, window::WindowSettings};
use doumi_tests::{
    FakeDouban, FakeWechatApi, StackOptions, TestStack,
    stack::GatewayOptions,
    wechat::{Attempt, WechatClient},
};
use doumi_wechat::peer;

/// A stack working on at most `limit` messages at once, with delivery on as
/// in production; Douban answers after `delay`.
async fn limited_stack(limit: usize, delay: Duration) -> (FakeDouban, FakeWechatApi, TestStack) {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(delay);
    let wechat_api = FakeWechatApi::start().await.expect("wechat api");
    let stack = TestStack::start(StackOptions {
        douban_url: Some(douban.url().to_owned()),
        gateway: GatewayOptions {
            max_in_flight: Some(limit),
            wechat_api_url: Some(wechat_api.url().to_owned()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("stack");
    (douban, wechat_api, stack)
}

#[tokio::test]
async fn four_times_the_limit_all_get_a_valid_answer_in_time() {
    let limit = 4;
    let (_douban, _wechat_api, stack) = limited_stack(limit, Duration::from_secs(1)).await;
    let wechat = stack.wechat();

    let messages: Vec<String> = (0..limit * 4)
        .map(|i| WechatClient::text_from(&format!("oCrowd{i:02}"), "9787121139512"))
        .collect();
    let attempts =
        futures::future::join_all(messages.iter().map(|xml| wechat.deliver_like_wechat(xml))).await;

    let (mut books, mut busy) = (0, 0);
    for attempts in &attempts {
        // Answered on the first attempt: in time, and nothing WeChat would retry.
        let [Attempt::Answered(answer)] = attempts.as_slice() else {
            panic!("every message answered at once: {attempts:?}");
        };
        assert_eq!(answer.status, 200);
        let Some(peer::ParsedReply::Text { content: text, .. }) = peer::parse_reply(&answer.body)
        else {
            panic!("not a text reply WeChat could show: {answer:?}");
        };
        if text.contains("《浪潮之巅》") {
            books += 1;
        } else {
            assert_eq!(text, BOT_UNAVAILABLE);
            busy += 1;
        }
    }
    assert!(
        books >= limit,
        "the admitted messages got the book: {books}"
    );
    assert!(
        busy >= limit * 2,
        "the rest were told to send again: {busy}"
    );
    let metrics = stack.gateway_metrics().await;
    assert!(
        metrics.contains(
            r#"doumi_gateway_requests_total{account="default",kind="text",outcome="shed"}"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_steady_stream_far_past_the_limit_is_never_told_busy() {
    // Each message is answered on its first attempt within milliseconds, yet
    // WeChat may retry it for 15 s: the ten times the limit sent here, one
    // after another, arrive well inside those 15 s.
    let limit = 8;
    let (_douban, wechat_api, stack) = limited_stack(limit, Duration::ZERO).await;
    let wechat = stack.wechat();

    let stream = limit * 10;
    for i in 0..stream {
        let xml = WechatClient::text_from(&format!("oStream{i:03}"), "9787121139512");
        let attempts = wechat.deliver_like_wechat(&xml).await;
        let [Attempt::Answered(answer)] = attempts.as_slice() else {
            panic!("message {i} answered on its first attempt: {attempts:?}");
        };
        let Some(peer::ParsedReply::Text { content: text, .. }) = peer::parse_reply(&answer.body)
        else {
            panic!("message {i}: not a text reply WeChat could show: {answer:?}");
        };
        assert!(text.contains("《浪潮之巅》"), "message {i} got: {text}");
    }
    // (The gateway's counters are the test process's, shared with the other
    // tests here: the replies above are what shows nothing was shed.)
    assert_eq!(
        wechat_api.api().send_calls(),
        0,
        "nothing answered passively was delivered again"
    );
}

#[tokio::test]
async fn a_flood_of_distinct_messages_stays_within_the_window_bound() {
    let douban = FakeDouban::start().await.expect("douban");
    let capacity = 100;
    let stack = TestStack::start(StackOptions {
        douban_url: Some(douban.url().to_owned()),
        gateway: GatewayOptions {
            window: Some(WindowSettings {
                capacity,
                ..WindowSettings::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("stack");
    let wechat = stack.wechat();
    let flood = 1000;
    for i in 0..flood {
        let answer = wechat
            .post_signed(&WechatClient::text_from("oFlood", "help"))
            .await;
        assert_eq!(answer.status, 200, "message {i}");
    }
    let metrics = stack.gateway_metrics().await;
    let evicted: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("doumi_gateway_window_evictions_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no eviction count in:\n{metrics}"));
    assert!(
        evicted >= f64::from(flood - capacity as u32),
        "{evicted} evictions for {flood} messages in a window of {capacity}"
    );
}
