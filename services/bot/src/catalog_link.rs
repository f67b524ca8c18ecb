//! The bot's side of the gRPC hop to the catalog: one call per lookup or
//! search page, the deadline sent along and enforced here too, and the one
//! place a catalog status becomes what a reader hears.

use std::{future::Future, pin::Pin, time::Duration};

use doumi_proto::catalog::v1::{
    Book, GET_BOOK, GET_BOOK_BY_ISBN, GetBookByIsbnRequest, GetBookRequest, SEARCH_BOOKS,
    SearchBooksRequest, SearchBooksResponse,
};
use doumi_runtime::{grpc::Channel, throttle::LogThrottle};
use tonic::{Code, Status};

use crate::answer;

/// Why the catalog gave no book (or page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missed {
    /// It knows no such book (or the search found nothing).
    NotFound,
    /// It refused the request as malformed (an ISBN that is not one).
    Invalid,
    /// It failed or did not answer in time: the sentence the reader hears.
    Failed(String),
}

/// A lazily connected client for the catalog.
pub struct CatalogLink {
    channel: Channel,
    /// A catalog outage fails every message: its lines are summarised.
    failures: LogThrottle,
}

impl CatalogLink {
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            failures: LogThrottle::default(),
        }
    }

    /// The book with this ISBN, with the fields a reply shows.
    pub async fn book_by_isbn(&self, isbn: &str, deadline: Duration) -> Result<Book, Missed> {
        let request = GetBookByIsbnRequest {
            isbn: isbn.to_owned(),
            read_mask: Some(field_mask(answer::BOOK_FIELDS)),
        };
        let call = self.channel.unary(&GET_BOOK_BY_ISBN, &request, deadline);
        let answer = boxed(call).await.map_err(|s| self.missed(&s, true))?;
        answer.book.ok_or(Missed::NotFound)
    }

    /// A search result without an ISBN, by its Douban id.
    pub async fn book_by_id(&self, id: String, deadline: Duration) -> Result<Book, Missed> {
        let request = GetBookRequest {
            id,
            read_mask: Some(field_mask(answer::BOOK_FIELDS)),
        };
        let call = self.channel.unary(&GET_BOOK, &request, deadline);
        let answer = boxed(call).await.map_err(|s| self.missed(&s, false))?;
        answer.book.ok_or(Missed::NotFound)
    }

    /// One page of a keyword search, `page_size` books with the fields a
    /// result list shows; `token` from the page before (empty for the first).
    pub async fn search(
        &self,
        query: String,
        token: String,
        page_size: i32,
        deadline: Duration,
    ) -> Result<SearchBooksResponse, Missed> {
        let request = SearchBooksRequest {
            query,
            page_size,
            page_token: token,
            read_mask: Some(field_mask(answer::SEARCH_FIELDS)),
        };
        let call = self.channel.unary(&SEARCH_BOOKS, &request, deadline);
        // Everything a search sends came from the reader's words or the
        // catalog itself: a refusal is a failure here, never the reader's.
        boxed(call).await.map_err(|s| self.missed(&s, false))
    }

    /// A status as the reader hears it (`InvalidArgument` as [`Missed::Invalid`]
    /// only when the reader's own words were refused); a failure's cause goes
    /// to the log, a line per kind of failure per minute with the count held back.
    fn missed(&self, status: &Status, readers_words: bool) -> Missed {
        match status.code() {
            Code::NotFound => return Missed::NotFound,
            Code::InvalidArgument if readers_words => return Missed::Invalid,
            _ => {}
        }
        if let Some(held_back) = self.failures.admit(status.code().description()) {
            tracing::warn!(
                code = ?status.code(),
                message = status.message(),
                held_back,
                "catalog call failed"
            );
        }
        Missed::Failed(match status.code() {
            Code::ResourceExhausted => answer::busy(),
            _ => answer::apology(),
        })
    }
}

/// The call, boxed before the caller's first await, so the call's future
/// never becomes part of the lookup's state: every future around it, up to
/// the one the server boxes per call, would carry and copy it whole.
fn boxed<'a, T: 'a>(
    call: impl Future<Output = Result<T, Status>> + Send + 'a,
) -> Pin<Box<dyn Future<Output = Result<T, Status>> + Send + 'a>> {
    Box::pin(call)
}

fn field_mask(fields: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: fields.iter().map(|field| (*field).to_owned()).collect(),
    }
}
