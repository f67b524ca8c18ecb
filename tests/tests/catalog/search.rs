//! Keyword search without Douban: Open Library's `/search.json` and Google
//! Books' `/books/v1/volumes?q=` answer through the provider chain, page by
//! page, and a page asked again within the search cache's TTL reaches no
//! provider.

use std::{collections::HashMap, time::Duration};

use doumi_proto::catalog::v1::{Book, SearchBooksRequest, SearchBooksResponse};
use serde_json::{Value, json};
use tonic::{Code, Status};

use super::app::{CatalogApp, Upstreams, provider};

/// Recorded by Open Library as 15 works, in this order.
const MISTBORN: [&str; 15] = [
    "Mistborn Trilogy",
    "Mistborn Adventure Game",
    "Mistborn: Secret History",
    "The Final Empire (Mistborn, Book 1)",
    "Shadows of Self (Mistborn, Book 5)",
    "The Alloy of Law (Mistborn, Book 4)",
    "The Bands of Mourning (Mistborn, Book 6)",
    "Aleación de Ley (Nacidos de la Bruma [Mistborn] 4)",
    "Brandon Sanderson's Fantasy Firsts : (the Way of Kings, Mistborn: the Final Empire, Rithmatist, Alcatraz vs. the Evil Librarians)",
    "The Well of Ascension",
    "The Hero of Ages",
    "Arcanum Unbounded",
    "Shadows of Self",
    "Alloy of Law",
    "Bands of Mourning",
];

async fn search(
    app: &CatalogApp,
    query: &str,
    page_size: i32,
    page_token: &str,
) -> Result<SearchBooksResponse, Status> {
    app.client()
        .search_books(SearchBooksRequest {
            query: query.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

fn titles(page: &SearchBooksResponse) -> Vec<&str> {
    page.books.iter().map(|b| b.title.as_str()).collect()
}

fn large_cover(book: &Book) -> &str {
    book.images.as_ref().map_or("", |i| i.large.as_str())
}

/// A Google Books volume in the documented shape (as in the recorded
/// answer): a real edition, with a test volume id and Google's http links.
fn volume(id: &str, title: &str, isbn13: &str, isbn10: &str, year: &str) -> Value {
    let image = |zoom: u8| {
        format!(
            "http://books.google.com/books/content?id={id}&printsec=frontcover&img=1&zoom={zoom}&source=gbs_api"
        )
    };
    json!({
        "kind": "books#volume",
        "id": id,
        "volumeInfo": {
            "title": title,
            "authors": ["Brandon Sanderson"],
            "publisher": "Tor",
            "publishedDate": year,
            "industryIdentifiers": [
                {"type": "ISBN_10", "identifier": isbn10},
                {"type": "ISBN_13", "identifier": isbn13},
            ],
            "printType": "BOOK",
            "imageLinks": {"smallThumbnail": image(5), "thumbnail": image(1)},
            "language": "en",
            "infoLink": format!("http://books.google.com/books?id={id}&source=gbs_api"),
            "canonicalVolumeLink": format!("https://books.google.com/books/about/?id={id}"),
        },
        "saleInfo": {"country": "US", "saleability": "NOT_FOR_SALE", "isEbook": false},
    })
}

/// Three Mistborn novels Google Books knows besides its recorded volume.
fn google_knows_mistborn(up: &Upstreams) {
    for v in [
        volume(
            "test-final-empire",
            "Mistborn: The Final Empire",
            "9780765350381",
            "0765350386",
            "2006-07-25",
        ),
        volume(
            "test-hero-of-ages",
            "Mistborn: The Hero of Ages",
            "9780765356147",
            "0765356147",
            "2009-04-28",
        ),
        volume(
            "test-shadows-of-self",
            "Shadows of Self: A Mistborn Novel",
            "9780765378569",
            "0765378566",
            "2015-10-06",
        ),
    ] {
        up.googlebooks.add(v);
    }
}

fn param<'a>(request: &'a HashMap<String, String>, name: &str) -> &'a str {
    request.get(name).map_or("", String::as_str)
}

#[tokio::test]
async fn without_douban_a_title_search_finds_books_with_authors_and_large_covers() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;

    let page = search(&app, "mistborn", 5, "").await.expect("search");

    assert_eq!(titles(&page), MISTBORN[..5]);
    assert_eq!(page.total_size, 15);
    assert!(!page.next_page_token.is_empty(), "15 matches: a next page");
    let trilogy = &page.books[0];
    assert_eq!(trilogy.authors, ["Brandon Sanderson"]);
    assert_eq!(
        large_cover(trilogy),
        "https://covers.openlibrary.org/b/id/7557846-L.jpg"
    );
    assert_eq!(trilogy.isbn13, "9781473213692");
    assert_eq!(trilogy.pubdate.as_ref().map(|d| d.year), Some(2001));
    assert_eq!(trilogy.web_url, "https://openlibrary.org/works/OL17427759W");
    assert!(page.books.iter().all(|b| provider(b) == "openlibrary"
        && !b.authors.is_empty()
        && large_cover(b).ends_with("-L.jpg")));

    let asked = up.openlibrary.searches();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (
            param(&asked[0], "q"),
            param(&asked[0], "offset"),
            param(&asked[0], "limit")
        ),
        ("mistborn", "0", "5")
    );
    assert!(param(&asked[0], "fields").contains("cover_i"));
    assert_eq!(
        up.googlebooks.search_calls("mistborn"),
        0,
        "open library answered"
    );
}

