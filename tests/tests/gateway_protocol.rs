//! The gateway speaking WeChat's whole official-account protocol: every
//! inbound kind, safe and compatible mode, hostile input, and the 5-second
//! window with WeChat's retries — all driven as WeChat drives it.
//! (Past 600 lines: one case per message kind and encryption mode WeChat has.)

use std::time::Duration;

use doumi_gateway::{
    Accounts,
    accounts::SINGLE_ACCOUNT,
    window::{INTERIM_TEXT, Interim, ReplyPolicy, WindowSettings},
};
use doumi_tests::{
    FakeDouban, RedisServer, StackOptions, TestStack,
    stack::{APP_ID, BRANCH_AES_KEY, GatewayOptions, TOKEN, account_crypto, safe_mode_account},
    wechat::{ACCOUNT, Attempt, Patience, READER, WechatClient},
};
use doumi_wechat::{
    crypto::{AesKey, KeyRing, MessageCrypto},
    peer,
};

const WAVE: &str = "/v2/book/isbn/9787121139512";

async fn stack_with(douban: &FakeDouban, gateway: GatewayOptions) -> TestStack {
    TestStack::start(StackOptions {
        douban_url: Some(douban.url().to_owned()),
        gateway,
        ..StackOptions::default()
    })
    .await
    .expect("stack")
}

/// An account in safe mode: encrypted messages only.
fn safe_mode_only() -> GatewayOptions {
    GatewayOptions {
        safe_mode: true,
        require_encryption: true,
        ..Default::default()
    }
}

/// A message of any kind from the test reader, as WeChat posts it.
fn message(msg_type: &str, fields: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{READER}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}</xml>",
        WechatClient::now()
    )
}

fn with_msg_id(fields: &str) -> String {
    format!("{fields}<MsgId>{}</MsgId>", WechatClient::next_msg_id())
}

fn event(name: &str, fields: &str) -> String {
    message(
        "event",
        &format!("<Event><![CDATA[{name}]]></Event>{fields}"),
    )
}

// === every inbound kind ===

#[tokio::test]
async fn every_message_kind_gets_the_answer_a_reader_expects() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let wechat = stack.wechat();
    let unsupported = "只看得懂文字和条形码";
    let cases = [
        (
            "text",
            message(
                "text",
                &with_msg_id("<Content><![CDATA[9787121139512]]></Content>"),
            ),
            "《浪潮之巅》",
        ),
        (
            "image",
            message(
                "image",
                &with_msg_id(
                    // Not on WeChat's image CDN: never fetched (barcode_photo.rs reads real ones).
                    "<PicUrl><![CDATA[http://images.example.com/x.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>",
                ),
            ),
            "这张图片豆米读不了",
        ),
        (
            "voice with recognition",
            message(
                "voice",
                &with_msg_id(
                    "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[白夜行。]]></Recognition><MediaId16K><![CDATA[m3]]></MediaId16K>",
                ),
            ),
            "《白夜行》",
        ),
        (
            "voice without recognition",
            message(
                "voice",
                &with_msg_id("<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[speex]]></Format>"),
            ),
            unsupported,
        ),
        (
            "video",
            message(
                "video",
                &with_msg_id(
                    "<MediaId><![CDATA[v]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId>",
                ),
            ),
            unsupported,
        ),
        (
            "shortvideo",
            message(
                "shortvideo",
                &with_msg_id(
                    "<MediaId><![CDATA[v]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId>",
                ),
            ),
            unsupported,
        ),
        (
            "location",
            message(
                "location",
                &with_msg_id(
                    "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州市]]></Label>",
                ),
            ),
            unsupported,
        ),
        (
            "link",
            message(
                "link",
                &with_msg_id(
                    "<Title><![CDATA[书单]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[https://example.com]]></Url>",
                ),
            ),
            unsupported,
        ),
        (
            "file",
            message(
                "file",
                &with_msg_id(
                    "<Title><![CDATA[a.pdf]]></Title><Description><![CDATA[]]></Description><FileKey><![CDATA[k]]></FileKey><FileMd5><![CDATA[5d]]></FileMd5><FileTotalLen>1024</FileTotalLen>",
                ),
            ),
            unsupported,
        ),
        (
            "unknown kind",
            message(
                "miniprogrampage",
                &with_msg_id("<AppId><![CDATA[wx]]></AppId>"),
            ),
            unsupported,
        ),
        (
            "subscribe via QR scene",
            event(
                "subscribe",
                "<EventKey><![CDATA[qrscene_shelf42]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
            ),
            "欢迎关注豆米查书",
        ),
        (
            "menu click HELP",
            event("CLICK", "<EventKey><![CDATA[HELP]]></EventKey>"),
            "使用说明",
        ),
        (
            "barcode scan (waitmsg)",
            event(
                "scancode_waitmsg",
                "<EventKey><![CDATA[scan]]></EventKey><ScanCodeInfo><ScanType><![CDATA[barcode]]></ScanType><ScanResult><![CDATA[EAN_13,9787121139512]]></ScanResult></ScanCodeInfo>",
            ),
            "《浪潮之巅》",
        ),
        (
            "barcode scan (push)",
            event(
                "scancode_push",
                "<EventKey><![CDATA[scan]]></EventKey><ScanCodeInfo><ScanType><![CDATA[barcode]]></ScanType><ScanResult><![CDATA[EAN_13,9787544242516]]></ScanResult></ScanCodeInfo>",
            ),
            "《白夜行》",
        ),
    ];
    for (name, xml, expected) in cases {
        let text = wechat.post_signed(&xml).await.text();
        assert!(text.contains(expected), "{name}: {text}");
    }
}

