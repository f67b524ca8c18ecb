//! What a person reads: a book on one line (batches, search pages) or
//! described in full.

use std::time::{Duration, UNIX_EPOCH};

use doumi_proto::catalog::v1::Book;

/// `《title》 — authors (publisher, year) ISBN … · Douban …`
pub(super) fn one_line(book: &Book) -> String {
    let year = book.pubdate.as_ref().map_or(0, |d| d.year);
    let mut line = format!("《{}》 {}", book.title, book.authors.join(", "));
    match (book.publisher.is_empty(), year) {
        (true, 0) => {}
        (false, 0) => line.push_str(&format!(" ({})", book.publisher)),
        (true, y) => line.push_str(&format!(" ({y})")),
        (false, y) => line.push_str(&format!(" ({}, {y})", book.publisher)),
    }
    if !book.isbn13.is_empty() {
        line.push_str(&format!("  ISBN {}", book.isbn13));
    }
    if !book.id.is_empty() {
        line.push_str(&format!("  douban {}", book.id));
    }
    line
}

/// Every field that is set, one per line.
pub(super) fn describe(book: &Book) -> String {
    let mut out = format!("《{}》", book.title);
    if !book.subtitle.is_empty() {
        out.push_str(&format!(" {}", book.subtitle));
    }
    out.push('\n');
    let mut field = |label: &str, value: String| {
        if !value.trim().is_empty() {
            out.push_str(&format!("  {label:<12} {value}\n"));
        }
    };
    field("original:", book.origin_title.clone());
    field("authors:", book.authors.join(", "));
    field("translators:", book.translators.join(", "));
    field("publisher:", book.publisher.clone());
    field(
        "published:",
        book.pubdate
            .as_ref()
            .map(|d| d.text.clone())
            .unwrap_or_default(),
    );
    field(
        "pages:",
        if book.pages > 0 {
            book.pages.to_string()
        } else {
            String::new()
        },
    );
    field("binding:", book.binding.clone());
    field(
        "price:",
        book.price
            .as_ref()
            .map(|p| p.text.clone())
            .unwrap_or_default(),
    );
    field(
        "rating:",
        book.rating.as_ref().map_or(String::new(), |r| {
            let source = if r.source.is_empty() {
                String::new()
            } else {
                format!(" on {}", r.source)
            };
            if r.rated {
                format!("{:.1}/10{source} ({} ratings)", r.average, r.count)
            } else {
                format!("unrated{source} ({} ratings)", r.count)
            }
        }),
    );
    field(
        "isbn:",
        [book.isbn13.as_str(), book.isbn10.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" / "),
    );
    field("douban id:", book.id.clone());
    field(
        "series:",
        book.series
            .as_ref()
            .map(|s| s.title.clone())
            .unwrap_or_default(),
    );
    field(
        "tags:",
        book.tags
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
    );
    field(
        "cover:",
        book.images
            .as_ref()
            .map(|i| i.large.clone())
            .unwrap_or_default(),
    );
    field("link:", book.web_url.clone());
    field("source:", provenance(book));
    out
}

fn provenance(book: &Book) -> String {
    let Some(p) = &book.provenance else {
        return String::new();
    };
    match p
        .fetched_at
        .as_ref()
        .and_then(|t| u64::try_from(t.seconds).ok())
    {
        Some(secs) => format!(
            "{}, fetched {}",
            p.provider,
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
        ),
        None => p.provider.clone(),
    }
}
