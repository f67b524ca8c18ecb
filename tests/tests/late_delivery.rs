//! Every reader gets the book: a reply that misses WeChat's window is sent
//! as a customer-service message, exactly once, with one access_token for the
//! whole deployment — tried against a fake of WeChat's API and a real Redis.
//! (Past 600 lines: one scenario per way a late reply can be lost or doubled.)

use std::time::Duration;

use doumi_gateway::{
    Accounts,
    window::{INTERIM_DELIVERY_TEXT, INTERIM_TEXT, ReplyPolicy, WindowSettings},
};
use doumi_tests::{
    FakeDouban, FakeWechatApi, RedisServer, StackOptions, TestStack,
    fleet::{Fleet, FleetOptions},
    stack::{
        APP_ID, BRANCH_APP_ID, BRANCH_TOKEN, GatewayOptions, PROBE_INTERVAL, TOKEN, branch_crypto,
        two_accounts,
    },
    wechat::{Attempt, Patience, READER, WechatClient},
    wechat_api::text_of,
};
use doumi_wechat::stand_in::Api;

const WAVE: &str = "/v2/book/isbn/9787121139512";

/// Every attempt answered within the budget: the first one already gets the
/// interim, so a lookup a little over 5 s is delivered late — quick tests of
/// the delivery path.
fn immediate() -> Option<WindowSettings> {
    Some(WindowSettings {
        policy: ReplyPolicy::Immediate,
        ..WindowSettings::default()
    })
}

/// A Douban that answers after `delay`, WeChat's API, and a stack
/// delivering late replies to it with the `gateway` options.
async fn slow_stack(
    delay: Duration,
    gateway: GatewayOptions,
) -> (FakeDouban, FakeWechatApi, TestStack) {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(delay);
    let wechat_api = FakeWechatApi::start().await.expect("wechat api");
    let stack = stack(&douban, &wechat_api, gateway).await;
    (douban, wechat_api, stack)
}

/// [`slow_stack`] with a 6 s Douban and every attempt answered in its
/// budget (so the first one is already promised).
async fn promising_stack(gateway: GatewayOptions) -> (FakeDouban, FakeWechatApi, TestStack) {
    slow_stack(
        Duration::from_secs(6),
        GatewayOptions {
            window: immediate(),
            ..gateway
        },
    )
    .await
}

async fn stack(
    douban: &FakeDouban,
    wechat_api: &FakeWechatApi,
    gateway: GatewayOptions,
) -> TestStack {
    TestStack::start(StackOptions {
        douban_url: Some(douban.url().to_owned()),
        gateway: GatewayOptions {
            wechat_api_url: Some(wechat_api.url().to_owned()),
            ..gateway
        },
        ..Default::default()
    })
    .await
    .expect("stack")
}

#[tokio::test]
async fn a_20s_lookup_is_promised_on_the_last_attempt_and_delivered_once() {
    let (douban, wechat_api, stack) =
        slow_stack(Duration::from_secs(20), GatewayOptions::default()).await;

    let attempts = stack
        .wechat()
        .deliver_like_wechat(&WechatClient::text_from(READER, "9787121139512"))
        .await;
    let [
        Attempt::TimedOut,
        Attempt::TimedOut,
        Attempt::Answered(last),
    ] = attempts.as_slice()
    else {
        panic!("two held attempts, then the promise: {attempts:?}");
    };
    assert_eq!(last.text(), INTERIM_DELIVERY_TEXT);

    let delivered = wechat_api.wait_for_messages(READER, 1).await;
    assert!(
        text_of(&delivered[0]).contains("《浪潮之巅》"),
        "{delivered:?}"
    );
    assert_eq!(delivered[0]["touser"], READER);
    assert_eq!(wechat_api.api().send_calls(), 1, "delivered exactly once");
    assert_eq!(wechat_api.api().token_requests(), 1);
    assert_eq!(douban.calls(WAVE), 1);
}

