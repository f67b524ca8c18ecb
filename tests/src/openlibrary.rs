//! A fake Open Library: `/api/books?bibkeys=ISBN:…&jscmd=data&format=json`
//! answered from the recorded `jscmd=data` response, keyed by the bibkey
//! asked for, `{}` for an unknown ISBN — as the real one does; and
//! `/search.json?q=…` answered from the recorded works of a Mistborn search
//! (all of them for `q=mistborn`, otherwise those with every word in the
//! title or an author's name), in the documented shape (`numFound`, `start`,
//! `docs`), paged by `offset` (or `page`) and `limit`, trimmed to `fields=`
//! when asked.

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

use crate::fake_upstream::{Behaves, Behaviour, Running};

const RECORDED: &str =
    include_str!("../fixtures/openlibrary/openlibrary_api_books_jscmd_data.json");

/// The 15 works of the recorded `GET /search.json?q=mistborn` answer, in its
/// order, with the fields the catalog asks for (lists cut to four entries).
const RECORDED_SEARCH_DOCS: &str = r#"[
{"key": "/works/OL17427759W", "title": "Mistborn Trilogy", "author_name": ["Brandon Sanderson"], "publisher": ["Doherty Associates, LLC, Tom", "Gollancz", "Tor Books", "imusti"], "first_publish_year": 2001, "publish_date": ["Sep 01, 2015", "Oct 01, 2001", "Mar 31, 2020", "2009"], "isbn": ["147321369X", "9781473213692", "9780765381521", "1429989815"], "cover_i": 7557846, "number_of_pages_median": 1712},
{"key": "/works/OL24289089W", "title": "Mistborn Adventure Game", "author_name": ["Brandon Sanderson", "Alex Flagg", "Patrick Kapera", "Crafty Games"], "publisher": ["Crafty Games"], "first_publish_year": 2012, "publish_date": ["Jul 01, 2012"], "isbn": ["0982684398", "9780982684399"], "cover_i": 10791869, "number_of_pages_median": 584},
{"key": "/works/OL19913857W", "title": "Mistborn: Secret History", "author_name": ["Brandon Sanderson"], "publisher": ["gollancz uk"], "first_publish_year": 2019, "publish_date": ["Jul 09, 2019"], "isbn": ["1473225043", "9781473225046"], "cover_i": 8737946},
{"key": "/works/OL5738148W", "title": "The Final Empire (Mistborn, Book 1)", "author_name": ["Brandon Sanderson"], "publisher": ["Qi huan ji di chu ban", "Tor", "Doherty Associates, LLC, Tom", "Dragonsteel Entertainment, LLC"], "first_publish_year": 2001, "publish_date": ["July 25, 2006", "Aug 24, 2001", "July 31, 2007", "Mar 17, 2010"], "isbn": ["0575089911", "9781250318541", "9781473216815", "9780765360960"], "cover_i": 524535, "number_of_pages_median": 671},
{"key": "/works/OL17349393W", "title": "Shadows of Self (Mistborn, Book 5)", "author_name": ["Brandon Sanderson", "Michael Kramer"], "publisher": ["Doherty Associates, LLC, Tom", "Nova", "Tor Books", "Macmillan Audio"], "first_publish_year": 2015, "publish_date": ["Oct 06, 2016", "Oct 06, 2015", "Oct 01, 2021", "2016"], "isbn": ["9780765378569", "0765378566", "9788466658850", "9781427262233"], "cover_i": 7427757, "number_of_pages_median": 448},
{"key": "/works/OL16597059W", "title": "The Alloy of Law (Mistborn, Book 4)", "author_name": ["Brandon Sanderson"], "publisher": ["Doherty Associates, LLC, Tom", "Gollancz", "Tor Books", "Brandon Sanderson"], "first_publish_year": 2001, "publish_date": ["Jan 05, 2016", "Jul 09, 2001", "Sep 06, 2011", "2017"], "isbn": ["0765394790", "9780765394798", "0575105836", "0765368544"], "cover_i": 7136479, "number_of_pages_median": 352},
{"key": "/works/OL17349394W", "title": "The Bands of Mourning (Mistborn, Book 6)", "author_name": ["Brandon Sanderson"], "publisher": ["Tor", "Doherty Associates, LLC, Tom", "Ediciones B", "Tor Books"], "first_publish_year": 2001, "publish_date": ["Jul 09, 2001", "2013", "Jan 05, 2017", "Jan 26, 2016"], "isbn": ["0765378574", "1473208270", "9781473208254", "1427267898"], "cover_i": 7427758, "number_of_pages_median": 491},
{"key": "/works/OL25366824W", "title": "Aleación de Ley (Nacidos de la Bruma [Mistborn] 4)", "author_name": ["Brandon Sanderson"], "publisher": ["Ediciones B"], "first_publish_year": 2012, "publish_date": ["2012"], "isbn": ["9788466651752", "8466651756"], "number_of_pages_median": 368},
{"key": "/works/OL25870671W", "title": "Brandon Sanderson's Fantasy Firsts : (the Way of Kings, Mistborn: the Final Empire, Rithmatist, Alcatraz vs. the Evil Librarians)", "author_name": ["Brandon Sanderson"], "publisher": ["Doherty Associates, LLC, Tom"], "first_publish_year": 2017, "publish_date": ["2017"], "isbn": ["9780765399557", "0765399555"]},
{"key": "/works/OL5738150W", "title": "The Well of Ascension", "author_name": ["Brandon Sanderson", "Michael Kramer"], "publisher": ["Audiogo", "Dragonsteel Entertainment, LLC", "Doherty Associates, LLC, Tom", "Fanucci"], "first_publish_year": 2000, "publish_date": ["Jul 09, 2017", "Oct 13, 2010", "Mar 24, 2017", "Jun 17, 2000"], "isbn": ["0792772598", "9788413143736", "9781628510959", "9780792772590"], "cover_i": 5081235, "number_of_pages_median": 784},
{"key": "/works/OL5738154W", "title": "The Hero of Ages", "author_name": ["Brandon Sanderson"], "publisher": ["Orion Publishing Group, Limited", "Sound Library", "Tor", "Doherty Associates, LLC, Tom"], "first_publish_year": 2008, "publish_date": ["2019", "Sep 29, 2015", "Jan 31, 2017", "Oct 07, 2014"], "isbn": ["9781250318626", "8413143748", "9780765356147", "9780765377159"], "cover_i": 5698797, "number_of_pages_median": 764},
{"key": "/works/OL17770504W", "title": "Arcanum Unbounded", "subtitle": "The Cosmere Collection", "author_name": ["Brandon Sanderson", "Michael Kramer", "Kate Reading"], "publisher": ["GOLLANCZ", "Macmillan Audio", "Tor Fantasy", "Doherty Associates, LLC, Tom"], "first_publish_year": 2016, "publish_date": ["2016", "Nov 22, 2016", "Nov 24, 2016", "2019"], "isbn": ["9781473218031", "9781473225930", "1473218039", "0765391163"], "cover_i": 8452946, "number_of_pages_median": 672},
{"key": "/works/OL26349150W", "title": "Shadows of Self", "author_name": ["Brandon Sanderson"], "publisher": ["Orion Publishing Group, Limited"], "first_publish_year": 2022, "publish_date": ["2022"], "isbn": ["9781473233355", "1473233356"]},
{"key": "/works/OL26349161W", "title": "Alloy of Law", "author_name": ["Brandon Sanderson"], "publisher": ["Orion Publishing Group, Limited"], "first_publish_year": 2022, "publish_date": ["2022"], "isbn": ["9781473233348", "1473233348"]},
{"key": "/works/OL26349157W", "title": "Bands of Mourning", "author_name": ["Brandon Sanderson"], "publisher": ["Orion Publishing Group, Limited"], "first_publish_year": 2022, "publish_date": ["2022"], "isbn": ["1473233364", "9781473233362"]}
]"#;

