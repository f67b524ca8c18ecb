//! The `doumi.catalog.v1.BookCatalog` gRPC service: request validation, the
//! caller's deadline, and the one place catalog errors become gRPC status
//! codes.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, BatchGetBooksByIsbnResponse, BookError, BookResult,
    GetBookByIsbnRequest, GetBookByIsbnResponse, GetBookRequest, GetBookResponse,
    SearchBooksRequest, SearchBooksResponse, book_catalog_server::BookCatalog, book_result,
};
use sha1::{Digest, Sha1};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::{
    api::errors::CatalogError, api::read_mask::ReadMask, cache::Books, deadline::Deadline,
    isbn::Isbn13, key::DoubanId, providers::ProviderError, providers::SearchQuery,
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
fn deadline_of<T>(request: &Request<T>) -> Result<Deadline, CatalogError> {
    let deadline = doumi_runtime::grpc::caller_timeout(request.metadata())
        .map_or(Deadline::NONE, Deadline::after);
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

// === impl PageToken ===

/// Where the next search page starts, handed to the caller as an opaque
/// string: base64url of a version byte, the offset, the page size and a
/// truncated HMAC-SHA1 over those and the query.
///
/// The MAC key is a constant, not a secret: a token must stay valid on every
/// catalog replica and across restarts without any shared configuration, and
/// what the MAC protects against is a client building or editing tokens
/// (which would freeze the format) or replaying one on another query, not a
/// determined forger. Binding the query into the MAC is what rejects a token
/// from another search; the offset cap ([`MAX_OFFSET`]), checked after the
/// MAC, is what keeps even a forged token from paging deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageToken {
    offset: u32,
    page_size: u32,
}

const PAGE_TOKEN_VERSION: u8 = 1;
const PAGE_TOKEN_KEY: &[u8] = b"doumi.catalog.v1.SearchBooks.page_token";
/// 80 bits of MAC: plenty for a token that only has to resist guessing.
const PAGE_TOKEN_MAC_LEN: usize = 10;
/// version + offset (u32) + page size (u8) + MAC.
const PAGE_TOKEN_LEN: usize = 1 + 4 + 1 + PAGE_TOKEN_MAC_LEN;

impl PageToken {
    fn encode(self, query: &str) -> String {
        let mut bytes = Vec::with_capacity(PAGE_TOKEN_LEN);
        bytes.push(PAGE_TOKEN_VERSION);
        bytes.extend_from_slice(&self.offset.to_be_bytes());
        bytes.push(u8::try_from(self.page_size).unwrap_or(u8::MAX));
        let mac = page_token_mac(&bytes, query);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `None` for the first page; an error for anything this service did
    /// not issue for `query`.
    fn parse(token: &str, query: &str) -> Result<Option<Self>, CatalogError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| CatalogError::InvalidPageToken)?;
        let [version, o0, o1, o2, o3, size, ref mac @ ..] = bytes[..] else {
            return Err(CatalogError::InvalidPageToken);
        };
        if version != PAGE_TOKEN_VERSION
            || mac.len() != PAGE_TOKEN_MAC_LEN
            || page_token_mac(&bytes[..PAGE_TOKEN_LEN - PAGE_TOKEN_MAC_LEN], query) != mac
        {
            return Err(CatalogError::InvalidPageToken);
        }
        let offset = u32::from_be_bytes([o0, o1, o2, o3]);
        let page_size = u32::from(size);
        if offset > MAX_OFFSET || page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(CatalogError::InvalidPageToken);
        }
        Ok(Some(Self { offset, page_size }))
    }
}

/// The token's fields and the query, MAC'd and truncated. The query is
/// normalised as the search cache keys it, so a token stays valid for any
/// spelling of the same search ("Mistborn" and " mistborn ").
fn page_token_mac(fields: &[u8], query: &str) -> [u8; PAGE_TOKEN_MAC_LEN] {
    let key = SearchQuery::new(query, 0, 0);
    let full = hmac_sha1(PAGE_TOKEN_KEY, &[fields, key.query().as_bytes()]);
    let mut mac = [0; PAGE_TOKEN_MAC_LEN];
    mac.copy_from_slice(&full[..PAGE_TOKEN_MAC_LEN]);
    mac
}

/// HMAC-SHA1 (RFC 2104) over the concatenation of `parts`, for a key no
/// longer than SHA-1's 64-byte block (longer keys are not needed here).
fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut inner_pad = [0x36_u8; BLOCK];
    let mut outer_pad = [0x5c_u8; BLOCK];
    for (i, k) in key.iter().enumerate().take(BLOCK) {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let mut inner = Sha1::new().chain_update(inner_pad);
    for part in parts {
        inner.update(part);
    }
    let outer = Sha1::new()
        .chain_update(outer_pad)
        .chain_update(inner.finalize())
        .finalize();
    let mut out = [0; 20];
    out.copy_from_slice(&outer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(offset: u32, page_size: u32) -> PageToken {
        PageToken { offset, page_size }
    }

    #[test]
    fn a_page_token_round_trips_for_its_own_query() {
        let issued = token(20, 10).encode("浪潮之巅");
        assert_eq!(
            PageToken::parse(&issued, "浪潮之巅").ok().flatten(),
            Some(token(20, 10))
        );
        assert_eq!(PageToken::parse("", "浪潮之巅").ok().flatten(), None);
        let issued = token(5, 5).encode("mistborn");
        assert_eq!(
            PageToken::parse(&issued, "  MISTBORN ").ok().flatten(),
            Some(token(5, 5)),
            "the same search, spelled differently"
        );
    }

    #[test]
    fn forged_truncated_or_borrowed_tokens_are_refused() {
        let issued = token(20, 10).encode("吴军");
        let mut flipped = URL_SAFE_NO_PAD.decode(&issued).unwrap_or_default();
        flipped[4] ^= 0x01; // offset 20 -> 21
        let cases = [
            PageToken::parse(&issued, "浪潮之巅"), // another query
            PageToken::parse(&issued[..issued.len() - 2], "吴军"), // truncated
            PageToken::parse(&URL_SAFE_NO_PAD.encode(flipped), "吴军"),
            PageToken::parse("20", "吴军"), // the old plain-offset tokens
            PageToken::parse("not base64 !", "吴军"),
            PageToken::parse(&token(MAX_OFFSET + 1, 10).encode("吴军"), "吴军"),
            PageToken::parse(&token(0, MAX_PAGE_SIZE + 1).encode("吴军"), "吴军"),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            assert!(
                matches!(case, Err(CatalogError::InvalidPageToken)),
                "case {i}: {case:?}"
            );
        }
    }

    #[test]
    fn the_mac_is_hmac_sha1() {
        // RFC 2202, test case 2.
        let got: String = hmac_sha1(b"Jefe", &[b"what do ya ", b"want for nothing?"])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
