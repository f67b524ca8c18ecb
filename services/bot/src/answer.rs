//! Everything doumi says to a reader, in one place, in Chinese.

use std::fmt::Write;

use doumi_proto::{
    bot::v1::Article,
    catalog::v1::{Book, Rating},
};

use crate::barcode::BarcodeError;

pub const USAGE: &str = "发送 ISBN（书背条形码下的 10 位或 13 位数字，如 9787121139512）、\
书背条形码的照片，或书名、作者（如“浪潮之巅”“吴军”），豆米帮你查书。\n发送“帮助”再看一次这条说明。";

pub fn welcome() -> String {
    format!("欢迎关注豆米查书！\n{USAGE}")
}

pub fn help() -> String {
    format!("豆米查书使用说明：\n{USAGE}")
}

pub fn unsupported() -> String {
    format!("豆米暂时只看得懂文字和条形码。\n{USAGE}")
}

pub fn isbn_not_found(isbn: &str) -> String {
    format!("没有找到 ISBN 为 {isbn} 的书。请核对数字，或者发送书名试试。")
}

pub fn invalid_isbn(isbn: &str) -> String {
    format!("“{isbn}”不是有效的 ISBN（位数或校验位不对）。请核对书背条形码下的数字再发一次。")
}

pub fn search_not_found(query: &str) -> String {
    format!("没有找到与“{query}”相关的书。换个关键词，或者直接发送 ISBN 试试。")
}

/// Why a photo gave no book, and what to do instead.
pub fn photo_not_read(error: &BarcodeError) -> String {
    match error {
        BarcodeError::NoBarcode => {
            "没有在照片里找到条形码。请对准书背面的条形码拍清楚一点再发一次，\
            或者直接发送条形码下的 ISBN 数字。"
                .to_owned()
        }
        BarcodeError::NotAnIsbn(kind) => {
            let code = if kind.contains("QR") {
                "二维码"
            } else {
                "条形码"
            };
            format!(
                "照片里的{code}不是图书的 ISBN 条形码（图书的条形码以 978 或 979 开头）。\
                 请拍书背面的条形码，或者直接发送 ISBN。"
            )
        }
        BarcodeError::Busy => busy(),
        BarcodeError::Fetch(_) => {
            "这张照片暂时取不到，请稍后再发一次，或者直接发送 ISBN。".to_owned()
        }
        BarcodeError::HostNotAllowed | BarcodeError::TooLarge | BarcodeError::NotAnImage => {
            "这张图片豆米读不了。请拍一张书背条形码的照片再发一次，或者直接发送 ISBN。".to_owned()
        }
    }
}

/// One reader looking up faster than `DOUMI_READER_RATE_LIMIT` allows.
pub fn too_fast() -> String {
    "你查得太快了，请稍等一会儿。".to_owned()
}

pub fn busy() -> String {
    "抱歉，查询的人有点多，请过一会儿再试。".to_owned()
}

pub fn apology() -> String {
    "抱歉，书目服务暂时出了点问题，请稍后再试。".to_owned()
}

/// The `Book` fields [`book`] shows, asked for by name so the catalog sends
/// only these (no summary, no table of contents).
pub const BOOK_FIELDS: &[&str] = &[
    "title",
    "subtitle",
    "authors",
    "translators",
    "publisher",
    "pubdate",
    "rating",
    "isbn13",
    "web_url",
    "images",
];

/// The book as a chat message: what a reader checks before buying or borrowing.
pub fn book(book: &Book) -> String {
    // Built piece by piece: every lookup's answer passes here, and a
    // `write!` per line costs a formatting pass each (~3,000 instructions a
    // reply, measured).
    let mut out = String::with_capacity(256);
    out.push('《');
    out.push_str(&book.title);
    out.push('》');
    if !book.subtitle.is_empty() {
        out.push('：');
        out.push_str(&book.subtitle);
    }
    push_names(&mut out, "\n作者：", &book.authors);
    push_names(&mut out, "\n译者：", &book.translators);
    let year = book.pubdate.as_ref().map_or(0, |d| d.year);
    match (book.publisher.is_empty(), year) {
        (false, 0) => {
            out.push_str("\n出版社：");
            out.push_str(&book.publisher);
        }
        (false, year) => {
            out.push_str("\n出版社：");
            out.push_str(&book.publisher);
            let _ = write!(out, "（{year}年）");
        }
        (true, 0) => {}
        (true, year) => {
            let _ = write!(out, "\n出版年：{year}");
        }
    }
    if let Some(line) = rating_line(book) {
        out.push('\n');
        out.push_str(&line);
    }
    if !book.isbn13.is_empty() {
        out.push_str("\nISBN：");
        out.push_str(&book.isbn13);
    }
    if !book.web_url.is_empty() {
        out.push('\n');
        out.push_str(&book.web_url);
    }
    out
}