#[tokio::test]
async fn a_7s_lookup_is_answered_passively_and_never_delivered_twice() {
    let (_douban, wechat_api, stack) =
        slow_stack(Duration::from_secs(7), GatewayOptions::default()).await;

    // A book per client, so neither is served from the catalog's cache.
    for (patience, isbn) in Patience::ALL
        .into_iter()
        .zip(["9787121139512", "9780132350884"])
    {
        let reader = format!("oReader{patience:?}");
        let attempts = stack
            .wechat()
            .with_patience(patience)
            .deliver_like_wechat(&WechatClient::text_from(&reader, isbn))
            .await;
        let [Attempt::TimedOut, Attempt::Answered(second)] = attempts.as_slice() else {
            panic!("{patience:?}: silence, then the book: {attempts:?}");
        };
        assert!(second.body.contains("ISBN："), "{patience:?}: {attempts:?}");
    }
    assert_eq!(
        wechat_api.api().send_calls(),
        0,
        "answered in time: nothing to deliver"
    );
}

#[tokio::test]
async fn twenty_slow_messages_share_one_token_request() {
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions::default()).await;
    let wechat = stack.wechat();

    let readers: Vec<String> = (0..20)
        .map(|i| format!("oConcurrentReader{i:02}"))
        .collect();
    let answers = futures::future::join_all(readers.iter().map(|reader| {
        let xml = WechatClient::text_from(reader, "9787121139512");
        let wechat = &wechat;
        async move { wechat.post_signed(&xml).await }
    }))
    .await;
    for answer in &answers {
        assert!(answer.body.contains(INTERIM_DELIVERY_TEXT), "{answer:?}");
    }
    for reader in &readers {
        let delivered = wechat_api.wait_for_messages(reader, 1).await;
        assert!(text_of(&delivered[0]).contains("《浪潮之巅》"));
    }
    assert_eq!(
        wechat_api.api().token_requests(),
        1,
        "one token for twenty deliveries"
    );
    assert_eq!(wechat_api.api().send_calls(), 20);
}

#[tokio::test]
async fn an_invalidated_token_is_refreshed_and_forced_at_most_once_in_30s() {
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions::default()).await;
    let wechat = stack.wechat();

    wechat
        .post_signed(&WechatClient::text_from("oFirst", "9787121139512"))
        .await;
    wechat_api.wait_for_messages("oFirst", 1).await;
    // Someone else refreshed the token: the one the gateway holds is dead.
    wechat_api.api().invalidate_tokens();
    wechat
        .post_signed(&WechatClient::text_from("oSecond", "9780132350884"))
        .await;

    // The typing indicator or the send meets the dead token first; either
    // way one forced refresh replaces it and the reply arrives.
    let delivered = wechat_api.wait_for_messages("oSecond", 1).await;
    assert!(
        text_of(&delivered[0]).contains("Clean Code"),
        "{delivered:?}"
    );
    assert_eq!(wechat_api.api().forced_refreshes(), 1, "one forced refresh");
    assert_eq!(wechat_api.api().token_requests(), 2);

    // Rejected again moments later: a forced refresh would invalidate the
    // token of every other system sharing the AppID once more, so the
    // current token is asked for normally; the reply still arrives.
    wechat_api.api().invalidate_tokens();
    // A book not looked up yet, so its reply misses the window again.
    wechat
        .post_signed(&WechatClient::text_from("oThird", "9780201616224"))
        .await;
    let delivered = wechat_api.wait_for_messages("oThird", 1).await;
    assert!(!text_of(&delivered[0]).is_empty(), "{delivered:?}");
    assert_eq!(
        wechat_api.api().forced_refreshes(),
        1,
        "no second forced refresh within 30 s"
    );
    assert_eq!(wechat_api.api().token_requests(), 3);
}

/// A client that plays WeChat for the account served at `/wechat/NAME`.
fn client_of(stack: &TestStack, name: &str, token: &str) -> WechatClient {
    WechatClient::new(format!("http://{}/wechat/{name}", stack.gateway), token)
}

