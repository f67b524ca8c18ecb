//! Everything doumi says to a reader, in one place, in Chinese.

use std::fmt::Write;

use doumi_proto::catalog::v1::Book;

pub const USAGE: &str = "发送 ISBN（书背条形码下的 10 位或 13 位数字，如 9787121139512），\
或书名、作者（如“浪潮之巅”“吴军”），豆米帮你查书。\n发送“帮助”再看一次这条说明。";

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
];

/// The book as a chat message: what a reader checks before buying or borrowing.
pub fn book(book: &Book) -> String {
    let mut out = format!("《{}》", book.title);
    if !book.subtitle.is_empty() {
        let _ = write!(out, "：{}", book.subtitle);
    }
    if !book.authors.is_empty() {
        let _ = write!(out, "\n作者：{}", book.authors.join("、"));
    }
    if !book.translators.is_empty() {
        let _ = write!(out, "\n译者：{}", book.translators.join("、"));
    }
    let year = book.pubdate.as_ref().map_or(0, |d| d.year);
    match (book.publisher.is_empty(), year) {
        (false, 0) => {
            let _ = write!(out, "\n出版社：{}", book.publisher);
        }
        (false, year) => {
            let _ = write!(out, "\n出版社：{}（{year}年）", book.publisher);
        }
        (true, 0) => {}
        (true, year) => {
            let _ = write!(out, "\n出版年：{year}");
        }
    }
    match &book.rating {
        Some(r) if r.rated => {
            let _ = write!(out, "\n豆瓣评分：{:.1}（{}人评价）", r.average, r.count);
        }
        _ => out.push_str("\n豆瓣评分：评价人数不足"),
    }
    if !book.isbn13.is_empty() {
        let _ = write!(out, "\nISBN：{}", book.isbn13);
    }
    if !book.web_url.is_empty() {
        let _ = write!(out, "\n{}", book.web_url);
    }
    out
}

/// The `Book` fields [`search_results`] shows.
pub const SEARCH_FIELDS: &[&str] = &["title", "authors", "rating", "isbn13"];

/// The first results of a keyword search, each with the ISBN to ask for more.
pub fn search_results(query: &str, books: &[Book], total: i32) -> String {
    let mut out = format!("找到 {total} 本与“{query}”相关的书");
    if usize::try_from(total).unwrap_or(0) > books.len() {
        let _ = write!(out, "，前 {} 本", books.len());
    }
    out.push('：');
    for (i, book) in books.iter().enumerate() {
        let _ = write!(out, "\n{}. 《{}》", i + 1, book.title);
        if let Some(author) = book.authors.first() {
            let _ = write!(out, " {author}");
        }
        if let Some(r) = book.rating.as_ref().filter(|r| r.rated) {
            let _ = write!(out, " ★{:.1}", r.average);
        }
        if !book.isbn13.is_empty() {
            let _ = write!(out, "\n   ISBN {}", book.isbn13);
        }
    }
    out.push_str("\n发送 ISBN 查看详情。");
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
            }),
            isbn13: "9787121139512".to_owned(),
            web_url: "https://book.douban.com/subject/6709783/".to_owned(),
            ..Default::default()
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
        });
        assert!(book(&unrated).contains("评价人数不足"));
        assert!(!book(&unrated).contains("0.0"));
    }

    #[test]
    fn search_results_list_titles_and_isbns() {
        let text = search_results("吴军", &[wave()], 3);
        assert!(
            text.starts_with("找到 3 本与“吴军”相关的书，前 1 本："),
            "{text}"
        );
        assert!(
            text.contains("1. 《浪潮之巅》 吴军 ★9.1\n   ISBN 9787121139512"),
            "{text}"
        );
    }
}
