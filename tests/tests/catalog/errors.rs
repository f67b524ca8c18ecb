//! Machine-readable errors, as another team's tonic client reads them: every
//! error status carries a `google.rpc.ErrorInfo` whose reason names the cause,
//! RetryInfo when a retry can help, BadRequest for malformed fields; a batch
//! item carries the same `google.rpc.Status` the single call would return.

use std::time::Duration;

use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, GetBookByIsbnRequest, SearchBooksRequest, book_result,
};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::app::{CHAMBER, CatalogApp, NOBODY, Upstreams, WAVE};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/douban");

fn douban_fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("douban fixture")
}

/// The reason and domain of a status's ErrorInfo.
fn reason(status: &Status) -> String {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "catalog.doumi", "{status:?}");
    info.reason
}

fn retry_delay(status: &Status) -> Option<Duration> {
    status.get_details_retry_info().and_then(|r| r.retry_delay)
}

/// The fields a status's BadRequest names.
fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_bad_isbn_is_invalid_isbn_with_a_bad_request_on_isbn() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban"])).await;

    let status = app
        .isbn("9787121139513")
        .await
        .expect_err("bad check digit");

    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_ISBN");
    let details: ErrorDetails = status.get_error_details();
    let violation = details
        .bad_request()
        .and_then(|b| b.field_violations.first())
        .expect("a field violation");
    assert_eq!(violation.field, "isbn");
    assert!(
        violation.description.contains("check digit"),
        "{violation:?}"
    );
    assert_eq!(
        retry_delay(&status),
        None,
        "retrying a bad ISBN cannot help"
    );
}

#[tokio::test]
async fn other_malformed_fields_are_invalid_argument_naming_the_field() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;

    let mask = app
        .client()
        .get_book_by_isbn(GetBookByIsbnRequest {
            isbn: WAVE.to_owned(),
            read_mask: Some(prost_types::FieldMask {
                paths: vec!["no_such_field".to_owned()],
            }),
        })
        .await
        .expect_err("unknown read_mask path");
    assert_eq!(
        (reason(&mask), violated_fields(&mask)),
        ("INVALID_ARGUMENT".to_owned(), vec!["read_mask".to_owned()])
    );

    let page_size = app
        .client()
        .search_books(SearchBooksRequest {
            query: "mistborn".to_owned(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative page_size");
    assert_eq!(
        (reason(&page_size), violated_fields(&page_size)),
        ("INVALID_ARGUMENT".to_owned(), vec!["page_size".to_owned()])
    );

    let too_many = app
        .client()
        .batch_get_books_by_isbn(BatchGetBooksByIsbnRequest {
            isbns: vec![WAVE.to_owned(); 51],
            ..Default::default()
        })
        .await
        .expect_err("51 ISBNs");
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert_eq!(
        (reason(&too_many), violated_fields(&too_many)),
        ("BATCH_TOO_LARGE".to_owned(), vec!["isbns".to_owned()])
    );
    assert_eq!(
        up.douban.total_calls(),
        0,
        "malformed requests reach no provider"
    );
}

#[tokio::test]
async fn an_unknown_book_is_book_not_found() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban"])).await;

    let status = app.isbn(NOBODY).await.expect_err("nobody has it");

    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "BOOK_NOT_FOUND");
    assert_eq!(retry_delay(&status), None);
}

#[tokio::test]
async fn a_refused_apikey_is_provider_key_refused_without_retry_info() {
    let up = Upstreams::start().await;
    up.douban.answer_with(Some((
        403,
        &douban_fixture("douban_error_104_invalid_apikey.json"),
    )));
    let app = CatalogApp::start(up.config(&["douban"])).await;

    let status = app.isbn(CHAMBER).await.expect_err("apikey refused");

    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "PROVIDER_KEY_REFUSED");
    assert_eq!(
        retry_delay(&status),
        None,
        "permanent until an operator fixes the key: no retry advice"
    );
    assert!(
        !format!("{status:?}").contains("invalid_apikey"),
        "causes stay in the log"
    );
}

