//! The `doumi.catalog.v1.BookCatalog` gRPC service: request validation, the
//! caller's deadline, and the one place catalog errors become gRPC status
//! codes.

use doumi_proto::catalog::v1::{
    BATCH_GET_BOOKS_BY_ISBN, BatchGetBooksByIsbnRequest, BatchGetBooksByIsbnResponse, BookError,
    BookResult, GET_BOOK, GET_BOOK_BY_ISBN, GetBookByIsbnRequest, GetBookByIsbnResponse,
    GetBookRequest, GetBookResponse, SEARCH_BOOKS, SearchBooksRequest, SearchBooksResponse,
    book_catalog_server::{self, BookCatalog},
    book_result,
};
use doumi_runtime::grpc::{self, Answering, Answers, Call};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use doumi_runtime::deadline::Deadline;

use crate::{
    api::errors::CatalogError,
    api::page_token::{MAX_OFFSET, MAX_PAGE_SIZE, PageToken},
    api::read_mask::ReadMask,
    cache::Books,
    isbn::Isbn13,
    key::DoubanId,
    providers::ProviderError,
};

/// Page size when the caller asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 10;
/// Keywords longer than this are not a search, they are an attack or a paste.
const MAX_QUERY_CHARS: usize = 100;
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
fn deadline_of<T>(request: &Request<T>) -> Result<Deadline, CatalogError> {
    let deadline = doumi_runtime::grpc::caller_deadline(request.metadata().as_ref());
    if deadline.has_passed() {
        return Err(CatalogError::provider(ProviderError::DeadlineExceeded, ""));
    }
    Ok(deadline)
}

