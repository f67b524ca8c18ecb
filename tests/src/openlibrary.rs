//! A fake Open Library: `/api/books?bibkeys=ISBN:…&jscmd=data&format=json`
//! answered from the recorded `jscmd=data` response, keyed by the bibkey
//! asked for, `{}` for an unknown ISBN — as the real one does.

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

const RECORDED: &str =
    include_str!("../fixtures/openlibrary/openlibrary_api_books_jscmd_data.json");

#[derive(Default)]
struct Shared {
    /// Edition records by every ISBN they list.
    editions: Mutex<HashMap<String, Value>>,
    behaviour: Behaviour,
}

/// A running fake Open Library; stops on drop.
pub struct FakeOpenLibrary {
    url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FakeOpenLibrary {
    /// Knows the recorded editions (e.g. 9780439064873, Harry Potter and the
    /// Chamber of Secrets).
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let recorded: HashMap<String, Value> = serde_json::from_str(RECORDED)?;
        for edition in recorded.into_values() {
            add(&shared, edition);
        }
        let app = Router::new()
            .route("/api/books", get(books))
            .with_state(shared.clone());
        let (url, stop) = fake_upstream::serve(app).await?;
        Ok(Self { url, shared, stop })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lookups asked for one ISBN-13.
    pub fn calls(&self, isbn13: &str) -> u64 {
        self.shared.behaviour.calls(&format!("ISBN:{isbn13}"))
    }

    pub fn total_calls(&self) -> u64 {
        self.shared.behaviour.total_calls()
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.shared.behaviour
    }

    /// Adds an edition record in `jscmd=data` shape.
    pub fn add(&self, edition: Value) {
        add(&self.shared, edition);
    }
}

impl Drop for FakeOpenLibrary {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn add(shared: &Shared, edition: Value) {
    let Ok(mut editions) = shared.editions.lock() else {
        return;
    };
    for kind in ["isbn_10", "isbn_13"] {
        let isbns = edition["identifiers"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for isbn in isbns.iter().filter_map(Value::as_str) {
            editions.insert(isbn.to_owned(), edition.clone());
        }
    }
}

async fn books(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let bibkeys = query.get("bibkeys").cloned().unwrap_or_default();
    if let Some(failure) = shared.behaviour.enter(bibkeys.clone()).await {
        return failure;
    }
    let editions = shared
        .editions
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let mut found = serde_json::Map::new();
    for bibkey in bibkeys.split(',') {
        if let Some(edition) = bibkey.strip_prefix("ISBN:").and_then(|i| editions.get(i)) {
            found.insert(bibkey.to_owned(), edition.clone());
        }
    }
    if query.get("jscmd").map(String::as_str) != Some("data") {
        return Json(json!({"error": "this fake only speaks jscmd=data"})).into_response();
    }
    Json(Value::Object(found)).into_response()
}
