//! A fake Douban API v2: serves recorded book JSON (the repository's fixtures
//! and the sample catalog, which is stored in Douban's shape), counts every
//! request, and can be told to fail or be slow.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::Value;

use crate::fake_upstream::{Behaves, Behaviour, Running};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/douban");
const SAMPLE_BOOKS: &str = include_str!("../../services/catalog/data/sample-books.json");

/// What the fake Douban knows (books by ISBN-13) and how it behaves.
pub struct Douban {
    books: HashMap<String, Value>,
    behaviour: Behaviour,
}

impl Behaves for Douban {
    fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }
}

/// A running fake Douban on a loopback port; stops on drop.
pub type FakeDouban = Running<Douban>;

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
        let douban = Douban {
            books,
            behaviour: Behaviour::default(),
        };
        Running::serve(douban, |douban| {
            Router::new()
                .route("/v2/book/isbn/{isbn}", get(by_isbn))
                .route("/v2/book/{id}", get(by_id))
                .route("/v2/book/search", get(search))
                .with_state(douban)
        })
        .await
    }

    /// Requests seen for one path, e.g. `/v2/book/isbn/9787121139512`.
    pub fn calls(&self, path: &str) -> u64 {
        self.behaviour().calls(path)
    }
}

fn insert(books: &mut HashMap<String, Value>, book: Value) {
    if let Some(isbn) = book.get("isbn13").and_then(Value::as_str) {
        books.insert(isbn.to_owned(), book);
    }
}

async fn by_isbn(State(shared): State<Arc<Douban>>, Path(isbn): Path<String>) -> Response {
    if let Some(response) = shared
        .behaviour
        .enter(format!("/v2/book/isbn/{isbn}"))
        .await
    {
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

async fn by_id(State(shared): State<Arc<Douban>>, Path(id): Path<String>) -> Response {
    if let Some(response) = shared.behaviour.enter(format!("/v2/book/{id}")).await {
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
    State(shared): State<Arc<Douban>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = shared.behaviour.enter("/v2/book/search".to_owned()).await {
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