/// `label` and the `names` joined by 「、」, unless there are none.
fn push_names(out: &mut String, label: &str, names: &[String]) {
    let Some((first, rest)) = names.split_first() else {
        return;
    };
    out.push_str(label);
    out.push_str(first);
    for name in rest {
        out.push('、');
        out.push_str(name);
    }
}

/// A rating on its source's own scale: Douban's 0–10 as Douban shows it,
/// five-star sources as `4.5/5`.
struct Stars<'a>(&'a Rating);

impl<'a> Stars<'a> {
    /// `None` when the rating is not one a reader should see: unrated, or
    /// from a source doumi cannot name.
    fn of(rating: &'a Rating) -> Option<Self> {
        (rating.rated && source_name(rating).is_some()).then_some(Self(rating))
    }
}

impl std::fmt::Display for Stars<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rating = self.0;
        if rating.source == DOUBAN {
            return one_decimal(f, rating.average);
        }
        if rating.scale <= 0 {
            return write!(f, "{:.1}", rating.average);
        }
        let native = rating.average / 10.0 * f64::from(rating.scale);
        write!(f, "{native:.1}/{}", rating.scale)
    }
}

/// A Douban average (0–10, given with one decimal) as `{:.1}` shows it, in
/// integers: float formatting cost ~1,000 instructions a reply (measured).
/// Only for values with one decimal: elsewhere the two may round a tie
/// differently.
fn one_decimal(f: &mut std::fmt::Formatter<'_>, value: f64) -> std::fmt::Result {
    // `as` saturates; a rating is far inside i64.
    let tenths = (value * 10.0).round() as i64;
    let sign = if tenths < 0 { "-" } else { "" };
    write!(f, "{sign}{}.{}", (tenths / 10).abs(), (tenths % 10).abs())
}

/// The catalog's name for Douban as a rating's source.
const DOUBAN: &str = "douban";

/// Whose readers rated the book, as a reader reads it. A rating is never
/// called Douban's unless it is.
fn source_name(rating: &Rating) -> Option<&'static str> {
    match rating.source.as_str() {
        DOUBAN => Some("豆瓣评分"),
        "googlebooks" => Some("Google Books 评分"),
        "openlibrary" => Some("Open Library 评分"),
        _ => None,
    }
}

/// The rating line of a book (text and card alike), named by its source
/// and on its scale. 「评价人数不足」 is Douban's own verdict; another
/// source's missing rating is left out.
fn rating_line(book: &Book) -> Option<String> {
    let rating = book.rating.as_ref()?;
    let name = source_name(rating)?;
    let Some(stars) = Stars::of(rating) else {
        return (rating.source == DOUBAN).then(|| format!("{name}：评价人数不足"));
    };
    let mut line = String::with_capacity(64);
    line.push_str(name);
    line.push('：');
    let _ = write!(line, "{stars}");
    if rating.count > 0 {
        let _ = write!(line, "（{}人评价）", rating.count);
    }
    Some(line)
}

/// The `Book` fields [`search_results`] shows, and what a number opens.
pub const SEARCH_FIELDS: &[&str] = &["id", "title", "authors", "rating", "isbn13"];

