//! A dead upstream is not hammered (the circuit breaker), and a caller who
//! has given up causes no upstream request (the deadline).

use std::time::Duration;

use doumi_proto::catalog::v1::GetBookByIsbnRequest;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::app::{CHAMBER, CatalogApp, Upstreams, WAVE, eventually};

/// Three books the fake Douban knows, besides 浪潮之巅.
const OTHERS: [&str; 3] = ["9787115282828", "9787536692930", "9787544242516"];

async fn douban_health(app: &CatalogApp) -> ServingStatus {
    let mut health = HealthClient::new(app.channel());
    let request = HealthCheckRequest {
        service: "doumi.catalog.provider.douban".to_owned(),
    };
    match health.check(request).await {
        Ok(response) => response.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_closes_after_recovery() {
    let up = Upstreams::start().await;
    let mut config = up.config(&["douban"]);
    config.upstream.retries = 0;
    let app = CatalogApp::start(config).await;

    up.douban.fail_with(Some(502));
    for isbn in OTHERS {
        let status = app.isbn(isbn).await.expect_err("douban is down");
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(up.douban.total_calls(), 3);

    // Open: refused at once, Douban not asked.
    let status = app.isbn(WAVE).await.expect_err("circuit open");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        up.douban.total_calls(),
        3,
        "an open circuit does not call Douban"
    );
    eventually("health shows the provider failing", || async {
        douban_health(&app).await == ServingStatus::NotServing
    })
    .await;

    // Douban recovers; after the cooldown a probe closes the circuit.
    up.douban.fail_with(None);
    eventually("answers come back", || async {
        app.isbn(WAVE).await.is_ok()
    })
    .await;
    for isbn in OTHERS {
        app.isbn(isbn).await.expect("closed again");
    }
    assert_eq!(
        up.douban.total_calls(),
        3 + 1 + 3,
        "one probe, then every lookup"
    );
    eventually("health shows the provider serving", || async {
        douban_health(&app).await == ServingStatus::Serving
    })
    .await;
}

#[tokio::test]
async fn a_deadline_already_passed_causes_no_upstream_request() {
    let up = Upstreams::start().await;
    let app = CatalogApp::start(up.config(&["douban", "openlibrary", "googlebooks"])).await;
    let mut request = tonic::Request::new(GetBookByIsbnRequest {
        isbn: WAVE.to_owned(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_nanos(1));
    let status = app
        .client()
        .get_book_by_isbn(request)
        .await
        .expect_err("no time left");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    let asked =
        up.douban.total_calls() + up.openlibrary.total_calls() + up.googlebooks.total_calls();
    assert_eq!(asked, 0);
    // The catalog itself is fine: the next caller, with time, gets the book.
    assert!(app.isbn(WAVE).await.is_ok());
}

#[tokio::test]
async fn no_fallback_starts_after_the_deadline_passed_during_a_slow_provider() {
    let up = Upstreams::start().await;
    up.douban.delay(Duration::from_millis(800));
    let app = CatalogApp::start(up.config(&["douban", "openlibrary"])).await;
    let mut request = tonic::Request::new(GetBookByIsbnRequest {
        isbn: CHAMBER.to_owned(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(200));
    let status = app
        .client()
        .get_book_by_isbn(request)
        .await
        .expect_err("too slow");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert_eq!(up.douban.total_calls(), 1);
    // What must not happen is a later request; absence cannot be polled for,
    // so wait out the slow answer once.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        up.openlibrary.total_calls(),
        0,
        "no fallback after the deadline"
    );
    assert_eq!(up.douban.total_calls(), 1, "no retry after the deadline");
}