#[tokio::test]
async fn events_that_need_no_answer_get_success() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let wechat = stack.wechat();
    let cases = [
        event("unsubscribe", "<EventKey><![CDATA[]]></EventKey>"),
        event(
            "SCAN",
            "<EventKey><![CDATA[shelf42]]></EventKey><Ticket><![CDATA[T]]></Ticket>",
        ),
        event(
            "LOCATION",
            "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
        ),
        event(
            "VIEW",
            "<EventKey><![CDATA[https://book.douban.com]]></EventKey><MenuId>208379533</MenuId>",
        ),
        event(
            "pic_weixin",
            "<EventKey><![CDATA[pics]]></EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[a]]></PicMd5Sum></item></PicList><PicList><item><PicMd5Sum><![CDATA[b]]></PicMd5Sum></item></PicList></SendPicsInfo>",
        ),
        event(
            "pic_sysphoto",
            "<EventKey><![CDATA[pics]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[a]]></PicMd5Sum></item></PicList></SendPicsInfo>",
        ),
        event(
            "pic_photo_or_album",
            "<EventKey><![CDATA[pics]]></EventKey><SendPicsInfo><Count>0</Count></SendPicsInfo>",
        ),
        event(
            "location_select",
            "<EventKey><![CDATA[loc]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[广州]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>",
        ),
        event(
            "view_miniprogram",
            "<EventKey><![CDATA[pages/index]]></EventKey><MenuId>1</MenuId>",
        ),
        event(
            "TEMPLATESENDJOBFINISH",
            "<MsgID>200163836</MsgID><Status><![CDATA[failed:user block]]></Status>",
        ),
        event(
            "MASSSENDJOBFINISH",
            "<MsgID>1988</MsgID><Status><![CDATA[sendsuccess]]></Status><TotalCount>100</TotalCount><FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount>",
        ),
        event(
            "subscribe_msg_popup_event",
            "<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[t]]></TemplateId></List></SubscribeMsgPopupEvent>",
        ),
    ];
    for xml in cases {
        let answer = wechat.post_signed(&xml).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "success"),
            "{xml}"
        );
    }
}

#[tokio::test]
async fn control_characters_in_a_real_payload_do_not_fail_the_message() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let xml = message(
        "text",
        &with_msg_id("<Content><![CDATA[白夜\u{1d}行\u{2}]]></Content>"),
    );
    let text = stack.wechat().post_signed(&xml).await.text();
    assert!(text.contains("《白夜行》"), "{text}");
}

