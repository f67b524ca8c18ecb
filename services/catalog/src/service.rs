//! The `doumi.catalog.v1.BookCatalog` gRPC service: request validation, the
//! caller's deadline, and the one place catalog errors become gRPC status
//! codes.

use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, BatchGetBooksByIsbnResponse, BookError, BookResult,
    GetBookByIsbnRequest, GetBookByIsbnResponse, GetBookRequest, GetBookResponse,
    SearchBooksRequest, SearchBooksResponse, book_catalog_server::BookCatalog, book_result,
};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::{
    books::Books, deadline::Deadline, isbn::Isbn13, key::DoubanId, provider::ProviderError,
    read_mask::ReadMask,
};

/// Page size when the caller asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 10;
/// Largest page we return, whatever the caller asks for.
const MAX_PAGE_SIZE: u32 = 50;
/// Keywords longer than this are not a search, they are an attack or a paste.
const MAX_QUERY_CHARS: usize = 100;
/// Deepest offset we page to (Douban itself stops being useful well before).
const MAX_OFFSET: u32 = 1000;
/// Most ISBNs one batch may ask for.
pub const MAX_BATCH: usize = 50;

/// The gRPC face of [`Books`].
pub struct CatalogService {
    books: Books,
}

impl CatalogService {
    pub fn new(books: Books) -> Self {
        Self { books }
    }
}

/// The deadline the caller set with `grpc-timeout`, counted from arrival.
/// A caller already out of time gets DEADLINE_EXCEEDED before any work.
fn deadline_of<T>(request: &Request<T>) -> Result<Deadline, Status> {
    let deadline = doumi_runtime::grpc::caller_timeout(request.metadata())
        .map_or(Deadline::NONE, Deadline::after);
    if deadline.has_passed() {
        return Err(to_status(ProviderError::DeadlineExceeded, ""));
    }
    Ok(deadline)
}

#[tonic::async_trait]
impl BookCatalog for CatalogService {
    async fn get_book_by_isbn(
        &self,
        request: Request<GetBookByIsbnRequest>,
    ) -> Result<Response<GetBookByIsbnResponse>, Status> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let book = self.isbn_lookup(&request.isbn, deadline).await?;
        Ok(Response::new(GetBookByIsbnResponse {
            book: Some(mask.apply(book)),
        }))
    }

    async fn get_book(
        &self,
        request: Request<GetBookRequest>,
    ) -> Result<Response<GetBookResponse>, Status> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let id =
            DoubanId::parse(&request.id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let book = self.books.by_douban_id(&id, deadline).await.map_err(|e| {
            tracing::info!(%id, error = %e, "lookup failed");
            to_status(e, &format!("no book with Douban id {id}"))
        })?;
        Ok(Response::new(GetBookResponse {
            book: Some(mask.apply(book)),
        }))
    }

    async fn batch_get_books_by_isbn(
        &self,
        request: Request<BatchGetBooksByIsbnRequest>,
    ) -> Result<Response<BatchGetBooksByIsbnResponse>, Status> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let isbns = request.isbns;
        if isbns.is_empty() {
            return Err(Status::invalid_argument("isbns is empty"));
        }
        if isbns.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_BATCH} ISBNs per batch, got {}",
                isbns.len()
            )));
        }
        // All at once: each lookup is coalesced and rate-limited below us.
        let results = futures::future::join_all(isbns.into_iter().map(|isbn| async move {
            let result = match self.isbn_lookup(&isbn, deadline).await {
                Ok(book) => book_result::Result::Book(mask.apply(book)),
                Err(status) => book_result::Result::Error(BookError {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                }),
            };
            BookResult {
                isbn,
                result: Some(result),
            }
        }))
        .await;
        Ok(Response::new(BatchGetBooksByIsbnResponse { results }))
    }

    async fn search_books(
        &self,
        request: Request<SearchBooksRequest>,
    ) -> Result<Response<SearchBooksResponse>, Status> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Status::invalid_argument("query is empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Status::invalid_argument(format!(
                "query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let page_size = match request.page_size {
            n if n < 0 => return Err(Status::invalid_argument("page_size is negative")),
            0 => DEFAULT_PAGE_SIZE,
            n => (n as u32).min(MAX_PAGE_SIZE),
        };
        let start = parse_page_token(&request.page_token)?;
        let page = self
            .books
            .search(query, start, page_size, deadline)
            .await
            .map_err(|e| {
                tracing::info!(query, error = %e, "search failed");
                to_status(e, "no matching books")
            })?;
        let end = start.saturating_add(u32::try_from(page.books.len()).unwrap_or(u32::MAX));
        let next_page_token = if !page.books.is_empty() && end < page.total && end < MAX_OFFSET {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(SearchBooksResponse {
            books: page
                .books
                .iter()
                .map(|book| mask.apply(Arc::new(book.clone())))
                .collect(),
            next_page_token,
            total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
        }))
    }
}

impl CatalogService {
    async fn isbn_lookup(
        &self,
        raw: &str,
        deadline: Deadline,
    ) -> Result<Arc<doumi_proto::catalog::v1::Book>, Status> {
        let isbn = Isbn13::parse(raw).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.books.by_isbn(&isbn, deadline).await.map_err(|e| {
            tracing::info!(%isbn, error = %e, "lookup failed");
            to_status(e, &format!("no book with ISBN {isbn}"))
        })
    }
}

fn read_mask(mask: Option<&prost_types::FieldMask>) -> Result<ReadMask, Status> {
    ReadMask::parse(mask).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Page tokens are opaque to callers; inside they are the offset of the page.
fn parse_page_token(token: &str) -> Result<u32, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .parse::<u32>()
        .ok()
        .filter(|offset| *offset <= MAX_OFFSET)
        .ok_or_else(|| Status::invalid_argument("page_token is not one this service issued"))
}

/// The single mapping from provider outcomes to gRPC status codes. The cause
/// goes to the log; the caller gets a short message it can act on.
fn to_status(error: ProviderError, not_found: &str) -> Status {
    match error {
        ProviderError::NotFound => Status::not_found(not_found),
        ProviderError::RateLimited(_) => {
            Status::resource_exhausted("the book provider is rate-limiting us, try again later")
        }
        ProviderError::Rejected(_)
        | ProviderError::Unavailable(_)
        | ProviderError::CircuitOpen(_) => {
            Status::unavailable("the book provider is unavailable and nothing is cached")
        }
        ProviderError::DeadlineExceeded => {
            Status::deadline_exceeded("the caller's deadline passed before an answer")
        }
        ProviderError::Unsupported => {
            Status::unimplemented("no configured book provider answers this kind of request")
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn every_provider_error_has_its_status_code() {
        let cases = [
            (ProviderError::NotFound, Code::NotFound),
            (
                ProviderError::RateLimited("112".into()),
                Code::ResourceExhausted,
            ),
            (ProviderError::Rejected("105".into()), Code::Unavailable),
            (ProviderError::Unavailable("500".into()), Code::Unavailable),
            (ProviderError::CircuitOpen("douban"), Code::Unavailable),
            (ProviderError::DeadlineExceeded, Code::DeadlineExceeded),
            (ProviderError::Unsupported, Code::Unimplemented),
        ];
        for (error, code) in cases {
            assert_eq!(to_status(error.clone(), "x").code(), code, "{error:?}");
        }
    }

    #[test]
    fn causes_stay_in_the_log_not_in_the_reply() {
        let status = to_status(
            ProviderError::Rejected("apikey_is_blocked: 0df9".into()),
            "",
        );
        assert!(!status.message().contains("0df9"));
    }
}