/// The query the works were recorded for: it finds all 15 (Open Library
/// matched some by series and subject, which the works here no longer carry).
const RECORDED_QUERY: &str = "mistborn";

/// `limit` when a search does not say (Open Library's default).
const DEFAULT_LIMIT: usize = 100;

/// The path search requests are counted under.
const SEARCH: &str = "/search.json";

/// What the fake Open Library knows and has seen.
#[derive(Default)]
pub struct OpenLibrary {
    /// Edition records by every ISBN they list.
    editions: Mutex<HashMap<String, Value>>,
    /// Works `/search.json` knows, in the order it ranks them.
    works: Mutex<Vec<Value>>,
    /// The query parameters of every search, in order.
    searches: Mutex<Vec<HashMap<String, String>>>,
    behaviour: Behaviour,
}

impl Behaves for OpenLibrary {
    fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }
}

/// A running fake Open Library; stops on drop.
pub type FakeOpenLibrary = Running<OpenLibrary>;

impl FakeOpenLibrary {
    /// Knows the recorded editions (e.g. 9780439064873, Harry Potter and the
    /// Chamber of Secrets) and, for searches, the 15 recorded Mistborn works.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = OpenLibrary::default();
        let recorded: HashMap<String, Value> = serde_json::from_str(RECORDED)?;
        for edition in recorded.into_values() {
            add(&shared, edition);
        }
        let works: Vec<Value> = serde_json::from_str(RECORDED_SEARCH_DOCS)?;
        if let Ok(mut known) = shared.works.lock() {
            *known = works;
        }
        Running::serve(shared, |shared| {
            Router::new()
                .route("/api/books", get(books))
                .route(SEARCH, get(search))
                .with_state(shared)
        })
        .await
    }

    /// Lookups asked for one ISBN-13.
    pub fn calls(&self, isbn13: &str) -> u64 {
        self.behaviour().calls(&format!("ISBN:{isbn13}"))
    }

    /// Adds an edition record in `jscmd=data` shape.
    pub fn add(&self, edition: Value) {
        add(self.state(), edition);
    }

    /// Searches asked (`/search.json`), failed or not.
    pub fn search_calls(&self) -> u64 {
        self.behaviour().calls(SEARCH)
    }

    /// The query parameters of every search asked, in order.
    pub fn searches(&self) -> Vec<HashMap<String, String>> {
        self.state()
            .searches
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

fn add(shared: &OpenLibrary, edition: Value) {
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
    State(shared): State<Arc<OpenLibrary>>,
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

/// Whether every word of `q` is in the work's title or an author's name, as
/// Open Library's own search would find it for a plain title or author.
fn matches(work: &Value, words: &[String]) -> bool {
    let title = work["title"].as_str().unwrap_or_default();
    let authors = work["author_name"].to_string();
    let haystack = format!("{title} {authors}").to_lowercase();
    words.iter().all(|w| haystack.contains(w.as_str()))
}

/// A work trimmed to the comma-separated `fields` (all of it for `*` or none).
fn only_fields(work: &Value, fields: Option<&str>) -> Value {
    let (Some(fields), Some(all)) = (fields.filter(|f| *f != "*"), work.as_object()) else {
        return work.clone();
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    Value::Object(
        all.iter()
            .filter(|(name, _)| wanted.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    )
}

async fn search(
    State(shared): State<Arc<OpenLibrary>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Ok(mut searches) = shared.searches.lock() {
        searches.push(query.clone());
    }
    if let Some(failure) = shared.behaviour.enter(SEARCH.to_owned()).await {
        return failure;
    }
    let number = |name: &str| query.get(name).and_then(|v| v.parse::<usize>().ok());
    let limit = number("limit").unwrap_or(DEFAULT_LIMIT);
    // `offset` wins over `page` (1-based), as on the real server.
    let offset = number("offset").unwrap_or_else(|| {
        number("page")
            .unwrap_or(1)
            .saturating_sub(1)
            .saturating_mul(limit)
    });
    let words: Vec<String> = query
        .get("q")
        .map(|q| q.split_whitespace().map(str::to_lowercase).collect())
        .unwrap_or_default();
    let works = shared.works.lock().map(|w| w.clone()).unwrap_or_default();
    let recorded = words.join(" ") == RECORDED_QUERY;
    let hits: Vec<&Value> = works
        .iter()
        .filter(|w| recorded || (!words.is_empty() && matches(w, &words)))
        .collect();
    let fields = query.get("fields").map(String::as_str);
    let docs: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|w| only_fields(w, fields))
        .collect();
    Json(json!({
        "numFound": hits.len(),
        "start": offset,
        "numFoundExact": true,
        "docs": docs,
        "num_found": hits.len(),
        "q": query.get("q").cloned().unwrap_or_default(),
        "offset": query.get("offset").and(Some(offset)),
    }))
    .into_response()
}