#[tokio::test]
async fn replies_with_cdata_terminators_stay_valid_xml() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    // The bot echoes the query in its not-found answer.
    let text = stack.wechat().send_text("no such]]>book").await.text();
    assert!(text.contains("no such]]>book"), "{text}");
}

// === safe and compatible mode ===

#[tokio::test]
async fn safe_mode_round_trip() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, safe_mode_only()).await;
    let wechat = stack.wechat().safe_mode(account_crypto());
    let answer = wechat.send_text("9787121139512").await;
    assert!(
        answer.raw.contains("<Encrypt>") && answer.raw.contains("<MsgSignature>"),
        "{}",
        answer.raw
    );
    assert!(
        !answer.raw.contains("浪潮之巅"),
        "the reply travels encrypted"
    );
    assert!(answer.text().contains("《浪潮之巅》"));
}

#[tokio::test]
async fn during_a_key_rotation_the_previous_key_is_answered_with_itself_and_counted() {
    let douban = FakeDouban::start().await.expect("douban");
    let old = account_crypto();
    let new = MessageCrypto::new(
        AesKey::parse(BRANCH_AES_KEY).expect("key"),
        APP_ID.to_owned(),
    );
    let mut account = safe_mode_account(SINGLE_ACCOUNT, TOKEN);
    account.keys = Some(KeyRing::new(new.clone(), Some(old.clone())));
    let stack = stack_with(
        &douban,
        GatewayOptions {
            accounts: Some(Accounts::Single(account)),
            ..Default::default()
        },
    )
    .await;

    // A message WeChat sealed before the rotation: opened with the previous
    // key, and its reply sealed with it too (the client opens it with that
    // key alone).
    let answer = stack
        .wechat()
        .safe_mode(old)
        .send_text("9787121139512")
        .await;
    assert!(answer.text().contains("《浪潮之巅》"), "{answer:?}");
    // After it, the new key.
    let answer = stack
        .wechat()
        .safe_mode(new)
        .send_text("9787121139512")
        .await;
    assert!(answer.text().contains("《浪潮之巅》"), "{answer:?}");
    // Neither key: refused.
    let stranger = MessageCrypto::new(
        AesKey::parse("0123456789abcdefghijklmnopqrstuvwxyzABCDEFG").expect("key"),
        APP_ID.to_owned(),
    );
    let refused = stack
        .wechat()
        .safe_mode(stranger)
        .send_text("9787121139512")
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");

    let metrics = stack.gateway_metrics().await;
    assert!(
        metrics.contains(r#"doumi_gateway_previous_key_total{account="default"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn compatible_mode_uses_the_decrypted_copy() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(
        &douban,
        GatewayOptions {
            safe_mode: true,
            ..Default::default()
        },
    )
    .await;
    let inner = message(
        "text",
        &with_msg_id("<Content><![CDATA[9787121139512]]></Content>"),
    );
    let (query, sealed) = peer::sealed_message(
        &account_crypto(),
        TOKEN,
        WechatClient::now(),
        "77",
        ACCOUNT,
        &inner,
    );
    // Compatible mode: the plaintext fields travel beside <Encrypt>; only the
    // encrypted copy is vouched for by msg_signature.
    let encrypt = sealed.split("<Encrypt>").nth(1).unwrap_or_default();
    let body = format!(
        "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{READER}]]></FromUserName>\
         <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[tampered]]></Content><Encrypt>{encrypt}"
    );
    let wechat = stack.wechat().safe_mode(account_crypto());
    let text = wechat.post(&query, body).await.text();
    assert!(text.contains("《浪潮之巅》"), "{text}");
    // Plaintext still works when encryption is not required.
    assert!(
        stack
            .wechat()
            .send_text("9787121139512")
            .await
            .text()
            .contains("《浪潮之巅》")
    );
}

#[tokio::test]
async fn hostile_safe_mode_requests_are_refused() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, safe_mode_only()).await;
    let wechat = stack.wechat();
    let inner = message(
        "text",
        &with_msg_id("<Content><![CDATA[9787121139512]]></Content>"),
    );
    let now = WechatClient::now();
    let (query, body) = peer::sealed_message(&account_crypto(), TOKEN, now, "77", ACCOUNT, &inner);

    let forged = query.replace("msg_signature=", "msg_signature=0");
    assert_eq!(
        wechat.post(&forged, body.clone()).await.status,
        403,
        "wrong msg_signature"
    );
    let missing = query
        .split("&msg_signature=")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        wechat.post(&missing, body.clone()).await.status,
        403,
        "missing msg_signature: no downgrade"
    );
    assert_eq!(
        wechat
            .post(&peer::signed_query(TOKEN, now, "77"), inner.clone())
            .await
            .status,
        403,
        "plaintext refused"
    );

    let stranger = MessageCrypto::new(
        AesKey::parse(doumi_tests::stack::AES_KEY).expect("key"),
        "wx0000000000000000".to_owned(),
    );
    let (query, body) = peer::sealed_message(&stranger, TOKEN, now, "78", ACCOUNT, &inner);
    assert_eq!(
        wechat.post(&query, body).await.status,
        403,
        "someone else's AppID"
    );

    // Truncated ciphertext, re-signed so only the payload is wrong.
    let truncated = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8";
    let signature = doumi_wechat::signature::compute(&[TOKEN, &now.to_string(), "79", truncated]);
    let query = format!(
        "{}&encrypt_type=aes&msg_signature={signature}",
        peer::signed_query(TOKEN, now, "79")
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{truncated}]]></Encrypt></xml>"
    );
    assert_eq!(
        wechat.post(&query, body).await.status,
        400,
        "truncated ciphertext"
    );

    assert_eq!(
        douban.total_calls(),
        0,
        "no refused request reached the upstream"
    );
    let good = stack
        .wechat()
        .safe_mode(account_crypto())
        .send_text("9787121139512")
        .await
        .text();
    assert!(good.contains("《浪潮之巅》"), "still serving: {good}");
}