/// One page of a keyword search, numbered from `first + 1` (page 2 shows
/// 6–10), and how to go on: a number opens a book, 「下一页」 shows more.
pub fn search_results(
    query: &str,
    books: &[Book],
    total: i32,
    first: usize,
    has_next: bool,
    has_previous: bool,
) -> String {
    let mut out = format!("找到 {total} 本与“{query}”相关的书");
    let last = first + books.len();
    if usize::try_from(total).unwrap_or(0) > books.len() {
        let _ = write!(out, "，第 {}–{} 本", first + 1, last);
    }
    out.push('：');
    for (i, book) in books.iter().enumerate() {
        let _ = write!(out, "\n{}. 《{}》", first + i + 1, book.title);
        if let Some(author) = book.authors.first() {
            let _ = write!(out, " {author}");
        }
        if let Some(stars) = book.rating.as_ref().and_then(Stars::of) {
            let _ = write!(out, " ★{stars}");
        }
    }
    out.push_str(&paging_hint(has_next, has_previous));
    out
}

/// The line under a page of results.
fn paging_hint(has_next: bool, has_previous: bool) -> String {
    match (has_next, has_previous) {
        (true, _) => "\n回复序号看详情，回复“下一页”看更多".to_owned(),
        (false, true) => "\n回复序号看详情，回复“上一页”返回".to_owned(),
        (false, false) => "\n回复序号看详情".to_owned(),
    }
}

/// 「下一页」 past the last page.
pub fn no_more_results(query: &str) -> String {
    format!("“{query}”的结果就这些了。回复序号看详情，或者换个关键词试试。")
}

/// 「上一页」 on the first page.
pub fn first_page_already() -> String {
    "已经是第一页了。回复序号看详情，回复“下一页”看更多。".to_owned()
}

/// A number that was not on any page shown.
pub fn no_such_number(shown: usize) -> String {
    format!("请回复 1–{shown} 之间的序号查看详情。")
}

/// A result that carries neither an ISBN nor an id to open it by.
pub fn cannot_open() -> String {
    "这本书没有 ISBN，暂时无法查看详情。可以换个关键词再搜一次。".to_owned()
}

/// WeChat's card shows about this much of a title and a description; the
/// rest would be cut by the client anyway, mid-word.
const CARD_TITLE_CHARS: usize = 64;
const CARD_DESCRIPTION_CHARS: usize = 120;

