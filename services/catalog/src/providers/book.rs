//! Douban's book JSON turned into the catalog's `Book`, and the free-text
//! prices and dates every provider sends parsed once here so no client ever
//! has to.

use std::time::SystemTime;

use doumi_proto::catalog::v1::{
    Book, Images, Price, Provenance, PublicationDate, Rating, Series, Tag,
};

use crate::providers::{douban::model::DoubanBook, provider::ProviderKind};

/// The top of Douban's rating scale, which `Rating.average` is always on.
pub const DOUBAN_SCALE: i32 = 10;
/// The top of Google Books' and Open Library's star ratings.
pub const FIVE_STARS: i32 = 5;

/// Builds a `Book` from Douban's JSON, noting which provider answered and when.
pub fn from_douban(raw: DoubanBook, provider: ProviderKind, fetched_at: SystemTime) -> Book {
    let images = raw.images.unwrap_or_default();
    let medium = if images.medium.is_empty() {
        raw.image
    } else {
        images.medium
    };
    let web_url = if !raw.alt.is_empty() {
        raw.alt
    } else if !raw.id.is_empty() {
        format!("https://book.douban.com/subject/{}/", raw.id)
    } else {
        String::new()
    };
    Book {
        pubdate: Some(parse_pubdate(&raw.pubdate)),
        pages: leading_number(&raw.pages).unwrap_or(0),
        price: Some(parse_price(&raw.price)),
        rating: raw.rating.map(|r| {
            let average = r.average.trim().parse::<f64>().unwrap_or(0.0);
            Rating {
                average,
                // The sample catalog's books are Douban's too.
                source: ProviderKind::Douban.name().to_owned(),
                scale: DOUBAN_SCALE,
                count: i32::try_from(r.num_raters).unwrap_or(i32::MAX),
                // Douban shows "0.0" when too few readers rated the book.
                rated: average > 0.0,
            }
        }),
        tags: raw
            .tags
            .into_iter()
            .map(|t| Tag {
                name: if t.name.is_empty() { t.title } else { t.name },
                count: i32::try_from(t.count).unwrap_or(i32::MAX),
            })
            .filter(|t| !t.name.is_empty())
            .collect(),
        images: Some(Images {
            small: images.small,
            medium,
            large: images.large,
        }),
        series: raw.series.filter(|s| !s.title.is_empty()).map(|s| Series {
            id: s.id,
            title: s.title,
        }),
        catalog: if raw.catalog.trim().is_empty() {
            String::new()
        } else {
            raw.catalog
        },
        title: unescape_html(&raw.title),
        subtitle: unescape_html(&raw.subtitle),
        origin_title: raw.origin_title,
        alt_title: raw.alt_title,
        authors: raw
            .author
            .into_iter()
            .map(|a| a.trim().to_owned())
            .collect(),
        translators: raw
            .translator
            .into_iter()
            .map(|a| a.trim().to_owned())
            .collect(),
        publisher: raw.publisher,
        binding: raw.binding,
        summary: raw.summary,
        author_intro: raw.author_intro,
        id: raw.id,
        isbn10: raw.isbn10,
        isbn13: raw.isbn13,
        web_url,
        provenance: Some(provenance(provider, fetched_at)),
        ebook_url: clean_url(&raw.ebook_url),
        ebook_price: (!raw.ebook_price.trim().is_empty()).then(|| parse_price(&raw.ebook_price)),
    }
}

/// Which provider answered and when.
pub fn provenance(provider: ProviderKind, fetched_at: SystemTime) -> Provenance {
    Provenance {
        provider: provider.name().to_owned(),
        fetched_at: Some(fetched_at.into()),
    }
}

/// The URL at the start of `text`, or nothing: Douban's own documentation
/// example carries a note after its `ebook_url`.
fn clean_url(text: &str) -> String {
    let url: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_graphic() && *c != '(')
        .collect();
    if url.starts_with("http://") || url.starts_with("https://") {
        url
    } else {
        String::new()
    }
}