#[tokio::test]
async fn deeply_nested_xml_is_refused() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let nested = format!("{}x{}", "<a>".repeat(50), "</a>".repeat(50));
    let answer = stack.wechat().post_signed(&message("text", &nested)).await;
    assert_eq!(answer.status, 400);
}

// === the 5-second window and WeChat's retries ===

fn text_xml(content: &str) -> String {
    message(
        "text",
        &with_msg_id(&format!("<Content><![CDATA[{content}]]></Content>")),
    )
}

/// A 7 s lookup, delivered as WeChat delivers it: the first attempt is held
/// (never answered with the interim, which WeChat would take as the answer)
/// and the second gets the book — whichever way WeChat's 5 s fall.
async fn a_7s_lookup_reaches_the_reader_on_the_second_attempt(patience: Patience) {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(Duration::from_secs(7));
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let wechat = stack.wechat().with_patience(patience);
    let xml = text_xml("9787121139512");

    let attempts = wechat.deliver_like_wechat(&xml).await;
    let [Attempt::TimedOut, Attempt::Answered(second)] = attempts.as_slice() else {
        panic!("{patience:?}: expected silence, then the book: {attempts:?}");
    };
    assert!(
        second.text().contains("《浪潮之巅》"),
        "{patience:?}: {attempts:?}"
    );
    assert_eq!(douban.calls(WAVE), 1, "retries joined the work in flight");

    // A further copy of the same message gets exactly the same reply, at once.
    douban.delay(Duration::ZERO);
    let again = wechat.deliver_like_wechat(&xml).await;
    let Some(Attempt::Answered(replayed)) = again.first() else {
        panic!("no replay: {again:?}");
    };
    assert_eq!(replayed.text(), second.text());
    assert_eq!(douban.calls(WAVE), 1);
}

#[tokio::test]
async fn a_7s_lookup_reaches_a_client_that_gives_up_after_5s_of_silence() {
    a_7s_lookup_reaches_the_reader_on_the_second_attempt(Patience::Silence).await;
}

#[tokio::test]
async fn a_7s_lookup_reaches_a_client_with_network_slack() {
    a_7s_lookup_reaches_the_reader_on_the_second_attempt(Patience::Slack).await;
}

