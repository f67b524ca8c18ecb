//! What another team's Rust service writes to call `doumi.catalog.v1.BookCatalog` with tonic:
//! connect with a timeout, give every call a deadline, ask only for the fields it shows, tell the
//! errors apart by status code and `google.rpc.ErrorInfo` reason, retry once after the catalog's
//! `google.rpc.RetryInfo` delay, and page through a search.
//!
//! ```text
//! cargo run -p doumi-tests --example catalog_client -- http://127.0.0.1:50052 9787121139512 [QUERY]
//! ```
//!
//! In a cluster the address is `http://doumi-catalog.doumi.svc:50052` (plaintext HTTP/2), from a
//! namespace labelled `doumi.io/catalog-client=true`. Outside this workspace, generate the client
//! from `proto/doumi/catalog/v1/catalog.proto` with tonic-prost-build and depend on tonic,
//! tonic-types (the error details) and prost-types (`FieldMask`); the code below stays the same.
#![forbid(unsafe_code)]

use std::{future::Future, time::Duration};

use anyhow::{Context, bail};
use doumi_proto::catalog::v1::{
    Book, GetBookByIsbnRequest, SearchBooksRequest, book_catalog_client::BookCatalogClient,
};
use prost_types::FieldMask;
use tonic::{Code, Request, Status, transport::Endpoint};
use tonic_types::StatusExt;

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Every call's deadline, sent to the catalog as `grpc-timeout`: it plans its upstream calls and
/// their retries within it; much below 50 ms, only a cached book can still be answered in time.
const CALL_DEADLINE: Duration = Duration::from_secs(2);
/// The longest RetryInfo delay this client sleeps before its one retry: a rate limit asks for
/// 60 s (Douban counts per minute), an outage for 5 s. A caller serving a person would rather
/// fail at once and set this lower.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// The Book fields this client shows (the read mask); the rest (summary, tags, table of contents)
/// is neither encoded, sent nor decoded.
const FIELDS: &[&str] = &["isbn13", "title", "authors", "publisher", "rating"];
const PAGE_SIZE: i32 = 5;
const MAX_PAGES: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(isbn)) = (args.next(), args.next()) else {
        bail!(
            "usage: catalog_client URL ISBN [QUERY]  (e.g. http://127.0.0.1:50052 9787121139512)"
        );
    };
    let query = args.next();

    let channel = Endpoint::from_shared(url.clone())
        .with_context(|| format!("{url} is not a valid URL"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the catalog at {url}"))?;
    // Cheap to clone: every clone shares the one HTTP/2 connection.
    let client = BookCatalogClient::new(channel);

    let found = with_one_retry("GetBookByIsbn", || {
        let mut client = client.clone();
        let mut request = Request::new(GetBookByIsbnRequest {
            isbn: isbn.clone(),
            read_mask: Some(read_mask()),
        });
        request.set_timeout(CALL_DEADLINE);
        async move { client.get_book_by_isbn(request).await }
    })
    .await;

    let title = match found {
        Ok(response) => {
            let book = response
                .into_inner()
                .book
                .context("an answer without a book")?;
            println!("{}", describe_book(&book));
            Some(book.title)
        }
        // Permanent for this input: asking again gives the same answer.
        Err(status) if status.code() == Code::NotFound => {
            println!("no book with ISBN {isbn} ({})", reason(&status));
            None
        }
        Err(status) if status.code() == Code::InvalidArgument => {
            bail!(
                "the catalog refused the request: {}",
                describe_error(&status)
            );
        }
        Err(status) if status.code() == Code::DeadlineExceeded => {
            bail!(
                "no answer within {CALL_DEADLINE:?}: {}",
                describe_error(&status)
            );
        }
        // UNAVAILABLE / RESOURCE_EXHAUSTED after the one retry, or without a RetryInfo (a
        // refused apikey is UNAVAILABLE with reason PROVIDER_KEY_REFUSED and no retry delay:
        // waiting will not fix it, someone must).
        Err(status) => bail!("GetBookByIsbn failed: {}", describe_error(&status)),
    };

    if let Some(query) = query.or(title) {
        search(&client, &query).await?;
    }
    Ok(())
}

/// SearchBooks, one page at a time, following `next_page_token` until it is empty.
async fn search(
    client: &BookCatalogClient<tonic::transport::Channel>,
    query: &str,
) -> anyhow::Result<()> {
    let mut page_token = String::new();
    for page in 1..=MAX_PAGES {
        let response = with_one_retry("SearchBooks", || {
            let mut client = client.clone();
            let mut request = Request::new(SearchBooksRequest {
                query: query.to_owned(),
                page_size: PAGE_SIZE,
                // Opaque: pass back exactly what the last page returned, with the same query.
                page_token: page_token.clone(),
                read_mask: Some(read_mask()),
            });
            request.set_timeout(CALL_DEADLINE);
            async move { client.search_books(request).await }
        })
        .await
        .map_err(|status| anyhow::anyhow!("SearchBooks failed: {}", describe_error(&status)))?
        .into_inner();

        println!(
            "search {query:?}, page {page} ({} matches in all):",
            response.total_size
        );
        for book in &response.books {
            println!("  {}", describe_book(book));
        }
        if response.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = response.next_page_token;
    }
    println!("(stopping after {MAX_PAGES} pages)");
    Ok(())
}

/// Calls once and, when the catalog says the failure is temporary and how long to wait, once
/// more after that delay. Never retries INVALID_ARGUMENT, NOT_FOUND or a deadline: the same
/// request gets the same answer.
async fn with_one_retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    match call().await {
        Err(status) => match retry_delay(&status) {
            Some(delay) => {
                eprintln!(
                    "{what}: {}; retrying once in {delay:?}",
                    describe_error(&status)
                );
                tokio::time::sleep(delay).await;
                call().await
            }
            None => Err(status),
        },
        ok => ok,
    }
}