#[tokio::test]
async fn two_accounts_answer_only_their_own_and_a_refused_one_stops_only_its_promises() {
    // With Redis, as deployed: each account's messages, promises and sweep kept apart there.
    let redis = RedisServer::start().await.expect("redis-server");
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions {
        accounts: Some(two_accounts()),
        redis: Some(redis.target()),
        ..Default::default()
    })
    .await;
    let books = client_of(&stack, "books", TOKEN);
    let branch = client_of(&stack, "branch", BRANCH_TOKEN).safe_mode(branch_crypto());

    // Each account is its own trust domain: the other's Token is refused,
    // and only the configured paths exist.
    let text = WechatClient::text_from("oStranger", "9787121139512");
    for (client, wrong) in [
        (
            client_of(&stack, "books", BRANCH_TOKEN),
            "books signed with branch's Token",
        ),
        (
            client_of(&stack, "branch", TOKEN),
            "branch signed with books' Token",
        ),
    ] {
        assert_eq!(client.post_signed(&text).await.status, 403, "{wrong}");
    }
    for path in ["", "/nobody"] {
        let client = WechatClient::new(format!("http://{}/wechat{path}", stack.gateway), TOKEN);
        assert_eq!(client.post_signed(&text).await.status, 404, "/wechat{path}");
    }

    // Each delivers late replies with its own token.
    let (to_books, to_branch) = (
        WechatClient::text_from("oBooks", "9787121139512"),
        WechatClient::text_from("oBranch", "9787121139512"),
    );
    let (to_books, to_branch) =
        tokio::join!(books.post_signed(&to_books), branch.post_signed(&to_branch));
    for answer in [&to_books, &to_branch] {
        assert!(answer.body.contains(INTERIM_DELIVERY_TEXT), "{answer:?}");
    }
    wechat_api.wait_for_messages("oBooks", 1).await;
    wechat_api.wait_for_messages("oBranch", 1).await;
    assert_eq!(wechat_api.api().delivered_by(APP_ID, "oBooks").len(), 1);
    assert_eq!(
        wechat_api
            .api()
            .delivered_by(BRANCH_APP_ID, "oBranch")
            .len(),
        1
    );

    // 40164 for books: WeChat refuses this server's IP address for it.
    wechat_api
        .api()
        .refuse_next_for(APP_ID, Api::CustomSend, 40164, 1);
    let sends = wechat_api.api().send_calls();
    let promised = books
        .post_signed(&WechatClient::text_from("oFirst", "9780132350884"))
        .await;
    assert!(
        promised.body.contains(INTERIM_DELIVERY_TEXT),
        "{promised:?}"
    );
    wechat_api.wait_for_send_calls(sends + 1).await;
    // WeChat still refuses books when it is checked again.
    wechat_api
        .api()
        .refuse_next_for(APP_ID, Api::DomainIp, 40164, 1);
    let (second, branch_second) = (
        WechatClient::text_from("oSecond", "9780201616224"),
        WechatClient::text_from("oBranch2", "9787111213826"),
    );
    let (asked, still_promised) = tokio::join!(
        books.post_signed(&second),
        branch.post_signed(&branch_second)
    );
    assert!(
        asked.body.contains(INTERIM_TEXT),
        "books asks to send again: {asked:?}"
    );
    assert!(
        still_promised.body.contains(INTERIM_DELIVERY_TEXT),
        "branch still promises: {still_promised:?}"
    );
    wechat_api.wait_for_messages("oBranch2", 1).await;
    let readiness = stack.gateway_readiness().await;
    assert!(
        readiness.contains("account books: WeChat refuses the account (40164")
            && readiness.contains("IP白名单")
            && readiness.contains("account branch: WeChat accepts the account"),
        "{readiness}"
    );

    // Then the whitelist is fixed: the check after the next one passes (the
    // first was refused above) and books promises again.
    tokio::time::sleep(PROBE_INTERVAL * 2 + Duration::from_secs(1)).await;
    let promised = books
        .post_signed(&WechatClient::text_from("oLater", "9787302123453"))
        .await;
    assert!(
        promised.body.contains(INTERIM_DELIVERY_TEXT),
        "promises resumed once WeChat accepted the account: {promised:?}"
    );
    let delivered = wechat_api.wait_for_messages("oLater", 1).await;
    assert!(!delivered.is_empty());
    assert!(wechat_api.api().delivered_to("oFirst").is_empty());
    assert!(wechat_api.api().delivered_to("oSecond").is_empty());

    // Each account's messages live under its own keys in the shared store.
    let mut connection = redis.connection().await.expect("redis");
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut connection, "doumi:gateway:v1:*")
        .await
        .expect("keys");
    for scoped in ["attempts:books/oBooks:", "attempts:branch/oBranch:"] {
        assert!(
            keys.iter().any(|key| key.contains(scoped)),
            "no {scoped} key in {keys:?}"
        );
    }
}

