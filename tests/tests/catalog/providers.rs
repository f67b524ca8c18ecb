//! Each provider's recorded JSON comes back as the right `Book`; providers
//! are asked in the configured order; Douban's error codes map as specified.

use tonic::Code;

use super::app::{CHAMBER, CatalogApp, NOBODY, STONE, Upstreams, provider};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/douban");

fn douban_fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("douban fixture")
}

#[tokio::test]
async fn douban_books_decode_with_their_quirky_prices_and_dates() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban"])).await;

    // 我的前半生: raw single-line JSON with escaped slashes, "22.00元", "2007-8".
    let book = app.isbn("9787802283930").await.expect("我的前半生");
    assert_eq!(
        (book.title.as_str(), book.id.as_str()),
        ("我的前半生", "2230208")
    );
    assert_eq!(book.authors, ["亦舒"]);
    let price = book.price.clone().expect("price");
    assert_eq!(
        (
            price.text.as_str(),
            price.amount_minor,
            price.currency.as_str()
        ),
        ("22.00元", 2200, "CNY")
    );
    let date = book.pubdate.clone().expect("pubdate");
    assert_eq!(
        (date.text.as_str(), date.year, date.month),
        ("2007-8", 2007, 8)
    );
    assert_eq!(
        book.series.as_ref().map(|s| s.title.as_str()),
        Some("亦舒新经典")
    );
    assert_eq!(book.web_url, "https://book.douban.com/subject/2230208/");
    assert_eq!(provider(&book), "douban");

    // "USD 26.95", an HTML entity in the title, a full date.
    let a = app.isbn("9780811218719").await.expect("\"A\"");
    assert_eq!(a.title, "\"A\"");
    let price = a.price.expect("price");
    assert_eq!((price.amount_minor, price.currency.as_str()), (2695, "USD"));
    assert_eq!(a.pubdate.map(|d| (d.year, d.month)), Some((2011, 1)));

    // By Douban id: the official example, a bare "19.8", "2000-9-1", an e-book.
    let prince = app.douban_id("1003078").await.expect("小王子");
    assert_eq!(prince.title, "小王子");
    assert_eq!(prince.translators, ["胡雨苏"]);
    assert_eq!(
        prince.price.map(|p| (p.amount_minor, p.currency)),
        Some((1980, "CNY".to_owned()))
    );
    assert_eq!(prince.pubdate.map(|d| (d.year, d.month)), Some((2000, 9)));
    assert_eq!(prince.ebook_url, "https://read.douban.com/ebook/1234567/");
    assert_eq!(up.douban.calls("/v2/book/1003078"), 1);
}

#[tokio::test]
async fn open_library_and_google_books_answer_in_the_same_shape() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;

    let chamber = app.isbn("0-439-06487-2").await.expect("from open library");
    assert_eq!(chamber.title, "Harry Potter and the Chamber of Secrets");
    assert_eq!(chamber.authors, ["J. K. Rowling"]);
    assert_eq!(chamber.publisher, "Scholastic Inc.");
    assert_eq!((chamber.isbn13.as_str(), chamber.pages), (CHAMBER, 344));
    assert_eq!(
        chamber.pubdate.as_ref().map(|d| (d.year, d.month)),
        Some((2000, 9))
    );
    assert_eq!(provider(&chamber), "openlibrary");

    let stone = app.isbn(STONE).await.expect("from google books");
    assert_eq!(stone.title, "Harry Potter 1 and the Philosopher's Stone");
    assert_eq!(stone.publisher, "Bloomsbury Pub Limited");
    assert_eq!((stone.isbn10.as_str(), stone.pages), ("0747532699", 223));
    let rating = stone.rating.as_ref().expect("rating");
    assert!(
        (rating.average - 9.0).abs() < 1e-9,
        "0-5 stars on Douban's 0-10 scale"
    );
    assert_eq!(
        (rating.source.as_str(), rating.scale),
        ("googlebooks", 5),
        "and says whose stars, on what scale"
    );
    assert_eq!(provider(&stone), "googlebooks");
    assert_eq!(up.googlebooks.last_key().as_deref(), Some("test-apikey"));
}