/// How long to wait before the one retry: only for UNAVAILABLE and RESOURCE_EXHAUSTED, only when
/// the status carries a `google.rpc.RetryInfo`, and only when its delay is one worth waiting.
fn retry_delay(status: &Status) -> Option<Duration> {
    if !matches!(status.code(), Code::Unavailable | Code::ResourceExhausted) {
        return None;
    }
    let delay = status.get_details_retry_info()?.retry_delay?;
    (delay <= MAX_RETRY_DELAY).then_some(delay)
}

fn read_mask() -> FieldMask {
    FieldMask {
        paths: FIELDS.iter().map(|field| (*field).to_owned()).collect(),
    }
}

/// The machine-readable cause (`google.rpc.ErrorInfo.reason`, e.g. `BOOK_NOT_FOUND`), which is
/// what to branch on; the message is for people.
fn reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map_or_else(|| "no ErrorInfo".to_owned(), |info| info.reason)
}

/// A status with every detail the catalog attached, for a log line.
fn describe_error(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(info) = status.get_details_error_info() {
        text += &format!(" [reason {} in {}", info.reason, info.domain);
        let mut metadata: Vec<_> = info.metadata.into_iter().collect();
        metadata.sort();
        for (key, value) in metadata {
            text += &format!(", {key}={value}");
        }
        text += "]";
    }
    if let Some(delay) = status.get_details_retry_info().and_then(|r| r.retry_delay) {
        text += &format!(" [retry after {delay:?}]");
    }
    if let Some(bad) = status.get_details_bad_request() {
        for violation in bad.field_violations {
            text += &format!(" [{}: {}]", violation.field, violation.description);
        }
    }
    text
}

fn describe_book(book: &Book) -> String {
    let rating = book.rating.as_ref().filter(|r| r.rated).map_or_else(
        || "not rated".to_owned(),
        |r| format!("{:.1}/10 from {}", r.average, r.count),
    );
    format!(
        "{} {} by {} ({}), {rating}",
        book.isbn13,
        book.title,
        book.authors.join(", "),
        book.publisher
    )
}
