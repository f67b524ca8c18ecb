//! A reader's conversation through the gateway: a search is numbered and
//! paged (「下一页」 shows 6–10), a number opens that book, a number from
//! another reader is an ordinary query, and two bot replicas sharing Redis
//! continue the same conversation. A single book comes as a card with its
//! cover, or as text when so configured or when there is no cover.

use doumi_bot::BookReply;
use doumi_tests::{FakeDouban, RedisServer, StackOptions, TestStack, wechat::WechatClient};
use doumi_wechat::peer::{ParsedArticle, ParsedReply, parse_reply};

/// Nine books of the bundled sample catalog match "of": two pages of five.
const QUERY: &str = "of";
const MATCHES: usize = 9;

/// The title shown as number `n` in a page of results.
fn numbered(page: &str, n: usize) -> String {
    let prefix = format!("{n}. 《");
    let line = page
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no number {n} in {page}"));
    line.split('》').next().unwrap_or_default().to_owned()
}

fn shows(page: &str, n: usize) -> bool {
    page.lines()
        .any(|line| line.starts_with(&format!("{n}. 《")))
}

/// What another reader sees for `content`.
async fn from_another_reader(stack: &TestStack, content: &str) -> String {
    let xml = WechatClient::text_from("oAnotherReaderOpenId00000000", content);
    let answer = stack.wechat().post_signed(&xml).await;
    match parse_reply(&answer.body) {
        Some(ParsedReply::Text { content, .. }) => content,
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn a_search_pages_on_and_a_number_opens_that_book() {
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack");
    let reader = stack.wechat();

    let first = reader.send_text(QUERY).await.text();
    assert!(first.starts_with(&format!("找到 {MATCHES} 本")), "{first}");
    assert!(
        (1..=5).all(|n| shows(&first, n)) && !shows(&first, 6),
        "{first}"
    );
    assert!(
        first.ends_with("回复序号看详情，回复“下一页”看更多"),
        "{first}"
    );

    let second = reader.send_text("下一页").await.text();
    assert!(
        (6..=MATCHES).all(|n| shows(&second, n)) && !shows(&second, 1),
        "page 2 shows 6–9: {second}"
    );
    assert!(
        second.ends_with("回复序号看详情，回复“上一页”返回"),
        "{second}"
    );
    let seventh = numbered(&second, 7);

    let book = reader.send_text("7").await.text();
    assert!(book.contains(&format!("《{seventh}》")), "{book}");
    assert!(book.contains("ISBN："), "the book in full: {book}");

    // A number from a page seen earlier still opens its book, and 上一页
    // goes back to 1–5.
    let again = reader.send_text("上一页").await.text();
    assert_eq!(numbered(&again, 1), numbered(&first, 1));
    let third = numbered(&first, 3);
    assert!(reader.send_text("３").await.text().contains(&third));
    let past = reader.send_text("12").await.text();
    assert!(past.contains("请回复 1–9 之间的序号"), "{past}");
    let more = reader.send_text("下一页").await.text();
    assert!(shows(&more, 7));
    let end = reader.send_text("更多").await.text();
    assert!(end.contains("结果就这些了"), "{end}");

    // Another reader's "7" is an ordinary query, never the first reader's book.
    let other = from_another_reader(&stack, "7").await;
    assert!(!other.contains(&seventh), "{other}");
    let other = from_another_reader(&stack, "下一页").await;
    assert!(!shows(&other, 6), "{other}");
}

#[tokio::test]
async fn two_bot_replicas_sharing_redis_continue_one_conversation() {
    let redis = RedisServer::start().await.expect("redis-server");
    let options = StackOptions {
        redis: Some(redis.target()),
        ..StackOptions::default()
    };
    // Each stack is a catalog, a bot and a gateway of its own; only Redis is shared.
    let left = TestStack::start(options.clone()).await.expect("stack");
    let right = TestStack::start(options).await.expect("stack");

    let first = left.wechat().send_text(QUERY).await.text();
    assert!(shows(&first, 5), "{first}");
    let second = right.wechat().send_text("下一页").await.text();
    assert!(shows(&second, 6) && !shows(&second, 1), "{second}");
    let seventh = numbered(&second, 7);
    let book = left.wechat().send_text("7").await.text();
    assert!(book.contains(&format!("《{seventh}》")), "{book}");
}

/// 《小王子》 in the fake Douban's recorded answers, with a cover.
const LITTLE_PRINCE: &str = "9787505715660";

fn card(body: &str) -> ParsedArticle {
    match parse_reply(body) {
        Some(ParsedReply::News { mut articles, .. }) if articles.len() == 1 => articles.remove(0),
        other => panic!("expected a card, got {other:?}"),
    }
}

#[tokio::test]
async fn a_book_is_a_card_with_its_cover_or_text_when_asked() {
    let douban = FakeDouban::start().await.expect("fake douban");
    let options = StackOptions {
        douban_url: Some(douban.url().to_owned()),
        ..StackOptions::default()
    };
    let stack = TestStack::start(options.clone()).await.expect("stack");
    let answer = stack.wechat().send_text(LITTLE_PRINCE).await;
    let article = card(&answer.body);
    assert!(article.title.contains("小王子"), "{article:?}");
    assert_eq!(
        article.pic_url, "https://img1.douban.com/lpic/s1001902.jpg",
        "the largest cover, over https"
    );
    assert_eq!(article.url, "http://book.douban.com/subject/1003078/");
    assert!(article.description.contains("豆瓣评分"), "{article:?}");

    let text_stack = TestStack::start(StackOptions {
        book_reply: Some(BookReply::Text),
        ..options
    })
    .await
    .expect("stack");
    let text = text_stack.wechat().send_text(LITTLE_PRINCE).await.text();
    assert!(
        text.contains("《小王子》") && text.contains("ISBN："),
        "{text}"
    );
    assert!(
        !text_stack
            .wechat()
            .send_text(LITTLE_PRINCE)
            .await
            .body
            .contains("<ArticleCount>")
    );

    // A book without a cover (the sample catalog has none) is text even as a card.
    let sample = TestStack::start(StackOptions::default())
        .await
        .expect("stack");
    let wave = sample.wechat().send_text("9787121139512").await;
    assert!(matches!(
        parse_reply(&wave.body),
        Some(ParsedReply::Text { .. })
    ));
}