#[tokio::test]
async fn a_wrong_app_secret_is_named_at_start_and_passive_replies_still_work() {
    let douban = FakeDouban::start().await.expect("douban");
    let wechat_api = FakeWechatApi::start().await.expect("wechat api");
    let mut accounts = two_accounts();
    if let Accounts::Named(list) = &mut accounts {
        list[0].app_secret = Some("notTheAppSecret".to_owned().into());
    }
    let stack = stack(
        &douban,
        &wechat_api,
        GatewayOptions {
            accounts: Some(accounts),
            ..Default::default()
        },
    )
    .await;
    let books = client_of(&stack, "books", TOKEN);
    let answer = books.send_text("9787121139512").await;
    assert!(answer.text().contains("《浪潮之巅》"), "{answer:?}");
    let readiness = stack.gateway_readiness().await;
    assert!(
        readiness.starts_with("ready")
            && readiness.contains("account books: WeChat refuses the account (40125")
            && readiness.contains("account branch: WeChat accepts the account"),
        "{readiness}"
    );
    assert_eq!(
        wechat_api.api().forced_refreshes(),
        0,
        "tokens are fetched in normal mode"
    );
}

#[tokio::test]
async fn refusals_are_counted_never_retried_and_48001_stops_promising() {
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions::default()).await;
    let wechat = stack.wechat();

    // 45015: the reader has been silent for 48 h. One call, no retry.
    wechat_api.api().refuse_next(Api::CustomSend, 45015, 1);
    wechat
        .post_signed(&WechatClient::text_from("oSilent", "9787121139512"))
        .await;
    wechat_api.wait_for_send_calls(1).await;

    // 48001: the account may not send customer-service messages at all.
    wechat_api.api().refuse_next(Api::CustomSend, 48001, 1);
    let promised = wechat
        .post_signed(&WechatClient::text_from("oUnlucky", "9780132350884"))
        .await;
    assert!(promised.body.contains(INTERIM_DELIVERY_TEXT));
    wechat_api.wait_for_send_calls(2).await;
    // From now on the reader is asked to send again, not promised a message.
    let asked = wechat
        .post_signed(&WechatClient::text_from("oLater", "9780201616224"))
        .await;
    assert!(asked.body.contains(INTERIM_TEXT), "{asked:?}");

    let metrics = stack.gateway_metrics().await;
    for series in [
        r#"doumi_gateway_deliveries_total{account="default",outcome="reader_silent"}"#,
        r#"doumi_gateway_deliveries_total{account="default",outcome="no_permission"}"#,
        r#"doumi_wechat_api_errors_total{api="custom_send",code="48001"}"#,
        r#"doumi_wechat_token_requests_total{kind="fetch"}"#,
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert!(wechat_api.api().delivered_to("oSilent").is_empty());
    assert_eq!(wechat_api.api().send_calls(), 2, "no retry storm");
}

