//! A fake Google Books: `/books/v1/volumes?q=isbn:…` answered from the
//! recorded volume, `{"totalItems": 0}` (no `items`) for an unknown ISBN; any
//! other `q` is a keyword search over every volume it knows, paged by
//! `startIndex` and `maxResults` (default 10; above 40 is a 400, as on the
//! real API), with `totalItems` and no `items` when a page is empty.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::fake_upstream::{Behaves, Behaviour, Running};

const RECORDED: &str = include_str!("../fixtures/googlebooks/googlebooks_q_isbn_0747532699.json");

/// `maxResults` when a search does not say, and the most it may say.
const DEFAULT_MAX_RESULTS: usize = 10;
const MAX_RESULTS: usize = 40;

/// What the fake Google Books knows and has seen.
#[derive(Default)]
pub struct GoogleBooks {
    /// Volumes by every ISBN they list.
    volumes: Mutex<HashMap<String, Value>>,
    /// Every volume, in the order added: what a keyword search ranks.
    all: Mutex<Vec<Value>>,
    /// The query parameters of every keyword search, in order.
    searches: Mutex<Vec<HashMap<String, String>>>,
    /// The `key` parameter of the last request, if any.
    last_key: Mutex<Option<String>>,
    behaviour: Behaviour,
}

impl Behaves for GoogleBooks {
    fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }
}

/// A running fake Google Books; stops on drop.
pub type FakeGoogleBooks = Running<GoogleBooks>;

impl FakeGoogleBooks {
    /// Knows the recorded volume (9780747532699, Harry Potter and the
    /// Philosopher's Stone).
    pub async fn start() -> anyhow::Result<Self> {
        let shared = GoogleBooks::default();
        let recorded: Value = serde_json::from_str(RECORDED)?;
        for volume in recorded["items"].as_array().cloned().unwrap_or_default() {
            add(&shared, volume);
        }
        Running::serve(shared, |shared| {
            Router::new()
                .route("/books/v1/volumes", get(volumes))
                .with_state(shared)
        })
        .await
    }

    /// Lookups asked for one ISBN-13.
    pub fn calls(&self, isbn13: &str) -> u64 {
        self.behaviour().calls(&format!("isbn:{isbn13}"))
    }

    /// The apikey (`key=`) the last request carried.
    pub fn last_key(&self) -> Option<String> {
        self.state().last_key.lock().ok().and_then(|k| k.clone())
    }

    /// Adds a volume (an element of `items`).
    pub fn add(&self, volume: Value) {
        add(self.state(), volume);
    }

    /// Requests with this `q` (a keyword search's query), failed or not.
    pub fn search_calls(&self, q: &str) -> u64 {
        self.behaviour().calls(q)
    }

    /// The query parameters of every keyword search asked, in order.
    pub fn searches(&self) -> Vec<HashMap<String, String>> {
        self.state()
            .searches
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

fn add(shared: &GoogleBooks, volume: Value) {
    if let Ok(mut all) = shared.all.lock() {
        all.push(volume.clone());
    }
    let Ok(mut volumes) = shared.volumes.lock() else {
        return;
    };
    let ids = volume["volumeInfo"]["industryIdentifiers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for id in ids.iter().filter_map(|i| i["identifier"].as_str()) {
        volumes.insert(id.to_owned(), volume.clone());
    }
}

async fn volumes(
    State(shared): State<Arc<GoogleBooks>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let q = query.get("q").cloned().unwrap_or_default();
    if let Ok(mut key) = shared.last_key.lock() {
        *key = query.get("key").cloned();
    }
    if let Some(failure) = shared.behaviour.enter(q.clone()).await {
        return failure;
    }
    if !q.starts_with("isbn:") {
        if let Ok(mut searches) = shared.searches.lock() {
            searches.push(query.clone());
        }
        return search(&shared, &q, &query);
    }
    let volume = q
        .strip_prefix("isbn:")
        .and_then(|isbn| shared.volumes.lock().ok()?.get(isbn).cloned());
    match volume {
        Some(volume) => Json(json!({"kind": "books#volumes", "totalItems": 1, "items": [volume]}))
            .into_response(),
        None => Json(json!({"kind": "books#volumes", "totalItems": 0})).into_response(),
    }
}

/// A keyword search: volumes with every word of `q` in their title or an
/// author's name.
fn search(shared: &GoogleBooks, q: &str, query: &HashMap<String, String>) -> Response {
    let number = |name: &str| query.get(name).and_then(|v| v.parse::<usize>().ok());
    let start = number("startIndex").unwrap_or(0);
    let max = number("maxResults").unwrap_or(DEFAULT_MAX_RESULTS);
    if max > MAX_RESULTS {
        let message = format!("Invalid value at 'max_results' (TYPE_INT32), {max}");
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})),
        )
            .into_response();
    }
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    let all = shared.all.lock().map(|a| a.clone()).unwrap_or_default();
    let hits: Vec<&Value> = all
        .iter()
        .filter(|volume| {
            let info = &volume["volumeInfo"];
            let title = info["title"].as_str().unwrap_or_default();
            let haystack = format!("{title} {}", info["authors"]).to_lowercase();
            !words.is_empty() && words.iter().all(|w| haystack.contains(w.as_str()))
        })
        .collect();
    let items: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(max)
        .map(|v| (*v).clone())
        .collect();
    let mut answer = json!({"kind": "books#volumes", "totalItems": hits.len()});
    if !items.is_empty() {
        answer["items"] = Value::Array(items);
    }
    Json(answer).into_response()
}
