//! A reader's messages through gateway → bot → catalog → (fake) Douban and
//! Redis, driven exactly as WeChat drives the gateway.

use doumi_tests::{FakeDouban, RedisServer, StackOptions, TestStack};
use redis::AsyncCommands;

/// Everything real: fake Douban upstream, real Redis cache.
struct World {
    douban: FakeDouban,
    redis: RedisServer,
    stack: TestStack,
}

async fn world() -> World {
    let douban = FakeDouban::start().await.expect("fake douban");
    let redis = RedisServer::start().await.expect("redis-server");
    let stack = TestStack::start(StackOptions {
        douban_url: Some(douban.url().to_owned()),
        redis: Some(redis.target()),
        ..Default::default()
    })
    .await
    .expect("stack");
    World {
        douban,
        redis,
        stack,
    }
}

const WAVE: &str = "/v2/book/isbn/9787121139512";

#[tokio::test]
async fn isbn13_returns_the_book_with_what_a_reader_checks() {
    let w = world().await;
    let text = w.stack.wechat().send_text("9787121139512").await.text();
    for part in [
        "《浪潮之巅》",
        "吴军",
        "电子工业出版社",
        "2011",
        "豆瓣评分：9.1",
        "https://book.douban.com/subject/6709783/",
    ] {
        assert!(text.contains(part), "{part:?} missing in {text}");
    }
}

#[tokio::test]
async fn isbn10_and_hyphenated_isbn_find_the_same_book() {
    let w = world().await;
    let wechat = w.stack.wechat();
    for input in ["7121139510", "978-7-121-13951-2", "978 7 121 13951 2"] {
        let text = wechat.send_text(input).await.text();
        assert!(text.contains("《浪潮之巅》"), "{input}: {text}");
    }
    // All three normalise to one ISBN-13: the upstream was asked once.
    assert_eq!(w.douban.calls(WAVE), 1);
}

#[tokio::test]
async fn keywords_search_titles_and_authors() {
    let w = world().await;
    let text = w.stack.wechat().send_text("白夜行").await.text();
    assert!(
        text.contains("《白夜行》") && text.contains("东野圭吾"),
        "{text}"
    );
    assert!(
        text.contains("1. 《白夜行》") && text.ends_with("回复序号看详情"),
        "search results are numbered: {text}"
    );
    let book = w.stack.wechat().send_text("1").await.text();
    assert!(
        book.contains("《白夜行》") && book.contains("东野圭吾"),
        "the number opens the book: {book}"
    );
}

#[tokio::test]
async fn unknown_isbn_says_not_found() {
    let w = world().await;
    let text = w.stack.wechat().send_text("9787540438845").await.text();
    assert!(
        text.contains("没有找到") && text.contains("9787540438845"),
        "{text}"
    );
}

#[tokio::test]
async fn wrong_check_digit_is_explained_not_searched() {
    let w = world().await;
    let text = w.stack.wechat().send_text("9787121139513").await.text();
    assert!(text.contains("不是有效的 ISBN"), "{text}");
    assert_eq!(
        w.douban.total_calls(),
        0,
        "an invalid ISBN never reaches the upstream"
    );
}

#[tokio::test]
async fn subscribe_gets_a_welcome_with_usage() {
    let w = world().await;
    let text = w.stack.wechat().send_event("subscribe", "").await.text();
    assert!(
        text.contains("欢迎关注豆米查书") && text.contains("ISBN"),
        "{text}"
    );
}

#[tokio::test]
async fn unsubscribe_gets_success_and_nothing_else() {
    let w = world().await;
    let answer = w.stack.wechat().send_event("unsubscribe", "").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
}

#[tokio::test]
async fn help_in_english_chinese_and_a_question_mark() {
    let w = world().await;
    let wechat = w.stack.wechat();
    for word in ["help", "帮助", "?"] {
        let text = wechat.send_text(word).await.text();
        assert!(text.contains("使用说明"), "{word}: {text}");
    }
}