#[tokio::test]
async fn replicas_sharing_redis_make_one_token_request_and_one_delivery_per_message() {
    let redis = RedisServer::start().await.expect("redis-server");
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions {
        redis: Some(redis.target()),
        ..Default::default()
    })
    .await;
    let replica = stack.gateway_replica().await.expect("replica");
    let first = stack.wechat();
    let second = WechatClient::new(format!("http://{replica}/wechat"), TOKEN);

    // One message, its attempts landing on both replicas at once.
    let (query, body) = first.prepare(
        &WechatClient::text_from("oBoth", "9787121139512"),
        WechatClient::now(),
        "557",
    );
    let (a, b) = tokio::join!(first.post(&query, body.clone()), second.post(&query, body));
    assert!(a.body.contains(INTERIM_DELIVERY_TEXT) && b.body.contains(INTERIM_DELIVERY_TEXT));
    // Two more messages, one on each replica: each needs a token.
    let (on_first, on_second) = (
        WechatClient::text_from("oOnFirst", "9780132350884"),
        WechatClient::text_from("oOnSecond", "9780132350884"),
    );
    let (c, d) = tokio::join!(first.post_signed(&on_first), second.post_signed(&on_second));
    assert!(c.body.contains(INTERIM_DELIVERY_TEXT) && d.body.contains(INTERIM_DELIVERY_TEXT));

    for reader in ["oBoth", "oOnFirst", "oOnSecond"] {
        wechat_api.wait_for_messages(reader, 1).await;
    }
    assert_eq!(wechat_api.api().send_calls(), 3, "one delivery per message");
    assert_eq!(wechat_api.api().delivered_to("oBoth").len(), 1);
    assert_eq!(
        wechat_api.api().token_requests(),
        1,
        "one token for both replicas"
    );
}

#[tokio::test]
async fn with_redis_down_each_replica_still_delivers() {
    let mut redis = RedisServer::start().await.expect("redis-server");
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions {
        redis: Some(redis.target()),
        ..Default::default()
    })
    .await;
    let replica = stack.gateway_replica().await.expect("replica");
    redis.stop();

    let first = stack.wechat();
    let second = WechatClient::new(format!("http://{replica}/wechat"), TOKEN);
    let (to_first, to_second) = (
        WechatClient::text_from("oNoRedisA", "9787121139512"),
        WechatClient::text_from("oNoRedisB", "9787121139512"),
    );
    let (a, b) = tokio::join!(first.post_signed(&to_first), second.post_signed(&to_second));
    assert!(a.body.contains(INTERIM_DELIVERY_TEXT) && b.body.contains(INTERIM_DELIVERY_TEXT));
    for reader in ["oNoRedisA", "oNoRedisB"] {
        let delivered = wechat_api.wait_for_messages(reader, 1).await;
        assert!(text_of(&delivered[0]).contains("《浪潮之巅》"));
    }
    assert_eq!(wechat_api.api().send_calls(), 2);
}

#[tokio::test]
async fn a_busy_wechat_is_asked_again_a_bounded_number_of_times() {
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions::default()).await;
    // -1 is WeChat's "system busy": worth repeating, a few times at most.
    wechat_api.api().refuse_next(Api::Token, -1, 1);
    wechat_api.api().refuse_next(Api::CustomSend, -1, 2);
    stack
        .wechat()
        .post_signed(&WechatClient::text_from("oBusyDay", "9787121139512"))
        .await;

    let delivered = wechat_api.wait_for_messages("oBusyDay", 1).await;
    assert!(text_of(&delivered[0]).contains("《浪潮之巅》"));
    assert_eq!(
        wechat_api.api().token_requests(),
        2,
        "the token asked for again once"
    );
    assert_eq!(
        wechat_api.api().send_calls(),
        3,
        "two busy answers, then sent"
    );

    // Busy on every attempt: the reply is given up after three, not retried forever.
    wechat_api.api().refuse_next(Api::CustomSend, -1, 100);
    stack
        .wechat()
        .post_signed(&WechatClient::text_from("oUnlucky", "9780132350884"))
        .await;
    let refused = r#"doumi_gateway_deliveries_total{account="default",outcome="refused"}"#;
    let mut metrics = stack.gateway_metrics().await;
    for _ in 0..600 {
        if metrics.contains(refused) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = stack.gateway_metrics().await;
    }
    assert!(metrics.contains(refused), "{metrics}");
    assert_eq!(
        wechat_api.api().send_calls(),
        6,
        "three attempts, then given up"
    );
    assert!(wechat_api.api().delivered_to("oUnlucky").is_empty());
}

