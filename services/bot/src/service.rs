//! The `doumi.bot.v1.Bot` gRPC service: classify the message, ask the catalog
//! when a book is wanted, and always produce something to say.

use doumi_proto::{
    bot::v1::{ReplyRequest, ReplyResponse, bot_server::Bot},
    catalog::v1::{
        GetBookByIsbnRequest, SearchBooksRequest, book_catalog_client::BookCatalogClient,
    },
};
use std::time::Duration;

use doumi_runtime::{grpc::Channel, telemetry};
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, field::Empty};

use crate::{
    answer,
    intent::{self, Intent},
    rate_limit::ReaderLimiter,
    reply,
};

/// How many search results fit in one chat message.
const SEARCH_RESULTS: i32 = 5;

/// Time kept back from the caller's deadline to send our own answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(200);

/// The conversation, backed by the catalog.
pub struct BotService {
    catalog: BookCatalogClient<Channel>,
    /// Upper bound on a catalog call, whatever the caller allows.
    catalog_timeout: Duration,
    /// Each reader's pace; `None` = no limit.
    limiter: Option<ReaderLimiter>,
}

impl BotService {
    pub fn new(
        catalog: BookCatalogClient<Channel>,
        catalog_timeout: Duration,
        limiter: Option<ReaderLimiter>,
    ) -> Self {
        Self {
            catalog,
            catalog_timeout,
            limiter,
        }
    }

    /// True when `reader` may ask the catalog now.
    async fn within_pace(&self, reader: &str) -> bool {
        match &self.limiter {
            Some(limiter) => limiter.allow(reader).await,
            None => true,
        }
    }

    async fn lookup(&self, isbn: String, deadline: Duration) -> String {
        let request = GetBookByIsbnRequest {
            isbn: isbn.clone(),
            read_mask: Some(field_mask(answer::BOOK_FIELDS)),
        };
        let request = with_deadline(request, deadline);
        let mut catalog = self.catalog.clone();
        match within(deadline, catalog.get_book_by_isbn(request)).await {
            Ok(response) => match response.into_inner().book {
                Some(book) => answer::book(&book),
                None => answer::isbn_not_found(&isbn),
            },
            Err(status) => match status.code() {
                Code::NotFound => answer::isbn_not_found(&isbn),
                Code::InvalidArgument => answer::invalid_isbn(&isbn),
                _ => failure(&status),
            },
        }
    }

    async fn search(&self, query: String, deadline: Duration) -> String {
        let request = SearchBooksRequest {
            query: query.clone(),
            page_size: SEARCH_RESULTS,
            page_token: String::new(),
            read_mask: Some(field_mask(answer::SEARCH_FIELDS)),
        };
        let request = with_deadline(request, deadline);
        let mut catalog = self.catalog.clone();
        match within(deadline, catalog.search_books(request)).await {
            Ok(response) => {
                let page = response.into_inner();
                if page.books.is_empty() {
                    answer::search_not_found(&query)
                } else {
                    answer::search_results(&query, &page.books, page.total_size)
                }
            }
            Err(status) if status.code() == Code::NotFound => answer::search_not_found(&query),
            Err(status) => failure(&status),
        }
    }
}

/// The deadline travels with the request (`grpc-timeout`) for the catalog
/// to plan with.
fn with_deadline<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Enforces the deadline here too: the header only binds a catalog that
/// answers, not a connection still resolving a name or being set up.
async fn within<T>(
    deadline: Duration,
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "the catalog did not answer in time",
            ))
        })
}

fn field_mask(fields: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: fields.iter().map(|field| (*field).to_owned()).collect(),
    }
}

/// A catalog failure as the reader hears it; the cause goes to the log.
fn failure(status: &Status) -> String {
    tracing::warn!(code = ?status.code(), message = status.message(), "catalog call failed");
    match status.code() {
        Code::ResourceExhausted => answer::busy(),
        _ => answer::apology(),
    }
}

#[tonic::async_trait]
impl Bot for BotService {
    async fn reply(
        &self,
        request: Request<ReplyRequest>,
    ) -> Result<Response<ReplyResponse>, Status> {
        // The catalog gets what is left of the caller's deadline, less the
        // time needed to send our answer back, so an apology still arrives in time.
        let deadline = doumi_runtime::grpc::caller_timeout(request.metadata()).map_or(
            self.catalog_timeout,
            |caller| {
                caller
                    .saturating_sub(ANSWER_MARGIN)
                    .min(self.catalog_timeout)
            },
        );
        let message = request
            .into_inner()
            .message
            .ok_or_else(|| Status::invalid_argument("message is missing"))?;
        let span = tracing::info_span!(
            "reply",
            reader = %telemetry::pseudonym(&message.from_user),
            intent = Empty,
        );
        let intent = span.in_scope(|| intent::classify(&message));
        span.record("intent", intent.label());
        metrics::counter!(crate::metrics::INTENTS, "intent" => intent.label()).increment(1);
        let reply = async {
            match intent {
                Intent::Welcome => reply::text(answer::welcome()),
                Intent::Help => reply::text(answer::help()),
                Intent::Unsupported => reply::text(answer::unsupported()),
                Intent::LookupIsbn(_) | Intent::Search(_)
                    if !self.within_pace(&message.from_user).await =>
                {
                    reply::text(answer::too_fast())
                }
                Intent::LookupIsbn(isbn) => reply::text(self.lookup(isbn, deadline).await),
                Intent::Search(query) => reply::text(self.search(query, deadline).await),
                Intent::Ignore => reply::none(),
            }
        }
        .instrument(span)
        .await;
        Ok(Response::new(ReplyResponse { reply: Some(reply) }))
    }
}