/// `"2011-8"`, `"2000-9-1"`, `"2006年"`, `"1988年4月"`, `"2004/11/01"`,
/// `"October 1, 1988"`: the year and month when they are there.
pub fn parse_pubdate(text: &str) -> PublicationDate {
    let numbers: Vec<u32> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let year_at = numbers.iter().position(|n| (1000..=2999).contains(n));
    let year = year_at.map_or(0, |i| numbers[i]);
    let month_named = MONTHS
        .iter()
        .position(|m| text.to_ascii_lowercase().contains(m))
        .map(|i| i as u32 + 1);
    let month = month_named
        .or_else(|| {
            year_at
                .and_then(|i| numbers.get(i + 1))
                .copied()
                .filter(|m| (1..=12).contains(m))
        })
        .unwrap_or(0);
    PublicationDate {
        text: text.to_owned(),
        year: year as i32,
        month: if year == 0 { 0 } else { month as i32 },
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// `"45.00元"`, `"CNY 79.00"`, `"USD 26.95"`, `"$ 19.15"`, a bare `"19.8"`
/// (Douban's prices are yuan unless marked). `"0.00"` and `""` stay unparsed.
pub fn parse_price(text: &str) -> Price {
    let unparsed = Price {
        text: text.to_owned(),
        amount_minor: 0,
        currency: String::new(),
    };
    let trimmed = text.trim();
    let Some(start) = trimmed.find(|c: char| c.is_ascii_digit()) else {
        return unparsed;
    };
    let number_len = trimmed[start..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(trimmed.len() - start);
    let number = trimmed[start..start + number_len].replace(',', "");
    let marks = format!("{} {}", &trimmed[..start], &trimmed[start + number_len..]).to_uppercase();
    let known = CURRENCIES
        .iter()
        .find(|(_, signs)| signs.iter().any(|s| marks.contains(s)));
    let currency = match known {
        Some((code, _)) => *code,
        None if marks.chars().any(char::is_alphabetic) => return unparsed,
        None => "CNY",
    };
    let Ok(amount) = number.parse::<f64>() else {
        return unparsed;
    };
    if amount <= 0.0 || !amount.is_finite() {
        return unparsed;
    }
    let exponent = if currency == "JPY" { 0 } else { 2 };
    Price {
        text: text.to_owned(),
        amount_minor: (amount * 10f64.powi(exponent)).round() as i64,
        currency: currency.to_owned(),
    }
}

/// Currency codes and the marks that name them in Douban's price text.
const CURRENCIES: &[(&str, &[&str])] = &[
    ("USD", &["USD", "US$", "$"]),
    ("HKD", &["HKD", "HK$"]),
    ("TWD", &["TWD", "NT$", "NTD"]),
    ("GBP", &["GBP", "£"]),
    ("EUR", &["EUR", "€"]),
    ("JPY", &["JPY", "円", "日元"]),
    ("CNY", &["CNY", "RMB", "元", "¥", "￥"]),
];

fn leading_number(text: &str) -> Option<i32> {
    let digits: String = text
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Old Douban records carry HTML entities in titles (`&quot;A&quot; Level`).
fn unescape_html(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> DoubanBook {
        let path = format!(
            "{}/../../tests/fixtures/douban/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn prices_in_every_observed_form() {
        let cases = [
            ("45.00元", 4500, "CNY"),
            ("22.00元", 2200, "CNY"),
            ("19.8", 1980, "CNY"),
            ("58", 5800, "CNY"),
            ("CNY 79.00", 7900, "CNY"),
            ("USD 26.95", 2695, "USD"),
            ("$ 19.15", 1915, "USD"),
            ("JPY 1,200", 1200, "JPY"),
            ("£7.99", 799, "GBP"),
        ];
        for (text, amount, currency) in cases {
            let price = parse_price(text);
            assert_eq!(
                (price.amount_minor, price.currency.as_str()),
                (amount, currency),
                "{text}"
            );
            assert_eq!(price.text, text);
        }
        for text in ["", "0.00", "暂无", "free"] {
            assert_eq!(parse_price(text).currency, "", "{text}");
        }
    }

    #[test]
    fn pubdates_in_every_observed_form() {
        let cases = [
            ("2011-8", 2011, 8),
            ("2000-9-1", 2000, 9),
            ("2006年", 2006, 0),
            ("2010", 2010, 0),
            ("1988年4月", 1988, 4),
            ("2004/11/01", 2004, 11),
            ("October 1, 1988", 1988, 10),
            ("1959年3月北京第1版第1印", 1959, 3),
            ("", 0, 0),
        ];
        for (text, year, month) in cases {
            let date = parse_pubdate(text);
            assert_eq!((date.year, date.month), (year, month), "{text}");
        }
    }

    #[test]
    fn recorded_book_decodes_with_its_quirks() {
        let book = from_douban(
            fixture("douban_book_2230208_raw.json"),
            ProviderKind::Douban,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(book.title, "我的前半生");
        assert_eq!(book.authors, ["亦舒"]);
        assert_eq!(book.isbn13, "9787802283930");
        assert_eq!(book.web_url, "https://book.douban.com/subject/2230208/");
        let rating = book.rating.unwrap();
        assert!(rating.rated && (rating.average - 7.9).abs() < 1e-9 && rating.count == 22156);
        assert_eq!(book.pubdate.unwrap().year, 2007);
        assert!(
            book.tags
                .iter()
                .any(|t| t.name == "亦舒" && t.count == 9937)
        );
        assert_eq!(book.provenance.unwrap().provider, "douban");
    }

    #[test]
    fn whitespace_only_catalog_and_missing_series_are_empty() {
        let book = from_douban(
            fixture("douban_book_1220562_raw.json"),
            ProviderKind::Douban,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(book.title, "满月之夜白鲸现");
        assert_eq!(book.catalog, "");
        assert!(book.series.is_none());
        assert_eq!(book.pages, 180);
    }

    #[test]
    fn official_example_keeps_translators_series_and_bare_price() {
        let book = from_douban(
            fixture("douban_book_1003078_official_doc_example.json"),
            ProviderKind::Douban,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(book.title, "小王子");
        assert_eq!(book.translators, ["胡雨苏"]);
        assert_eq!(book.series.map(|s| s.id).as_deref(), Some("2065"));
        let price = book.price.unwrap();
        assert_eq!((price.amount_minor, price.currency.as_str()), (1980, "CNY"));
        assert_eq!(book.ebook_url, "https://read.douban.com/ebook/1234567/");
        assert_eq!(book.ebook_price.map(|p| p.amount_minor), Some(1200));
        assert_eq!(book.pubdate.map(|d| (d.year, d.month)), Some((2000, 9)));
    }

    #[test]
    fn unrated_books_are_marked_unrated() {
        let raw: DoubanBook = serde_json::from_str(
            r#"{"id":"1","title":"t","rating":{"max":10,"numRaters":1,"average":"0.0","min":0},"pages":"","price":""}"#,
        )
        .unwrap();
        let book = from_douban(raw, ProviderKind::Douban, SystemTime::UNIX_EPOCH);
        assert!(!book.rating.unwrap().rated);
        assert_eq!(book.pages, 0);
    }
}