#[tokio::test]
async fn providers_are_asked_in_the_configured_order() {
    let up = Upstreams::start().await;
    // Google Books knows the Open Library book too.
    up.googlebooks.add(serde_json::json!({"volumeInfo": {
        "title": "Harry Potter and the Chamber of Secrets (Google)",
        "authors": ["J. K. Rowling"],
        "industryIdentifiers": [{"type": "ISBN_13", "identifier": CHAMBER}],
    }}));

    let ol_first = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;
    let book = ol_first.isbn(CHAMBER).await.expect("book");
    assert_eq!(provider(&book), "openlibrary");
    let asked = (
        up.douban.calls(&format!("/v2/book/isbn/{CHAMBER}")),
        up.openlibrary.calls(CHAMBER),
        up.googlebooks.calls(CHAMBER),
    );
    assert_eq!(
        asked,
        (1, 1, 0),
        "douban said not found, open library answered"
    );

    let gb_first = CatalogApp::start(up.config(&["googlebooks", "openlibrary"])).await;
    let book = gb_first.isbn(CHAMBER).await.expect("book");
    assert_eq!(provider(&book), "googlebooks");
    assert_eq!(up.openlibrary.calls(CHAMBER), 1, "not asked again");
}

#[tokio::test]
async fn not_found_only_when_every_provider_says_so_and_then_it_is_remembered() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;
    for _ in 0..3 {
        let status = app.isbn(NOBODY).await.expect_err("nobody has it");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let asked = (
        up.douban.calls(&format!("/v2/book/isbn/{NOBODY}")),
        up.openlibrary.calls(NOBODY),
        up.googlebooks.calls(NOBODY),
    );
    assert_eq!(
        asked,
        (1, 1, 1),
        "each asked once; then the negative cache answered"
    );
}

/// (case, Douban's HTTP status, its body, the caller's code with Douban alone)
fn douban_errors() -> Vec<(&'static str, u16, String, Code)> {
    let body = |code: u32, msg: &str| {
        format!(r#"{{"msg":"{msg}","code":{code},"request":"GET \/v2\/book\/isbn\/{CHAMBER}"}}"#)
    };
    vec![
        (
            "104",
            403,
            douban_fixture("douban_error_104_invalid_apikey.json"),
            Code::Unavailable,
        ),
        (
            "105",
            400,
            douban_fixture("douban_error_105_apikey_is_blocked.json"),
            Code::Unavailable,
        ),
        (
            "109",
            403,
            body(109, "invalid_credencial2"),
            Code::Unavailable,
        ),
        (
            "111",
            400,
            body(111, "rate_limit_exceeded1"),
            Code::ResourceExhausted,
        ),
        (
            "112",
            400,
            douban_fixture("douban_error_112_rate_limit_exceeded2.json"),
            Code::ResourceExhausted,
        ),
        (
            "html 403",
            403,
            "<html><body><center>dae</center></body></html>".to_owned(),
            Code::Unavailable,
        ),
        (
            "6000",
            404,
            douban_fixture("douban_error_6000_book_not_found_isbn.json"),
            Code::NotFound,
        ),
    ]
}

#[tokio::test]
async fn each_douban_error_code_maps_as_specified() {
    for (name, status, body, code) in douban_errors() {
        let up = Upstreams::start().await;
        up.douban.answer_with(Some((status, &body)));

        let alone = CatalogApp::start(up.config(&["douban"])).await;
        let got = alone.isbn(CHAMBER).await.expect_err(name);
        assert_eq!(got.code(), code, "douban {name} alone: {got:?}");
        assert_eq!(up.douban.total_calls(), 1, "douban {name} is not retried");
        assert!(
            !got.message().contains("apikey_is_blocked"),
            "causes stay in the log"
        );

        // With a fallback, every one of them moves on to the next provider.
        let chained = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;
        let book = chained
            .isbn(CHAMBER)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(provider(&book), "openlibrary", "douban {name}");
        assert_eq!(up.douban.total_calls(), 2);
    }
}

#[tokio::test]
async fn douban_failures_are_counted_per_provider_and_outcome() {
    let up = Upstreams::start().await;
    up.douban.answer_with(Some((
        400,
        &douban_fixture("douban_error_112_rate_limit_exceeded2.json"),
    )));
    let app = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;
    app.isbn(CHAMBER).await.expect("fallback answers");
    let metrics = app.metrics_text().await;
    for series in [
        r#"doumi_catalog_upstream_requests_total{provider="douban",operation="isbn",outcome="rate_limited"}"#,
        r#"doumi_catalog_upstream_requests_total{provider="openlibrary",operation="isbn",outcome="ok"}"#,
        "doumi_catalog_upstream_latency_seconds_bucket{provider=\"openlibrary\"",
        "doumi_catalog_cache_misses_total",
    ] {
        assert!(metrics.contains(series), "{series} missing in\n{metrics}");
    }
}
