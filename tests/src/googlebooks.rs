//! A fake Google Books: `/books/v1/volumes?q=isbn:…` answered from the
//! recorded volume, `{"totalItems": 0}` (no `items`) for an unknown ISBN.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fake_upstream::{self, Behaviour};

const RECORDED: &str = include_str!("../fixtures/googlebooks/googlebooks_q_isbn_0747532699.json");

#[derive(Default)]
struct Shared {
    /// Volumes by every ISBN they list.
    volumes: Mutex<HashMap<String, Value>>,
    /// The `key` parameter of the last request, if any.
    last_key: Mutex<Option<String>>,
    behaviour: Behaviour,
}

/// A running fake Google Books; stops on drop.
pub struct FakeGoogleBooks {
    url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FakeGoogleBooks {
    /// Knows the recorded volume (9780747532699, Harry Potter and the
    /// Philosopher's Stone).
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let recorded: Value = serde_json::from_str(RECORDED)?;
        for volume in recorded["items"].as_array().cloned().unwrap_or_default() {
            add(&shared, volume);
        }
        let app = Router::new()
            .route("/books/v1/volumes", get(volumes))
            .with_state(shared.clone());
        let (url, stop) = fake_upstream::serve(app).await?;
        Ok(Self { url, shared, stop })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lookups asked for one ISBN-13.
    pub fn calls(&self, isbn13: &str) -> u64 {
        self.shared.behaviour.calls(&format!("isbn:{isbn13}"))
    }

    pub fn total_calls(&self) -> u64 {
        self.shared.behaviour.total_calls()
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.shared.behaviour
    }

    /// The apikey (`key=`) the last request carried.
    pub fn last_key(&self) -> Option<String> {
        self.shared.last_key.lock().ok().and_then(|k| k.clone())
    }

    /// Adds a volume (an element of `items`).
    pub fn add(&self, volume: Value) {
        add(&self.shared, volume);
    }
}

impl Drop for FakeGoogleBooks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn add(shared: &Shared, volume: Value) {
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
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let q = query.get("q").cloned().unwrap_or_default();
    if let Ok(mut key) = shared.last_key.lock() {
        *key = query.get("key").cloned();
    }
    if let Some(failure) = shared.behaviour.enter(q.clone()).await {
        return failure;
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