#[tokio::test]
async fn a_rate_limit_is_provider_rate_limited_with_retry_info() {
    let up = Upstreams::start().await;
    up.douban.answer_with(Some((
        400,
        &douban_fixture("douban_error_112_rate_limit_exceeded2.json"),
    )));
    let app = CatalogApp::start(up.config(&["douban"])).await;

    let status = app.isbn(CHAMBER).await.expect_err("rate-limited");

    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "PROVIDER_RATE_LIMITED");
    assert_eq!(retry_delay(&status), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn an_outage_is_providers_unavailable_with_a_short_retry() {
    let up = Upstreams::start().await;
    up.douban.fail_with(Some(502));
    let app = CatalogApp::start(up.config(&["douban"])).await;

    let status = app.isbn(CHAMBER).await.expect_err("douban is down");

    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "PROVIDERS_UNAVAILABLE");
    assert_eq!(retry_delay(&status), Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn an_open_circuit_says_when_it_lets_calls_through_again() {
    let up = Upstreams::start().await;
    let mut config = up.config(&["douban"]);
    config.upstream.retries = 0;
    let cooldown = config.upstream.breaker.cooldown;
    let app = CatalogApp::start(config).await;
    up.douban.fail_with(Some(502));
    for isbn in ["9787115282828", "9787536692930", "9787544242516"] {
        let status = app.isbn(isbn).await.expect_err("douban is down");
        assert_eq!(reason(&status), "PROVIDERS_UNAVAILABLE");
    }

    let status = app.isbn(WAVE).await.expect_err("circuit open");

    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "CIRCUIT_OPEN");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        info.metadata.get("provider").map(String::as_str),
        Some("douban")
    );
    let delay = retry_delay(&status).expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay <= cooldown,
        "what is left of the {cooldown:?} cooldown, got {delay:?}"
    );
    assert_eq!(up.douban.total_calls(), 3, "an open circuit calls nobody");
}

#[tokio::test]
async fn a_forged_or_borrowed_page_token_is_invalid_page_token() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["openlibrary"])).await;
    let search = |query: &str, token: &str| {
        let mut client = app.client();
        let request = SearchBooksRequest {
            query: query.to_owned(),
            page_size: 5,
            page_token: token.to_owned(),
            ..Default::default()
        };
        async move {
            client
                .search_books(request)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let first = search("mistborn", "").await.expect("first page");
    let token = first.next_page_token;
    assert!(!token.is_empty(), "15 matches: there is a next page");
    search("mistborn", &token)
        .await
        .expect("the issued token works");
    let calls = up.openlibrary.search_calls();

    let mut last = token.clone();
    last.pop();
    let mut edited = token.clone().into_bytes();
    edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("base64 is ASCII");
    for (case, query, forged) in [
        ("a plain offset", "mistborn", "995".to_owned()),
        ("truncated", "mistborn", last),
        ("edited", "mistborn", edited),
        ("another query's", "harry potter", token.clone()),
    ] {
        let status = search(query, &forged).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}");
        assert_eq!(reason(&status), "INVALID_PAGE_TOKEN", "{case}");
        assert_eq!(violated_fields(&status), ["page_token"], "{case}");
    }
    assert_eq!(
        up.openlibrary.search_calls(),
        calls,
        "a refused token reaches no provider"
    );
}

#[tokio::test]
async fn a_batch_item_carries_the_status_the_single_call_returns() {
    let up = Upstreams::start().await;
    up.douban.answer_with(Some((
        400,
        &douban_fixture("douban_error_112_rate_limit_exceeded2.json"),
    )));
    let app = CatalogApp::start(up.config(&["douban"])).await;
    let asked = [CHAMBER, "9787121139513"];

    let results = app
        .client()
        .batch_get_books_by_isbn(BatchGetBooksByIsbnRequest {
            isbns: asked.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("a batch succeeds even when every item fails")
        .into_inner()
        .results;

    assert_eq!(results.len(), asked.len());
    for (result, isbn) in results.into_iter().zip(asked) {
        assert_eq!(result.isbn, isbn, "request order");
        let Some(book_result::Result::Error(error)) = result.result else {
            panic!("{isbn}: expected an error, got {:?}", result.result);
        };
        let item = error.status.expect("a google.rpc.Status");
        let single = app.isbn(isbn).await.expect_err(isbn);
        let single_rpc =
            tonic_types::pb::Status::decode(single.details()).expect("google.rpc.Status");
        assert_eq!(item, single_rpc, "{isbn}");
        assert_eq!(
            (error.code, error.message),
            (item.code, item.message.clone())
        );

        // A client reads the item's details with the same helpers.
        let status = Status::with_details(
            Code::from(item.code),
            item.message.clone(),
            item.encode_to_vec().into(),
        );
        let expected = if isbn == CHAMBER {
            "PROVIDER_RATE_LIMITED"
        } else {
            "INVALID_ISBN"
        };
        assert_eq!(reason(&status), expected, "{isbn}");
        if isbn == CHAMBER {
            assert_eq!(retry_delay(&status), Some(Duration::from_secs(60)));
        } else {
            assert_eq!(violated_fields(&status), ["isbn"]);
        }
    }
}
