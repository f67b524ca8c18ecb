//! Every way a reader spells an ISBN — a Chinese keyboard's full-width digits
//! and hyphens, typographic dashes, ideographic spaces, an `ISBN：` prefix, an
//! ISBN-10 ending in `Ｘ` — finds the book through gateway → bot → catalog,
//! and a mistyped one is called an invalid ISBN rather than searched for.

use doumi_tests::{StackOptions, TestStack, wechat::WechatClient};
use doumi_wechat::peer;

/// 《浪潮之巅》 in the bundled sample catalog.
const WAVE: &str = "浪潮之巅";
/// 《数学之美》: ISBN-10 711528282X, ISBN-13 9787115282828.
const BEAUTY: &str = "数学之美";
const INVALID: &str = "不是有效的 ISBN";

/// 9787121139512 as readers type it, including as its ISBN-10 7121139510.
const WAVE_SPELLINGS: &[&str] = &[
    "9787121139512",
    "978-7-121-13951-2",
    "978－7－121－13951－2",
    "９７８－７－１２１－１３９５１－２",
    "９７８７１２１１３９５１２",
    "978‐7‐121‐13951‐2",
    "978\u{2011}7\u{2011}121\u{2011}13951\u{2011}2",
    "978\u{2012}7\u{2012}121\u{2012}13951\u{2012}2",
    "978–7–121–13951–2",
    "978—7—121—13951—2",
    "978\u{2015}7\u{2015}121\u{2015}13951\u{2015}2",
    "978−7−121−13951−2",
    "978 7 121 13951 2",
    "978\u{3000}7\u{3000}121\u{3000}13951\u{3000}2",
    "978\u{00A0}7\u{00A0}121\u{00A0}13951\u{00A0}2",
    "978\t7121139512",
    "ISBN 978-7-121-13951-2",
    "ISBN：978 7 121 13951 2",
    "isbn:9787121139512",
    "ＩＳＢＮ：９７８７１２１１３９５１２",
    "ISBN-13: 978-7-121-13951-2",
    "7121139510",
    "7-121-13951-0",
    "７１２１１３９５１０",
    "ISBN 7-121-13951-0",
];

/// 711528282X (9787115282828) as readers type it.
const BEAUTY_SPELLINGS: &[&str] = &[
    "711528282X",
    "711528282x",
    "711528282Ｘ",
    "711528282ｘ",
    "７１１５２８２８２Ｘ",
    "7-115-28282-X",
    "7－115－28282－Ｘ",
    "7\u{3000}115\u{3000}28282\u{3000}X",
    "ISBN 7-115-28282-X",
    "ISBN：7115282 82x",
    "9787115282828",
    "978－7－115－28282－8",
];

/// What the reader sees in answer to `content`, sent as `reader` (one reader
/// per message, so the per-reader pace never answers instead of the bot).
async fn reply(wechat: &WechatClient, reader: &str, content: &str) -> String {
    let answer = wechat
        .post_signed(&WechatClient::text_from(reader, content))
        .await;
    assert_eq!(answer.status, 200, "{content:?}: {}", answer.body);
    assert!(
        peer::parse_reply(&answer.body).is_some(),
        "{content:?}: WeChat cannot read {}",
        answer.body
    );
    // The opened reply, text or card: either way the words the reader reads.
    answer.body
}

async fn stack() -> TestStack {
    TestStack::start(StackOptions::default())
        .await
        .expect("stack")
}

#[tokio::test]
async fn every_spelling_of_an_isbn13_and_its_isbn10_finds_the_book() {
    let stack = stack().await;
    let wechat = stack.wechat();
    for (i, spelling) in WAVE_SPELLINGS.iter().enumerate() {
        let seen = reply(&wechat, &format!("oWave{i}"), spelling).await;
        assert!(
            seen.contains(WAVE) && !seen.contains(INVALID),
            "{spelling:?}: {seen}"
        );
    }
}

#[tokio::test]
async fn every_spelling_of_an_isbn10_ending_in_x_finds_the_book() {
    let stack = stack().await;
    let wechat = stack.wechat();
    for (i, spelling) in BEAUTY_SPELLINGS.iter().enumerate() {
        let seen = reply(&wechat, &format!("oBeauty{i}"), spelling).await;
        assert!(
            seen.contains(BEAUTY) && !seen.contains(INVALID),
            "{spelling:?}: {seen}"
        );
    }
}

#[tokio::test]
async fn a_mistyped_isbn_in_any_spelling_is_called_invalid_not_searched() {
    let stack = stack().await;
    let wechat = stack.wechat();
    for (i, mistyped) in [
        "9787121139513",
        "978-7-121-13951-3",
        "978－7－121－13951－3",
        "９７８７１２１１３９５１３",
        "ISBN：978 7 121 13951 3",
        "7121139511",
        "7115282828",
        "711528282５",
        "ISBN 7-115-28282-5",
        "9771234567898",
    ]
    .into_iter()
    .enumerate()
    {
        let seen = reply(&wechat, &format!("oTypo{i}"), mistyped).await;
        assert!(
            seen.contains(INVALID) && seen.contains(mistyped),
            "{mistyped:?}: {seen}"
        );
        assert!(!seen.contains(WAVE) && !seen.contains(BEAUTY), "{seen}");
    }
}

#[tokio::test]
async fn eleven_digits_are_not_an_isbn_attempt() {
    let stack = stack().await;
    let seen = reply(&stack.wechat(), "oEleven", "978-7121-1395").await;
    assert!(!seen.contains(INVALID) && !seen.contains(WAVE), "{seen}");
}