#[tokio::test]
async fn page_tokens_continue_where_the_last_page_ended() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = search(&app, "mistborn", 6, &token).await.expect("a page");
        pages += 1;
        seen.extend(titles(&page).into_iter().map(str::to_owned));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 5, "paging never ends");
    }

    assert_eq!(pages, 3, "6 + 6 + 3");
    assert_eq!(seen, MISTBORN);
    let offsets: Vec<String> = up
        .openlibrary
        .searches()
        .iter()
        .map(|s| param(s, "offset").to_owned())
        .collect();
    assert_eq!(offsets, ["0", "6", "12"]);
}

#[tokio::test]
async fn when_open_library_is_down_google_books_answers() {
    let up = Upstreams::start().await;
    google_knows_mistborn(&up);
    up.openlibrary
        .behaviour()
        .answer_with(Some((503, "<html>Service Unavailable</html>")));
    let app = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;

    let page = search(&app, "mistborn", 10, "").await.expect("search");

    assert_eq!(
        titles(&page),
        [
            "Mistborn: The Final Empire",
            "Mistborn: The Hero of Ages",
            "Shadows of Self: A Mistborn Novel"
        ]
    );
    assert_eq!(page.total_size, 3);
    assert!(page.next_page_token.is_empty());
    let empire = &page.books[0];
    assert_eq!(provider(empire), "googlebooks");
    assert_eq!(empire.authors, ["Brandon Sanderson"]);
    assert_eq!(
        (empire.isbn13.as_str(), empire.isbn10.as_str()),
        ("9780765350381", "0765350386")
    );
    // The largest image Google gives, over https.
    assert_eq!(
        large_cover(empire),
        "https://books.google.com/books/content?id=test-final-empire&printsec=frontcover&img=1&zoom=1&source=gbs_api"
    );
    assert!(
        up.openlibrary.search_calls() >= 1,
        "open library was asked first"
    );
    let asked = up.googlebooks.searches();
    assert_eq!(
        (param(&asked[0], "startIndex"), param(&asked[0], "key")),
        ("0", "test-apikey")
    );
}

#[tokio::test]
async fn no_results_from_one_provider_moves_on_to_the_next_as_for_isbns() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;

    // Douban knows no Mistborn: Open Library answers.
    let page = search(&app, "mistborn", 5, "").await.expect("search");
    assert_eq!(page.books.first().map(provider), Some("openlibrary"));
    assert_eq!(up.douban.calls("/v2/book/search"), 1);

    // Neither Douban nor Open Library know Harry Potter: Google Books does.
    let page = search(&app, "harry potter", 5, "").await.expect("search");
    assert_eq!(
        titles(&page),
        ["Harry Potter 1 and the Philosopher's Stone"]
    );
    assert_eq!(provider(&page.books[0]), "googlebooks");
    assert!(large_cover(&page.books[0]).starts_with("https://books.google.com/"));
    assert_eq!(up.openlibrary.search_calls(), 2);
}

#[tokio::test]
async fn nothing_anywhere_is_an_empty_page_unless_a_provider_failed() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;

    let page = search(&app, "no such book anywhere", 5, "")
        .await
        .expect("an empty page, not an error");
    assert!(page.books.is_empty() && page.next_page_token.is_empty());
    assert_eq!(page.total_size, 0);
    assert_eq!(
        (
            up.openlibrary.search_calls(),
            up.googlebooks.search_calls("no such book anywhere")
        ),
        (1, 1),
        "both were asked"
    );

    // Open Library could not say: the books may be there.
    up.openlibrary
        .behaviour()
        .answer_with(Some((503, "<html>Service Unavailable</html>")));
    let status = search(&app, "still no such book", 5, "")
        .await
        .expect_err("a failure, not an empty page");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn google_books_pages_are_never_larger_than_it_allows() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["googlebooks"])).await;

    // The catalog allows 50 a page, Google Books 40 (more is a 400).
    let page = search(&app, "harry potter", 50, "").await.expect("search");
    assert_eq!(page.books.len(), 1);
    let asked = up.googlebooks.searches();
    assert_eq!(param(&asked[0], "maxResults"), "40");
}

#[tokio::test]
async fn a_repeated_search_within_the_ttl_reaches_no_provider_again() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;

    let first = search(&app, "mistborn", 5, "").await.expect("search");
    // The same words, spelled differently, are the same search.
    for query in ["mistborn", "  Mistborn ", "MISTBORN"] {
        let again = search(&app, query, 5, "").await.expect("cached");
        assert_eq!(titles(&again), titles(&first), "{query:?}");
        assert_eq!(again.next_page_token, first.next_page_token);
    }
    assert_eq!(up.openlibrary.total_calls(), 1);
    assert_eq!(up.googlebooks.total_calls(), 0);

    // Another page is another question.
    search(&app, "mistborn", 5, &first.next_page_token)
        .await
        .expect("page 2");
    assert_eq!(up.openlibrary.search_calls(), 2);

    // The recorder is shared by every catalog in this process: names only.
    let metrics = app.metrics_text().await;
    for series in [
        "doumi_catalog_search_cache_hits_total",
        "doumi_catalog_search_cache_misses_total",
    ] {
        assert!(metrics.contains(series), "{series} missing in\n{metrics}");
    }
}

#[tokio::test]
async fn concurrent_identical_searches_share_one_provider_request() {
    let up = Upstreams::start().await;
    up.openlibrary.behaviour().delay(Duration::from_millis(300));
    let app = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;

    let asks: Vec<_> = (0..20)
        .map(|_| {
            let client = app.client();
            tokio::spawn(async move {
                let mut client = client;
                client
                    .search_books(SearchBooksRequest {
                        query: "mistborn".to_owned(),
                        page_size: 5,
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    for ask in asks {
        let page = ask.await.expect("task").expect("search").into_inner();
        assert_eq!(page.books.len(), 5);
    }
    assert_eq!(up.openlibrary.search_calls(), 1);
}
