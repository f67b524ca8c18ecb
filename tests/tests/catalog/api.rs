//! The API other teams build on: the new RPCs, batch results item by item,
//! input errors, health, reflection and metrics.

use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, GetBookByIsbnRequest, GetBookRequest, SearchBooksRequest,
    book_result,
};
use futures::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use super::app::{CHAMBER, CatalogApp, NOBODY, Upstreams, WAVE};

#[tokio::test]
async fn get_book_by_douban_id_and_its_errors() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;
    let book = app.douban_id("6709783").await.expect("浪潮之巅 by id");
    assert_eq!(
        (book.title.as_str(), book.isbn13.as_str()),
        ("浪潮之巅", WAVE)
    );
    assert_eq!(
        app.douban_id("6709783").await.expect("cached").title,
        "浪潮之巅"
    );
    assert_eq!(up.douban.calls("/v2/book/6709783"), 1);

    let missing = app.douban_id("99999999").await.expect_err("no such id");
    assert_eq!(missing.code(), Code::NotFound);
    let bad = app.douban_id("67a9783").await.expect_err("not an id");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("digits"), "{bad:?}");

    // Only Douban knows its ids.
    let no_douban = CatalogApp::start(up.config(&["openlibrary", "googlebooks"])).await;
    let status = no_douban
        .douban_id("6709783")
        .await
        .expect_err("nobody can");
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn batch_lookups_answer_each_isbn_on_its_own() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;
    let isbns = [WAVE, "0-439-06487-2", NOBODY, "9787121139513", "7121139510"];
    let results = app
        .client()
        .batch_get_books_by_isbn(BatchGetBooksByIsbnRequest {
            isbns: isbns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    let summary: Vec<(String, Result<String, Code>)> = results
        .into_iter()
        .map(|r| {
            let outcome = match r.result {
                Some(book_result::Result::Book(book)) => Ok(book.title),
                Some(book_result::Result::Error(e)) => Err(Code::from_i32(e.code)),
                None => Err(Code::Unknown),
            };
            (r.isbn, outcome)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (WAVE.to_owned(), Ok("浪潮之巅".to_owned())),
            (
                "0-439-06487-2".to_owned(),
                Ok("Harry Potter and the Chamber of Secrets".to_owned())
            ),
            (NOBODY.to_owned(), Err(Code::NotFound)),
            ("9787121139513".to_owned(), Err(Code::InvalidArgument)),
            ("7121139510".to_owned(), Ok("浪潮之巅".to_owned())),
        ]
    );
    assert_eq!(
        up.douban.calls(&format!("/v2/book/isbn/{WAVE}")),
        1,
        "the same book twice: one fetch"
    );
    assert_eq!(up.openlibrary.calls(CHAMBER), 1);

    let too_many = app
        .client()
        .batch_get_books_by_isbn(BatchGetBooksByIsbnRequest {
            isbns: vec![WAVE.to_owned(); 51],
            ..Default::default()
        })
        .await
        .expect_err("51 ISBNs");
    assert_eq!(too_many.code(), Code::InvalidArgument);
    let empty = app
        .client()
        .batch_get_books_by_isbn(BatchGetBooksByIsbnRequest {
            isbns: vec![],
            ..Default::default()
        })
        .await
        .expect_err("no ISBNs");
    assert_eq!(empty.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_bad_isbn_says_what_is_wrong_and_reaches_no_provider() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;
    for (isbn, words) in [
        ("9787121139513", "check digit"),
        ("97871210703898", "14"),
        ("978-7-12a", "'a'"),
        ("", "empty"),
    ] {
        let status = app.isbn(isbn).await.expect_err(isbn);
        assert_eq!(status.code(), Code::InvalidArgument, "{isbn}");
        assert!(status.message().contains(words), "{isbn}: {status:?}");
    }
    let asked =
        up.douban.total_calls() + up.openlibrary.total_calls() + up.googlebooks.total_calls();
    assert_eq!(asked, 0);
}

#[tokio::test]
async fn search_goes_to_douban() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;
    let page = app
        .client()
        .search_books(SearchBooksRequest {
            query: "浪潮之巅".to_owned(),
            page_size: 5,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(
        page.books.first().map(|b| b.title.as_str()),
        Some("浪潮之巅")
    );
    assert_eq!(
        up.openlibrary.total_calls(),
        0,
        "douban answered: open library is not asked"
    );
}

/// The catalog answers its methods itself (`Answers` in its service): a
/// method added to catalog.proto fails here until the catalog answers it and
/// this test asks it.
#[tokio::test]
async fn every_method_of_the_contract_is_answered() {
    use prost::Message;
    let described =
        prost_types::FileDescriptorSet::decode(doumi_proto::catalog::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptors")
            .file
            .into_iter()
            .flat_map(|file| file.service)
            .filter(|service| service.name() == "BookCatalog")
            .flat_map(|service| service.method)
            .map(|method| method.name().to_owned())
            .collect::<Vec<_>>();
    assert_eq!(
        described,
        [
            "GetBookByIsbn",
            "SearchBooks",
            "GetBook",
            "BatchGetBooksByIsbn"
        ]
    );
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban"])).await;
    let mut client = app.client();
    let code = |answer: Result<_, tonic::Status>| answer.map_or_else(|s| s.code(), |_| Code::Ok);
    let codes = [
        code(
            client
                .get_book_by_isbn(GetBookByIsbnRequest::default())
                .await
                .map(drop),
        ),
        code(
            client
                .search_books(SearchBooksRequest::default())
                .await
                .map(drop),
        ),
        code(client.get_book(GetBookRequest::default()).await.map(drop)),
        code(
            client
                .batch_get_books_by_isbn(BatchGetBooksByIsbnRequest::default())
                .await
                .map(drop),
        ),
    ];
    // Empty requests: each refused by the method itself, none unknown.
    assert_eq!(codes, [Code::InvalidArgument; 4]);
}

#[tokio::test]
async fn health_and_reflection_are_on() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", "doumi.catalog.v1.BookCatalog"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(app.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(Ok(response)) = stream.next().await else {
        panic!("no reflection answer");
    };
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["doumi.catalog.v1.BookCatalog", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("doumi.bot")),
        "the catalog's public API lists only its own service: {names:?}"
    );
}

#[tokio::test]
async fn metrics_count_hits_misses_and_coalesced_waits() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban"])).await;
    app.isbn(WAVE).await.expect("miss");
    app.isbn(WAVE).await.expect("hit");
    let metrics = app.metrics_text().await;
    for series in [
        "# TYPE doumi_catalog_cache_hits_total counter",
        r#"doumi_catalog_cache_hits_total{tier="memory"}"#,
        "doumi_catalog_cache_misses_total",
        r#"doumi_catalog_upstream_requests_total{provider="douban",operation="isbn",outcome="ok"}"#,
        r#"doumi_catalog_circuit_state{provider="douban"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing in\n{metrics}");
    }
}