#[tokio::test]
async fn second_lookup_is_served_from_redis() {
    let w = world().await;
    let wechat = w.stack.wechat();
    let first = wechat.send_text("9787121139512").await.text();
    let second = wechat.send_text("9787121139512").await.text();
    assert_eq!(first, second);
    assert_eq!(
        w.douban.calls(WAVE),
        1,
        "the second lookup must not reach Douban"
    );
    let mut redis = w.redis.connection().await.expect("redis connection");
    let ttl: i64 = redis
        .ttl("doumi:catalog:v1:isbn:9787121139512")
        .await
        .expect("ttl");
    assert!(
        ttl > 0,
        "the book is cached in Redis with a TTL (ttl = {ttl})"
    );
}

#[tokio::test]
async fn douban_failing_gets_an_apology_not_an_http_error() {
    let w = world().await;
    w.douban.fail_with(Some(500));
    let text = w.stack.wechat().send_text("9787121139512").await.text();
    assert!(text.contains("抱歉"), "{text}");
    // Once Douban recovers, so does the answer.
    w.douban.fail_with(None);
    let text = w.stack.wechat().send_text("9787121139512").await.text();
    assert!(text.contains("《浪潮之巅》"), "{text}");
}

#[tokio::test]
async fn url_verification_echoes_only_with_the_right_signature() {
    let w = world().await;
    let wechat = w.stack.wechat();
    let ok = wechat.verify(None, "5927782489442352469").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "5927782489442352469"));
    let forged = wechat
        .verify(
            Some("a9993e364706816aba3e25717850c26c9cd0d89d"),
            "5927782489442352469",
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(!forged.body.contains("5927782489442352469"));
}

#[tokio::test]
async fn hostile_requests_get_4xx_and_the_gateway_keeps_serving() {
    let w = world().await;
    let wechat = w.stack.wechat();
    let body = doumi_wechat::peer::text_message(
        "u",
        "gh",
        doumi_tests::wechat::WechatClient::now(),
        1,
        "9787121139512",
    );

    let forged = wechat
        .post("signature=0000&timestamp=1&nonce=2", body.clone())
        .await;
    assert_eq!(forged.status, 403, "wrong signature");
    let unsigned = wechat.post("", body.clone()).await;
    assert_eq!(unsigned.status, 403, "no signature");
    let stale = wechat
        .post(
            &doumi_wechat::peer::signed_query(doumi_tests::stack::TOKEN, 1_409_735_669, "n"),
            body,
        )
        .await;
    assert_eq!(stale.status, 403, "a timestamp from 2014");
    assert_eq!(
        wechat.post_signed("<xml><ToUserName>").await.status,
        400,
        "broken XML"
    );
    assert_eq!(wechat.post_signed("").await.status, 400, "empty body");
    let dtd =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><xml><Content>&a;</Content></xml>";
    assert_eq!(wechat.post_signed(dtd).await.status, 400, "DTD");
    let huge = "a".repeat(10 * 1024 * 1024);
    assert_eq!(wechat.post_signed(&huge).await.status, 413, "10 MB body");

    let text = wechat.send_text("9787121139512").await.text();
    assert!(
        text.contains("《浪潮之巅》"),
        "still serving after the abuse: {text}"
    );
    assert_eq!(
        w.douban.total_calls(),
        1,
        "no refused request reached the upstream"
    );
}

#[tokio::test]
async fn offline_defaults_serve_the_sample_catalog() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack");
    let text = stack.wechat().send_text("9787121139512").await.text();
    assert!(
        text.contains("《浪潮之巅》") && text.contains("吴军"),
        "{text}"
    );
}

// === as a fleet ===

/// What the reader sees in an answer, whatever its kind.
fn seen(answer: &doumi_tests::wechat::Answer) -> String {
    match doumi_wechat::peer::parse_reply(&answer.body) {
        Some(doumi_wechat::peer::ParsedReply::Text { content, .. }) => content,
        Some(doumi_wechat::peer::ParsedReply::News { articles, .. }) => articles
            .iter()
            .map(|a| format!("{} {}", a.title, a.description))
            .collect(),
        other => format!("{other:?} (HTTP {})", answer.status),
    }
}