/// Every method answers through [`CatalogError`], turned into a `Status`
/// (with its google.rpc details) only here, on the way out.
#[tonic::async_trait]
impl BookCatalog for CatalogService {
    async fn get_book_by_isbn(
        &self,
        request: Request<GetBookByIsbnRequest>,
    ) -> Result<Response<GetBookByIsbnResponse>, Status> {
        self.by_isbn(request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_book(
        &self,
        request: Request<GetBookRequest>,
    ) -> Result<Response<GetBookResponse>, Status> {
        self.by_id(request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn batch_get_books_by_isbn(
        &self,
        request: Request<BatchGetBooksByIsbnRequest>,
    ) -> Result<Response<BatchGetBooksByIsbnResponse>, Status> {
        self.batch(request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn search_books(
        &self,
        request: Request<SearchBooksRequest>,
    ) -> Result<Response<SearchBooksResponse>, Status> {
        self.search(request)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}

/// Every method answered directly (`doumi_runtime::grpc::answer`), through
/// the generated trait above.
impl Answers for CatalogService {
    const NAME: &'static str = book_catalog_server::SERVICE_NAME;

    fn answer(self: Arc<Self>, call: Call) -> Answering {
        Box::pin(async move {
            let path = call.uri().path();
            if path == GET_BOOK_BY_ISBN.path {
                grpc::answer(call, |request| self.get_book_by_isbn(request)).await
            } else if path == GET_BOOK.path {
                grpc::answer(call, |request| self.get_book(request)).await
            } else if path == SEARCH_BOOKS.path {
                grpc::answer(call, |request| self.search_books(request)).await
            } else if path == BATCH_GET_BOOKS_BY_ISBN.path {
                grpc::answer(call, |request| self.batch_get_books_by_isbn(request)).await
            } else {
                grpc::unimplemented()
            }
        })
    }
}

// === impl CatalogService ===

impl CatalogService {
    async fn by_isbn(
        &self,
        request: Request<GetBookByIsbnRequest>,
    ) -> Result<GetBookByIsbnResponse, CatalogError> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let book = self.isbn_lookup(&request.isbn, deadline).await?;
        Ok(GetBookByIsbnResponse {
            book: Some(mask.apply(book)),
        })
    }

    async fn by_id(
        &self,
        request: Request<GetBookRequest>,
    ) -> Result<GetBookResponse, CatalogError> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let id =
            DoubanId::parse(&request.id).map_err(|e| CatalogError::invalid("id", e.to_string()))?;
        let book = self.books.by_douban_id(&id, deadline).await.map_err(|e| {
            tracing::info!(%id, error = %e, "lookup failed");
            CatalogError::provider(e, format!("no book with Douban id {id}"))
        })?;
        Ok(GetBookResponse {
            book: Some(mask.apply(book)),
        })
    }

    /// Each ISBN is looked up on its own, all at once (each lookup is
    /// coalesced and rate-limited below us, so a duplicate costs no extra
    /// upstream call); results keep the request's order, duplicates included.
    async fn batch(
        &self,
        request: Request<BatchGetBooksByIsbnRequest>,
    ) -> Result<BatchGetBooksByIsbnResponse, CatalogError> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let isbns = request.isbns;
        if isbns.is_empty() {
            return Err(CatalogError::invalid("isbns", "isbns is empty"));
        }
        if isbns.len() > MAX_BATCH {
            return Err(CatalogError::BatchTooLarge {
                max: MAX_BATCH,
                got: isbns.len(),
            });
        }
        let results = futures::future::join_all(isbns.into_iter().map(|isbn| async move {
            let result = match self.isbn_lookup(&isbn, deadline).await {
                Ok(book) => book_result::Result::Book(mask.apply(book)),
                Err(error) => {
                    let status = error.to_rpc_status();
                    book_result::Result::Error(BookError {
                        code: status.code,
                        message: status.message.clone(),
                        status: Some(status),
                    })
                }
            };
            BookResult {
                isbn,
                result: Some(result),
            }
        }))
        .await;
        Ok(BatchGetBooksByIsbnResponse { results })
    }

    async fn search(
        &self,
        request: Request<SearchBooksRequest>,
    ) -> Result<SearchBooksResponse, CatalogError> {
        let deadline = deadline_of(&request)?;
        let request = request.into_inner();
        let mask = read_mask(request.read_mask.as_ref())?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(CatalogError::invalid("query", "query is empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(CatalogError::invalid(
                "query",
                format!("query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        let token = PageToken::parse(&request.page_token, query)?;
        let page_size = match request.page_size {
            n if n < 0 => return Err(CatalogError::invalid("page_size", "page_size is negative")),
            0 => token.map_or(DEFAULT_PAGE_SIZE, |t| t.page_size),
            n => (n as u32).min(MAX_PAGE_SIZE),
        };
        let start = token.map_or(0, |t| t.offset);
        let page = self
            .books
            .search(query, start, page_size, deadline)
            .await
            .map_err(|e| {
                tracing::info!(query, error = %e, "search failed");
                CatalogError::provider(e, "no matching books")
            })?;
        let end = start.saturating_add(u32::try_from(page.books.len()).unwrap_or(u32::MAX));
        let next_page_token = if !page.books.is_empty() && end < page.total && end < MAX_OFFSET {
            PageToken {
                offset: end,
                page_size,
            }
            .encode(query)
        } else {
            String::new()
        };
        Ok(SearchBooksResponse {
            books: page
                .books
                .iter()
                .map(|book| mask.apply(Arc::new(book.clone())))
                .collect(),
            next_page_token,
            total_size: i32::try_from(page.total).unwrap_or(i32::MAX),
        })
    }

    async fn isbn_lookup(
        &self,
        raw: &str,
        deadline: Deadline,
    ) -> Result<Arc<doumi_proto::catalog::v1::Book>, CatalogError> {
        let isbn = Isbn13::parse(raw)?;
        self.books.by_isbn(&isbn, deadline).await.map_err(|e| {
            tracing::info!(%isbn, error = %e, "lookup failed");
            CatalogError::provider(e, format!("no book with ISBN {isbn}"))
        })
    }
}

fn read_mask(mask: Option<&prost_types::FieldMask>) -> Result<ReadMask, CatalogError> {
    ReadMask::parse(mask).map_err(|e| CatalogError::invalid("read_mask", e.to_string()))
}
