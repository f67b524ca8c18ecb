//! The `doumi.catalog.v1.BookCatalog` gRPC service: request validation and the
//! one place catalog errors become gRPC status codes.

use doumi_proto::catalog::v1::{
    GetBookByIsbnRequest, GetBookByIsbnResponse, SearchBooksRequest, SearchBooksResponse,
    book_catalog_server::BookCatalog,
};
use tonic::{Request, Response, Status};

use crate::{books::Books, isbn::Isbn13, provider::ProviderError};

/// Page size when the caller asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 10;
/// Largest page we return, whatever the caller asks for.
const MAX_PAGE_SIZE: u32 = 50;
/// Keywords longer than this are not a search, they are an attack or a paste.
const MAX_QUERY_CHARS: usize = 100;
/// Deepest offset we page to (Douban itself stops being useful well before).
const MAX_OFFSET: u32 = 1000;

/// The gRPC face of [`Books`].
pub struct CatalogService {
    books: Books,
}

impl CatalogService {
    pub fn new(books: Books) -> Self {
        Self { books }
    }
}

#[tonic::async_trait]
impl BookCatalog for CatalogService {
    async fn get_book_by_isbn(
        &self,
        request: Request<GetBookByIsbnRequest>,
    ) -> Result<Response<GetBookByIsbnResponse>, Status> {
        let raw = request.into_inner().isbn;
        let isbn = Isbn13::parse(&raw).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let book = self.books.by_isbn(&isbn).await.map_err(|e| {
            tracing::info!(%isbn, error = %e, "lookup failed");
            to_status(e, &format!("no book with ISBN {isbn}"))
        })?;
        Ok(Response::new(GetBookByIsbnResponse { book: Some(book) }))
    }

    async fn search_books(
        &self,
        request: Request<SearchBooksRequest>,
    ) -> Result<Response<SearchBooksResponse>, Status> {
        let request = request.into_inner();
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
            .search(query, start, page_size)
            .await
            .map_err(|e| {
                tracing::info!(query, error = %e, "search failed");
                to_status(e, "no matching books")
            })?;
        let end = start + u32::try_from(page.books.len()).unwrap_or(u32::MAX);
        let next_page_token = if !page.books.is_empty() && end < page.total && end < MAX_OFFSET {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(SearchBooksResponse {
            books: page.books,
            next_page_token,
            total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
        }))
    }
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

/// The single mapping from provider outcomes to gRPC status codes.
fn to_status(error: ProviderError, not_found: &str) -> Status {
    match error {
        ProviderError::NotFound => Status::not_found(not_found),
        ProviderError::RateLimited(_) => {
            Status::resource_exhausted("the book provider is rate-limiting us, try again later")
        }
        ProviderError::Rejected(_) | ProviderError::Unavailable(_) => {
            Status::unavailable("the book provider is unavailable and nothing is cached")
        }
    }
}