/// Readers sending ISBNs one after another, each message from a reader of
/// its own, until `stop`; what each message got that was not the book.
async fn readers(
    wechat: doumi_tests::wechat::WechatClient,
    readers: usize,
    stop: tokio_util::sync::CancellationToken,
) -> (usize, Vec<String>) {
    let one = |r: usize| {
        let (wechat, stop) = (wechat.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut sent, mut wrong) = (0, Vec::new());
            while !stop.is_cancelled() {
                let reader = format!("oFleet{r}x{sent:05}");
                let xml = doumi_tests::wechat::WechatClient::text_from(&reader, "9787121139512");
                let attempts = wechat.deliver_like_wechat(&xml).await;
                let answer = attempts.iter().find_map(|a| match a {
                    doumi_tests::wechat::Attempt::Answered(answer) => Some(seen(answer)),
                    doumi_tests::wechat::Attempt::TimedOut => None,
                });
                match answer {
                    Some(text) if text.contains("浪潮之巅") => {}
                    other => wrong.push(format!("{reader}: {other:?}")),
                }
                sent += 1;
            }
            (sent, wrong)
        })
    };
    let mut total = (0, Vec::new());
    for task in (0..readers).map(one).collect::<Vec<_>>() {
        let (sent, wrong) = task.await.expect("a reader");
        total.0 += sent;
        total.1.extend(wrong);
    }
    total
}

/// Lets the load run a little: long enough for messages to meet the change.
async fn meanwhile() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_rolling_restart_of_every_tier_and_a_killed_bot_cost_no_reader_an_answer() {
    let redis = RedisServer::start().await.expect("redis-server");
    let mut fleet = doumi_tests::fleet::Fleet::start(doumi_tests::fleet::FleetOptions {
        gateways: 1,
        bots: 3,
        catalogs: 2,
        redis: Some(redis.target()),
        ..Default::default()
    })
    .expect("fleet");
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(readers(fleet.wechat(0), 4, stop.clone()));
    meanwhile().await;

    // Each bot, then each catalog, stopped as Kubernetes stops a pod and
    // started again on its address while the readers keep sending.
    for i in 0..fleet.bots.len() {
        let old = fleet.bots.remove(i);
        let addr = old.addr;
        old.stop().await;
        meanwhile().await;
        fleet
            .bots
            .insert(i, fleet.bot(addr).expect("bot restarted"));
        meanwhile().await;
    }
    for i in 0..fleet.catalogs.len() {
        let old = fleet.catalogs.remove(i);
        let addr = old.addr;
        old.stop().await;
        meanwhile().await;
        fleet
            .catalogs
            .insert(i, fleet.catalog(addr).expect("catalog restarted"));
        meanwhile().await;
    }
    // A bot killed outright, its calls in flight.
    fleet.bots.remove(0).kill();
    meanwhile().await;

    stop.cancel();
    let (sent, wrong) = load.await.expect("the readers");
    assert!(sent > 0, "no message was sent");
    assert!(
        wrong.is_empty(),
        "{} of {sent} messages did not get the book: {wrong:#?}",
        wrong.len()
    );
}

/// A stack whose three services share `redis`, as a deployment's do.
async fn sharing(douban: &FakeDouban, redis: &RedisServer) -> TestStack {
    TestStack::start(sharing_options(douban, redis))
        .await
        .expect("stack")
}

