//! One reader looking up book after book is asked to slow down; the catalog
//! sees at most the reader's allowance (20 a minute, 5 at once), and other
//! readers are not affected — in one bot, and across bots sharing Redis.

use doumi_tests::{RedisServer, StackOptions, TestStack, wechat::WechatClient};
use doumi_wechat::peer::{self, ParsedReply};

/// What a reader may look up at once by default.
const BURST: usize = 5;
const TOO_FAST: &str = "你查得太快了，请稍等一会儿。";

/// What `reader` sees for one lookup through `wechat`.
async fn look_up(wechat: &WechatClient, reader: &str) -> String {
    let answer = wechat
        .post_signed(&WechatClient::text_from(reader, "9787121139512"))
        .await;
    match peer::parse_reply(&answer.body) {
        Some(ParsedReply::Text { content, .. }) => content,
        other => panic!("not a text reply: {other:?}"),
    }
}

fn is_book(reply: &str) -> bool {
    reply.contains("《浪潮之巅》")
}

#[tokio::test]
async fn a_hasty_reader_is_slowed_and_others_are_not() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack");
    let wechat = stack.wechat();
    let mut replies = Vec::new();
    for _ in 0..BURST * 3 {
        replies.push(look_up(&wechat, "oHasty").await);
    }
    assert!(replies[..BURST].iter().all(|r| is_book(r)), "{replies:?}");
    assert!(
        replies[BURST..].iter().all(|r| r == TOO_FAST),
        "{replies:?}"
    );
    assert!(is_book(&look_up(&wechat, "oPatient").await));
}

#[tokio::test]
async fn bots_sharing_redis_count_one_reader_once() {
    let redis = RedisServer::start().await.expect("redis-server");
    let options = StackOptions {
        redis: Some(redis.target()),
        ..Default::default()
    };
    let first = TestStack::start(options.clone()).await.expect("stack");
    let second = TestStack::start(options).await.expect("second stack");
    let (a, b) = (first.wechat(), second.wechat());

    let mut books = 0;
    for i in 0..BURST * 2 {
        let wechat = if i % 2 == 0 { &a } else { &b };
        let reply = look_up(wechat, "oEverywhere").await;
        if is_book(&reply) {
            books += 1;
        } else {
            assert_eq!(reply, TOO_FAST);
        }
    }
    assert_eq!(books, BURST, "the burst is the reader's, not each bot's");
    assert!(is_book(&look_up(&b, "oElsewhere").await));
    let mut connection = redis.connection().await.expect("redis");
    let ttl: i64 = redis::cmd("PTTL")
        .arg("doumi:bot:v1:pace:oEverywhere")
        .query_async(&mut connection)
        .await
        .expect("pttl");
    assert!(ttl > 0, "the pace expires on its own: {ttl}");
}