#[tokio::test]
async fn a_20s_lookup_gets_the_interim_reply_on_the_last_attempt() {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(Duration::from_secs(20));
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let attempts = stack
        .wechat()
        .deliver_like_wechat(&text_xml("9787121139512"))
        .await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(
        matches!(attempts[..2], [Attempt::TimedOut, Attempt::TimedOut]),
        "{attempts:?}"
    );
    let Attempt::Answered(last) = &attempts[2] else {
        panic!("the last attempt must be answered inside WeChat's window: {attempts:?}");
    };
    assert_eq!(last.text(), INTERIM_TEXT);
    assert_eq!(douban.calls(WAVE), 1);
}

#[tokio::test]
async fn immediate_policy_answers_the_first_attempt_in_time() {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(Duration::from_secs(7));
    let window = WindowSettings {
        policy: ReplyPolicy::Immediate,
        interim: Interim::Success,
        ..WindowSettings::default()
    };
    let stack = stack_with(
        &douban,
        GatewayOptions {
            window: Some(window),
            ..Default::default()
        },
    )
    .await;
    let attempts = stack
        .wechat()
        .deliver_like_wechat(&text_xml("9787121139512"))
        .await;
    let [Attempt::Answered(first)] = attempts.as_slice() else {
        panic!("the first attempt must be answered: {attempts:?}");
    };
    assert_eq!((first.status, first.body.as_str()), (200, "success"));
}

#[tokio::test]
async fn three_concurrent_copies_of_one_message_get_one_answer() {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(Duration::from_millis(500));
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let wechat = stack.wechat();
    let (query, body) = wechat.prepare(&text_xml("9787121139512"), WechatClient::now(), "555");
    let (a, b, c) = tokio::join!(
        wechat.post(&query, body.clone()),
        wechat.post(&query, body.clone()),
        wechat.post(&query, body.clone())
    );
    let texts = [a.text(), b.text(), c.text()];
    assert!(texts[0].contains("《浪潮之巅》"), "{texts:?}");
    assert!(texts.iter().all(|t| *t == texts[0]), "{texts:?}");
    assert_eq!(douban.calls(WAVE), 1, "the bot worked once");
}

#[tokio::test]
async fn gateway_replicas_sharing_redis_agree_on_one_answer() {
    let douban = FakeDouban::start().await.expect("douban");
    douban.delay(Duration::from_millis(800));
    let redis = RedisServer::start().await.expect("redis-server");
    let gateway = GatewayOptions {
        redis: Some(redis.target()),
        ..Default::default()
    };
    let stack = stack_with(&douban, gateway).await;
    let replica = stack.gateway_replica().await.expect("replica");
    let first = stack.wechat();
    let second = WechatClient::new(format!("http://{replica}/wechat"), TOKEN);
    let (query, body) = first.prepare(&text_xml("9787121139512"), WechatClient::now(), "556");
    let (a, b) = tokio::join!(
        first.post(&query, body.clone()),
        second.post(&query, body.clone())
    );
    assert_eq!(a.text(), b.text());
    assert!(a.text().contains("《浪潮之巅》"));
    assert_eq!(
        douban.calls(WAVE),
        1,
        "one replica did the work, the other waited for it"
    );
}

#[tokio::test]
async fn metrics_count_requests_refusals_and_bot_latency() {
    let douban = FakeDouban::start().await.expect("douban");
    let stack = stack_with(&douban, GatewayOptions::default()).await;
    let wechat = stack.wechat();
    wechat.send_text("9787121139512").await.text();
    let forged = wechat
        .post("signature=0&timestamp=1&nonce=2", text_xml("x"))
        .await;
    assert_eq!(forged.status, 403);
    let huge = wechat.post_signed(&"a".repeat(1024 * 1024)).await;
    assert_eq!(huge.status, 413);

    let metrics = stack.gateway_metrics().await;
    for series in [
        r#"doumi_gateway_requests_total{account="default",kind="text",outcome="fresh"}"#,
        r#"doumi_gateway_replies_total{account="default",kind="text"}"#,
        r#"doumi_gateway_refusals_total{reason="bad_signature"}"#,
        r#"doumi_gateway_refusals_total{reason="too_large"}"#,
        "doumi_gateway_bot_latency_seconds_bucket",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
}
