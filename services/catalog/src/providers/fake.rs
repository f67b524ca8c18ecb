//! The one stand-in provider of the catalog's unit tests: it answers ISBN
//! lookups from a script (then from the books it knows), searches with a
//! fixed page, can be switched off or held until released, and counts every
//! call, so a test says what the chain, the upstream guard or the cache did
//! by what the provider saw.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
};

use doumi_proto::catalog::v1::Book;
use tokio::sync::Semaphore;

use crate::{
    isbn::Isbn13,
    providers::provider::{Ask, BookProvider, ProviderError, SearchPage, SearchQuery},
};

/// How ISBN lookups are answered once the script has run out.
enum Then {
    /// Every ISBN is found: a book titled with the provider's name.
    FindEvery,
    /// These books are found, any other ISBN is not.
    Know(Vec<Book>),
    /// Every lookup fails so.
    Fail(ProviderError),
}

pub(crate) struct FakeProvider {
    name: &'static str,
    /// Answers to the next ISBN lookups, in order; then `then` decides.
    script: Mutex<VecDeque<Result<Book, ProviderError>>>,
    then: Then,
    /// `Some`: searches instead of looking ISBNs up (`Err`: it is down).
    search: Option<Result<Vec<String>, ProviderError>>,
    down: AtomicBool,
    gate: Semaphore,
    calls: AtomicU32,
}

impl FakeProvider {
    /// Finds every ISBN, a book titled `name`.
    pub fn named(name: &'static str) -> Self {
        Self {
            name,
            script: Mutex::default(),
            then: Then::FindEvery,
            search: None,
            down: AtomicBool::new(false),
            gate: Semaphore::new(Semaphore::MAX_PERMITS),
            calls: AtomicU32::new(0),
        }
    }

    /// Every ISBN lookup answered with `answer` (`Ok`: a book titled `name`).
    pub fn answering(self, answer: Result<(), ProviderError>) -> Self {
        let then = match answer {
            Ok(()) => Then::FindEvery,
            Err(error) => Then::Fail(error),
        };
        Self { then, ..self }
    }

    /// The next lookups answered in this order, then as before.
    pub fn scripted(self, script: Vec<Result<Book, ProviderError>>) -> Self {
        Self {
            script: Mutex::new(script.into()),
            ..self
        }
    }

    /// Finds these books only.
    pub fn knowing(self, books: Vec<Book>) -> Self {
        Self {
            then: Then::Know(books),
            ..self
        }
    }

    /// Searches (and only searches): a page of these titles, or `Err` when down.
    pub fn searching(self, titles: Result<&[&str], ProviderError>) -> Self {
        Self {
            search: Some(titles.map(|t| t.iter().map(|t| (*t).to_owned()).collect())),
            ..self
        }
    }

    /// Holds every answer until [`release`](Self::release)d, so callers pile up.
    pub fn held(self) -> Self {
        Self {
            gate: Semaphore::new(0),
            ..self
        }
    }

    /// Lets every held and later answer through.
    pub fn release(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Switches the provider off (`Unavailable`) or on again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Calls made to it, of any kind.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tonic::async_trait]
impl BookProvider for FakeProvider {
    fn name(&self) -> &'static str {
        self.name
    }

    fn can(&self, ask: Ask) -> bool {
        match self.search {
            Some(_) => ask == Ask::Search,
            None => ask == Ask::Isbn,
        }
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _pass = self.gate.acquire().await;
        if self.down.load(Ordering::SeqCst) {
            return Err(ProviderError::Unavailable("down".to_owned()));
        }
        let scripted = self
            .script
            .lock()
            .map(|mut s| s.pop_front())
            .unwrap_or_default();
        if let Some(answer) = scripted {
            return answer;
        }
        match &self.then {
            Then::FindEvery => Ok(Book {
                title: self.name.to_owned(),
                ..Book::default()
            }),
            Then::Know(books) => books
                .iter()
                .find(|b| b.isbn13 == isbn.as_str())
                .cloned()
                .ok_or(ProviderError::NotFound),
            Then::Fail(error) => Err(error.clone()),
        }
    }

    async fn search(&self, _search: &SearchQuery) -> Result<SearchPage, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let titles = self
            .search
            .clone()
            .unwrap_or(Err(ProviderError::Unsupported))?;
        Ok(SearchPage {
            total: u32::try_from(titles.len()).unwrap_or(u32::MAX),
            books: titles
                .into_iter()
                .map(|title| Book {
                    title,
                    ..Book::default()
                })
                .collect(),
        })
    }
}