#[tokio::test]
async fn a_last_attempt_that_never_arrives_still_gets_the_reply_delivered() {
    let (_douban, wechat_api, stack) =
        slow_stack(Duration::from_secs(20), GatewayOptions::default()).await;
    let wechat = stack.wechat();
    let (query, body) = wechat.prepare(
        &WechatClient::text_from("oLostLast", "9787121139512"),
        WechatClient::now(),
        "558",
    );
    // Two attempts, both held until WeChat gives up; the third is lost on the way.
    for _ in 0..2 {
        assert!(wechat.try_post(&query, body.clone()).await.is_none());
    }
    let delivered = wechat_api.wait_for_messages("oLostLast", 1).await;
    assert!(text_of(&delivered[0]).contains("《浪潮之巅》"));
    assert_eq!(wechat_api.api().send_calls(), 1);
}

#[tokio::test]
async fn a_reply_promised_for_delivery_is_not_also_given_passively() {
    let (_douban, wechat_api, stack) = promising_stack(GatewayOptions::default()).await;
    let wechat = stack.wechat();
    let (query, body) = wechat.prepare(
        &WechatClient::text_from("oTwice", "9787121139512"),
        WechatClient::now(),
        "559",
    );
    let promise = wechat.post(&query, body.clone()).await;
    assert!(promise.body.contains(INTERIM_DELIVERY_TEXT), "{promise:?}");
    // WeChat missed that answer and sends the message again; the reply is
    // ready while this attempt waits, but it was already promised.
    let again = wechat.post(&query, body).await;
    assert_eq!(again.body.trim(), "success", "{again:?}");
    wechat_api.wait_for_messages("oTwice", 1).await;
    assert_eq!(
        wechat_api.api().send_calls(),
        1,
        "delivered once, never twice"
    );
}

// === a promise outlives its gateway ===

/// Two gateways sharing Redis, a 20 s lookup, and WeChat's three attempts
/// landing on the gateways in turn (its load balancer picks one for each):
/// the first starts the work, the last is answered with the promise. Then
/// the gateway doing the work goes away, stopped or killed.
async fn promised_then_its_gateway_goes(kill: bool) {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(Duration::from_secs(20));
    let wechat_api = FakeWechatApi::start().await.expect("wechat api");
    let redis = RedisServer::start().await.expect("redis-server");
    let mut fleet = Fleet::start(FleetOptions {
        gateways: 2,
        bots: 1,
        catalogs: 1,
        redis: Some(redis.target()),
        douban_url: Some(douban.url().to_owned()),
        wechat_api_url: Some(wechat_api.url().to_owned()),
    })
    .expect("fleet");
    let gateways = [fleet.wechat(0), fleet.wechat(1)];
    let xml = WechatClient::text_from(READER, "9787121139512");
    let (query, body) = gateways[0].prepare(&xml, WechatClient::now(), "20261205");
    let mut attempts = Vec::new();
    for gateway in [&gateways[0], &gateways[1], &gateways[0]] {
        attempts.push(gateway.try_post(&query, body.clone()).await);
    }
    let [None, None, Some(last)] = attempts.as_slice() else {
        panic!("two held attempts, then the promise: {attempts:?}");
    };
    assert_eq!(last.text(), INTERIM_DELIVERY_TEXT);

    // The first gateway started the work and holds it.
    let owner = fleet.gateways.remove(0);
    if kill {
        owner.kill();
    } else {
        owner.stop().await;
    }

    let delivered = wechat_api.wait_for_messages(READER, 1).await;
    assert!(
        text_of(&delivered[0]).contains("《浪潮之巅》"),
        "{delivered:?}"
    );
    // Both gateways' work has ended by now (the one killed or stopped, the
    // other delivered): a second delivery would have been sent already.
    assert_eq!(wechat_api.api().send_calls(), 1, "delivered exactly once");
}

#[tokio::test]
async fn a_promise_survives_its_gateway_stopping() {
    promised_then_its_gateway_goes(false).await;
}

#[tokio::test]
async fn a_promise_survives_its_gateway_being_killed() {
    promised_then_its_gateway_goes(true).await;
}
