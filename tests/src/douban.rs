//! A fake Douban API v2: serves recorded book JSON (the repository's fixtures
//! and the sample catalog, which is stored in Douban's shape), counts every
//! request, and can be told to fail or be slow.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/douban");
const SAMPLE_BOOKS: &str = include_str!("../../services/catalog/data/sample-books.json");

#[derive(Default)]
struct Shared {
    books: HashMap<String, Value>,
    calls: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    /// 0 = behave; otherwise answer every request with this status.
    fail_with: AtomicU16,
    delay_ms: AtomicU64,
    /// A Douban error body to answer every request with, and its status.
    canned: Mutex<Option<(u16, String)>>,
}

/// A running fake Douban on a loopback port; stops on drop.
pub struct FakeDouban {
    url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FakeDouban {
    pub async fn start() -> anyhow::Result<Self> {
        let mut books: HashMap<String, Value> = HashMap::new();
        let samples: Vec<Value> = serde_json::from_str(SAMPLE_BOOKS)?;
        for book in samples {
            insert(&mut books, book);
        }
        for entry in std::fs::read_dir(FIXTURES)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.starts_with("douban_book_") {
                insert(
                    &mut books,
                    serde_json::from_str(&std::fs::read_to_string(&path)?)?,
                );
            }
        }
        let shared = Arc::new(Shared {
            books,
            ..Default::default()
        });
        let app = Router::new()
            .route("/v2/book/isbn/{isbn}", get(by_isbn))
            .route("/v2/book/{id}", get(by_id))
            .route("/v2/book/search", get(search))
            .with_state(shared.clone());
        let (url, stop) = crate::fake_upstream::serve(app).await?;
        Ok(Self { url, shared, stop })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests seen for one path, e.g. `/v2/book/isbn/9787121139512`.
    pub fn calls(&self, path: &str) -> u64 {
        self.shared
            .calls
            .lock()
            .map(|c| c.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Requests seen in all.
    pub fn total_calls(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Answer every request with `status` (and no Douban body) until reset with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        self.shared
            .fail_with
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// Answer every request with `status` and `body` (a recorded Douban error
    /// body, or an HTML page) until reset with `None`.
    pub fn answer_with(&self, canned: Option<(u16, &str)>) {
        if let Ok(mut slot) = self.shared.canned.lock() {
            *slot = canned.map(|(status, body)| (status, body.to_owned()));
        }
    }

    /// Delay every answer by `delay`.
    pub fn delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for FakeDouban {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn insert(books: &mut HashMap<String, Value>, book: Value) {
    if let Some(isbn) = book.get("isbn13").and_then(Value::as_str) {
        books.insert(isbn.to_owned(), book);
    }
}

async fn misbehave(shared: &Shared, path: String) -> Option<Response> {
    shared.total.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut calls) = shared.calls.lock() {
        *calls.entry(path).or_default() += 1;
    }
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some((status, body)) = shared.canned.lock().ok().and_then(|c| c.clone()) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some((status, body).into_response());
    }
    match shared.fail_with.load(Ordering::SeqCst) {
        0 => None,
        status => Some(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "<html>upstream trouble</html>",
            )
                .into_response(),
        ),
    }
}

async fn by_isbn(State(shared): State<Arc<Shared>>, Path(isbn): Path<String>) -> Response {
    if let Some(response) = misbehave(&shared, format!("/v2/book/isbn/{isbn}")).await {
        return response;
    }
    match shared.books.get(&isbn) {
        Some(book) => Json(book.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"msg": "book_not_found", "code": 6000, "request": format!("GET /v2/book/isbn/{isbn}")})),
        )
            .into_response(),
    }
}

async fn by_id(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Some(response) = misbehave(&shared, format!("/v2/book/{id}")).await {
        return response;
    }
    let book = shared
        .books
        .values()
        .find(|b| b.get("id").and_then(Value::as_str) == Some(id.as_str()));
    match book {
        Some(book) => Json(book.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"msg": "book_not_found", "code": 6000, "request": format!("GET /v2/book/{id}")})),
        )
            .into_response(),
    }
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = misbehave(&shared, "/v2/book/search".to_owned()).await {
        return response;
    }
    let q = query.get("q").cloned().unwrap_or_default().to_lowercase();
    let start: usize = query.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let count: usize = query
        .get("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .min(100);
    let mut hits: Vec<&Value> = shared
        .books
        .values()
        .filter(|b| {
            let title = b
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            let authors = b
                .get("author")
                .map(Value::to_string)
                .unwrap_or_default()
                .to_lowercase();
            title.contains(&q) || authors.contains(&q)
        })
        .collect();
    hits.sort_by_key(|b| {
        b.get("isbn13")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    });
    let page: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(count)
        .map(|b| (*b).clone())
        .collect();
    Json(serde_json::json!({"start": start, "count": page.len(), "total": hits.len(), "books": page})).into_response()
}