fn sharing_options(douban: &FakeDouban, redis: &RedisServer) -> StackOptions {
    StackOptions {
        douban_url: Some(douban.url().to_owned()),
        redis: Some(redis.target()),
        gateway: doumi_tests::stack::GatewayOptions {
            redis: Some(redis.target()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Managed Redis speaks TLS only: the catalog's cache, the bot's
/// conversations and the gateway's record of WeChat's attempts all go
/// through `rediss://`, verified against the CA in DOUMI_REDIS_CA_FILE.
#[tokio::test]
async fn the_stack_shares_its_state_through_a_redis_that_speaks_only_tls() {
    let douban = FakeDouban::start().await.expect("fake douban");
    let redis = RedisServer::start_tls()
        .await
        .expect("redis-server --tls-port");
    // What is checked is where the state lives, not how fast: a debug
    // build's TLS handshake on a machine running eight stacks at once can
    // outlast the default 100 ms, and each service would rightly go on
    // without Redis.
    let stack = TestStack::start(StackOptions {
        redis_timeout: Some(std::time::Duration::from_secs(2)),
        ..sharing_options(&douban, &redis)
    })
    .await
    .expect("stack");
    let wechat = stack.wechat();
    let text = wechat.send_text("9787121139512").await.text();
    assert!(text.contains("《浪潮之巅》"), "{text}");
    let search = wechat.send_text("三体").await.text();
    assert!(
        search.contains("《三体》") && search.contains("1. "),
        "{search}"
    );

    let mut redis_conn = redis.connection().await.expect("a TLS connection");
    let keys: Vec<String> = redis_conn.keys("doumi:*").await.expect("keys");
    for prefix in [
        "doumi:catalog:v1:isbn:9787121139512",
        "doumi:conversation:",
        "doumi:gateway:v1:",
    ] {
        assert!(
            keys.iter().any(|key| key.starts_with(prefix)),
            "nothing under {prefix} in {keys:?}"
        );
    }
}

/// The value of a series in a `/metrics` page (0 when absent).
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Redis is the fleet's shared memory, not what an answer needs: while it is
/// gone each message is answered from what the replica knows, with no Redis
/// call in its path once the breaker has opened, and the shared state is used
/// again within a cooldown of its return, without a restart.
#[tokio::test]
async fn a_redis_outage_costs_the_sharing_not_the_answers() {
    let douban = FakeDouban::start().await.expect("fake douban");
    let mut redis = RedisServer::start().await.expect("redis-server");
    let stack = sharing(&douban, &redis).await;
    let wechat = stack.wechat();
    let book = |text: &str| text.contains("《浪潮之巅》");
    let ask = |reader: String| {
        let wechat = &wechat;
        async move {
            let xml = doumi_tests::wechat::WechatClient::text_from(&reader, "9787121139512");
            wechat.post_signed(&xml).await.body
        }
    };
    assert!(book(&ask("oBefore".into()).await));
    assert!(stack.gateway_readiness().await.contains("redis: in use"));

    redis.stop();
    let skipped = |metrics: &str, service: &str| {
        series(
            metrics,
            &format!("doumi_redis_skipped_total{{service=\"{service}\"}}"),
        )
    };
    let before = stack.gateway_metrics().await;
    for i in 0..30 {
        let answer = ask(format!("oDuring{i}")).await;
        assert!(book(&answer), "message {i} during the outage: {answer}");
    }
    let during = stack.gateway_metrics().await;
    for service in ["gateway", "bot"] {
        let calls = skipped(&during, service) - skipped(&before, service);
        assert!(
            calls >= 20.0,
            "{service} still waited on Redis during the outage ({calls} calls skipped)"
        );
    }
    assert!(
        stack.gateway_readiness().await.contains("redis: skipped"),
        "{}",
        stack.gateway_readiness().await
    );

    redis.restart().await.expect("redis-server again");
    // Within one cooldown (5 s) a probe finds it; the next messages share again.
    tokio::time::sleep(doumi_runtime::redis::RedisPolicy::DEFAULT.cooldown).await;
    for i in 0..5 {
        assert!(book(&ask(format!("oAfter{i}")).await));
    }
    let mut connection = redis.connection().await.expect("redis");
    let keys: Vec<String> = connection.keys("doumi:*").await.expect("keys");
    for prefix in [
        "doumi:gateway:v1:attempts:oAfter",
        "doumi:bot:v1:pace:oAfter",
    ] {
        assert!(
            keys.iter().any(|key| key.starts_with(prefix)),
            "nothing under {prefix} after Redis came back: {keys:?}"
        );
    }
    assert!(stack.gateway_readiness().await.contains("redis: in use"));
}