/// The book as a news card: the cover and a few lines, opening the book's
/// page. `None` when the book has no cover or no page (then it is text).
pub fn book_card(book: &Book) -> Option<Article> {
    let images = book.images.as_ref()?;
    let cover = [&images.large, &images.medium, &images.small]
        .into_iter()
        .find(|url| !url.is_empty())?;
    if book.web_url.is_empty() {
        return None;
    }
    let mut title = format!("《{}》", book.title);
    if !book.subtitle.is_empty() {
        let _ = write!(title, "：{}", book.subtitle);
    }
    let mut lines = Vec::new();
    if !book.authors.is_empty() {
        lines.push(book.authors.join("、"));
    }
    let year = book.pubdate.as_ref().map_or(0, |d| d.year);
    match (book.publisher.is_empty(), year) {
        (false, 0) => lines.push(book.publisher.clone()),
        (false, year) => lines.push(format!("{} {year}", book.publisher)),
        (true, 0) => {}
        (true, year) => lines.push(format!("{year}年")),
    }
    lines.extend(rating_line(book));
    Some(Article {
        title: cut(&title, CARD_TITLE_CHARS),
        description: cut(&lines.join("\n"), CARD_DESCRIPTION_CHARS),
        pic_url: cover.replacen("http://", "https://", 1),
        url: book.web_url.clone(),
    })
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use doumi_proto::catalog::v1::{PublicationDate, Rating};

    use super::*;

    fn wave() -> Book {
        Book {
            title: "浪潮之巅".to_owned(),
            authors: vec!["吴军".to_owned()],
            publisher: "电子工业出版社".to_owned(),
            pubdate: Some(PublicationDate {
                text: "2011-8".to_owned(),
                year: 2011,
                month: 8,
            }),
            rating: Some(Rating {
                average: 9.1,
                count: 12345,
                rated: true,
                source: "douban".to_owned(),
                scale: 10,
            }),
            isbn13: "9787121139512".to_owned(),
            web_url: "https://book.douban.com/subject/6709783/".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn a_douban_average_shows_as_one_decimal_formatting_shows_it() {
        for tenths in 0..=100 {
            let average: f64 = format!("{}.{}", tenths / 10, tenths % 10).parse().unwrap();
            let rating = Rating {
                average,
                source: DOUBAN.into(),
                ..Rating::default()
            };
            assert_eq!(Stars(&rating).to_string(), format!("{average:.1}"));
        }
    }

    #[test]
    fn a_book_shows_what_a_reader_checks() {
        let text = book(&wave());
        for part in [
            "《浪潮之巅》",
            "作者：吴军",
            "电子工业出版社（2011年）",
            "9.1（12345人评价）",
            "9787121139512",
            "https://book.douban.com/subject/6709783/",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }

    #[test]
    fn an_unrated_book_says_so_instead_of_zero() {
        let mut unrated = wave();
        unrated.rating = Some(Rating {
            average: 0.0,
            count: 1,
            rated: false,
            source: "douban".to_owned(),
            scale: 10,
        });
        assert!(book(&unrated).contains("豆瓣评分：评价人数不足"));
        assert!(!book(&unrated).contains("0.0"));
    }

    #[test]
    fn a_rating_is_named_by_its_source_on_its_own_scale() {
        let mut google = wave();
        google.rating = Some(Rating {
            average: 9.0,
            count: 31,
            rated: true,
            source: "googlebooks".to_owned(),
            scale: 5,
        });
        google.images = Some(doumi_proto::catalog::v1::Images {
            large: "https://img.example/l.jpg".to_owned(),
            ..Default::default()
        });
        let text = book(&google);
        let card = book_card(&google).expect("a card").description;
        let results = search_results("吴军", &[google.clone()], 1, 0, false, false);
        for shown in [&text, &card, &results] {
            assert!(!shown.contains("豆瓣"), "{shown}");
            assert!(shown.contains("4.5/5"), "{shown}");
        }
        assert!(
            text.contains("Google Books 评分：4.5/5（31人评价）"),
            "{text}"
        );
        assert!(
            card.contains("Google Books 评分：4.5/5（31人评价）"),
            "{card}"
        );

        // Unrated elsewhere: nothing, not Douban's 「评价人数不足」.
        let mut open = google;
        open.rating = Some(Rating {
            source: "openlibrary".to_owned(),
            scale: 5,
            ..Rating::default()
        });
        assert!(!book(&open).contains("评分"), "{}", book(&open));
        // A source the bot cannot name is not shown at all.
        open.rating = Some(Rating {
            average: 8.0,
            rated: true,
            ..Rating::default()
        });
        assert!(!book(&open).contains("评分"), "{}", book(&open));
    }

    #[test]
    fn search_results_are_numbered_across_pages_with_the_way_on() {
        let text = search_results("吴军", &[wave()], 12, 5, true, true);
        assert!(
            text.starts_with("找到 12 本与“吴军”相关的书，第 6–6 本："),
            "{text}"
        );
        assert!(text.contains("\n6. 《浪潮之巅》 吴军 ★9.1"), "{text}");
        assert!(
            text.ends_with("回复序号看详情，回复“下一页”看更多"),
            "{text}"
        );
        let last = search_results("吴军", &[wave()], 1, 0, false, false);
        assert!(last.ends_with("\n回复序号看详情"), "{last}");
    }

    #[test]
    fn a_card_has_the_largest_cover_and_falls_back_without_one() {
        let mut book = wave();
        assert_eq!(book_card(&book), None, "no cover, no card");
        book.images = Some(doumi_proto::catalog::v1::Images {
            small: "http://img.example/s.jpg".to_owned(),
            medium: "http://img.example/m.jpg".to_owned(),
            large: "http://img.example/l.jpg".to_owned(),
        });
        let card = book_card(&book).expect("a card");
        assert_eq!(card.title, "《浪潮之巅》");
        assert_eq!(card.pic_url, "https://img.example/l.jpg");
        assert_eq!(card.url, "https://book.douban.com/subject/6709783/");
        for part in ["吴军", "电子工业出版社 2011", "9.1（12345人评价）"] {
            assert!(
                card.description.contains(part),
                "{part}: {}",
                card.description
            );
        }
        book.title = "长".repeat(100);
        assert_eq!(book_card(&book).expect("a card").title.chars().count(), 64);
        book.web_url.clear();
        assert_eq!(book_card(&book), None, "no page, no card");
    }
}
