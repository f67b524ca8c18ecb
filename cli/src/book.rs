//! `doumi book`: ask the catalog's gRPC API for books, as another team's
//! service would. Human-readable by default; `--json` prints the protobuf JSON
//! mapping every other gRPC tool prints; the exit status tells a script what
//! happened (see [`Exit`]).

use std::{
    fmt,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context;
use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, BatchGetBooksByIsbnResponse, Book, BookError, BookResult,
    FILE_DESCRIPTOR_SET, GetBookByIsbnRequest, GetBookRequest, SearchBooksRequest,
    SearchBooksResponse, book_catalog_client::BookCatalogClient, book_result,
};
use doumi_runtime::grpc::{DialSettings, Target};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::Code;
use tonic_types::StatusExt;

/// The exit statuses, shown under `doumi book --help`. Scripts branch on them,
/// so they are part of the tool's interface: change them only with a note.
const EXIT_STATUS_HELP: &str = "\
Exit status:
  0   found: the book, the search page, every ISBN of a batch
  1   anything else (e.g. the catalog answered INTERNAL)
  2   not found: no such book, no search match, or a batch with an ISBN that has an error
  64  usage: a malformed flag or argument (the whole doumi tool, clap's errors included), or a
      request the catalog calls INVALID_ARGUMENT (a malformed ISBN, a stale page token)
  69  unavailable: the catalog cannot be reached, or answers UNAVAILABLE, DEADLINE_EXCEEDED
      or RESOURCE_EXHAUSTED; usually worth retrying later, except for reason
      PROVIDER_KEY_REFUSED, which lasts until an operator fixes the key

On a failed call, stderr gets one line: the gRPC code, the catalog's message, the ErrorInfo
reason (e.g. BOOK_NOT_FOUND) and the RetryInfo delay when the catalog sends them.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct BookArgs {
    #[command(subcommand)]
    command: BookCommand,
    /// Where the catalog is: `http://host:port`, `dns:///host:port` (any
    /// of the addresses the name resolves to) or `ipv4:addr:port,…`.
    #[arg(
        long,
        global = true,
        env = "DOUMI_CATALOG_URL",
        default_value_t = doumi_runtime::ports::local_url(doumi_runtime::ports::CATALOG)
    )]
    catalog_url: String,
    /// How long to wait for an answer (sent to the catalog as the deadline).
    #[arg(long, global = true, default_value = "10s")]
    timeout: String,
    /// Print the response in the protobuf JSON mapping (a Book; a
    /// SearchBooksResponse; a BatchGetBooksByIsbnResponse for several ISBNs).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum BookCommand {
    /// Look books up by ISBN-10 or ISBN-13 (several at once: one batch call).
    #[command(after_help = EXIT_STATUS_HELP)]
    Isbn {
        #[arg(required = true, num_args = 1..=50)]
        isbns: Vec<String>,
    },
    /// Search by title or author.
    #[command(after_help = EXIT_STATUS_HELP)]
    Search {
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// Books per page (the catalog caps it at 50).
        #[arg(long, default_value_t = 10)]
        page_size: i32,
        /// The `next page` token a previous search printed.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Look a book up by its Douban subject id, e.g. 6709783.
    #[command(after_help = EXIT_STATUS_HELP)]
    Get { id: String },
}

// === impl Exit ===

/// How `doumi book` ended, as the process's exit status. The numbers follow
/// sysexits(3) where it has one (64 EX_USAGE, 69 EX_UNAVAILABLE, as the
/// services' binaries use for bad settings) and grep's habit of a distinct
/// status for "asked fine, nothing there".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Found,
    Failed,
    NotFound,
    Usage,
    Unavailable,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Found => 0,
            Exit::Failed => 1,
            Exit::NotFound => 2,
            Exit::Usage => 64,
            Exit::Unavailable => 69,
        }
    }

    /// What a failed call means for the caller: retrying helps only for the
    /// transient codes, fixing the command only for INVALID_ARGUMENT.
    fn of_status(code: Code) -> Exit {
        match code {
            Code::Ok => Exit::Found,
            Code::NotFound => Exit::NotFound,
            Code::InvalidArgument => Exit::Usage,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                Exit::Unavailable
            }
            _ => Exit::Failed,
        }
    }

    /// A batch call that succeeded still fails the command when any ISBN has
    /// no book, so `doumi book isbn a b c && …` means every book was found.
    fn of_batch(results: &[BookResult]) -> Exit {
        let missing = results
            .iter()
            .any(|r| !matches!(r.result, Some(book_result::Result::Book(_))));
        if missing { Exit::NotFound } else { Exit::Found }
    }
}

/// A `doumi book` failure: the line for stderr and the status that goes with
/// it. `main` finds it in the error to choose the exit status.
#[derive(Debug)]
pub struct Failure {
    exit: Exit,
    line: String,
}

impl Failure {
    fn new(exit: Exit, line: impl Into<String>) -> Self {
        Failure {
            exit,
            line: line.into(),
        }
    }

    /// A failed call as one line: code, message, ErrorInfo reason, RetryInfo
    /// delay, so an operator (or a log scraper) can tell a refused key from an
    /// outage without a second tool.
    fn from_status(status: &tonic::Status) -> Self {
        let mut line = format!(
            "{}: {}",
            code_name(status.code()),
            status.message().replace(['\r', '\n'], " ")
        );
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .filter(|reason| !reason.is_empty());
        let retry = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay);
        match (reason, retry) {
            (Some(reason), Some(delay)) => line.push_str(&format!(
                " (reason {reason}; retry in {})",
                humantime::format_duration(delay)
            )),
            (Some(reason), None) => line.push_str(&format!(" (reason {reason})")),
            (None, Some(delay)) => line.push_str(&format!(
                " (retry in {})",
                humantime::format_duration(delay)
            )),
            (None, None) => {}
        }
        Failure::new(Exit::of_status(status.code()), line)
    }
}

impl Failure {
    /// A batch item's error, told like a failed call: the item carries the
    /// status the single-book call would have returned, details included.
    fn from_item(error: &BookError) -> Self {
        let status = match &error.status {
            Some(status) => tonic::Status::with_details(
                Code::from_i32(status.code),
                status.message.clone(),
                status.encode_to_vec().into(),
            ),
            None => tonic::Status::new(Code::from_i32(error.code), error.message.clone()),
        };
        Failure::from_status(&status)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Failure {}

/// The exit status for an error any `doumi` command returned: a
/// [`Failure`]'s own, 1 for everything else.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    error
        .downcast_ref::<Failure>()
        .map_or(Exit::Failed.code(), |failure| failure.exit.code())
}

/// The canonical name of a gRPC code, as grpcurl and the gRPC docs print it
/// (tonic's `Debug` says `NotFound`, its `Display` a sentence).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

// === run ===

pub async fn run(args: BookArgs) -> anyhow::Result<()> {
    let timeout = doumi_runtime::settings::parse_duration(&args.timeout).ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            format!("--timeout {:?} is not a duration like 10s", args.timeout),
        )
    })?;
    let target: Target = args
        .catalog_url
        .parse()
        .map_err(|error| Failure::new(Exit::Usage, format!("--catalog-url: {error}")))?;
    let mut client =
        BookCatalogClient::new(doumi_runtime::grpc::channel(&target, DialSettings::DEFAULT));
    let status = |status: tonic::Status| {
        // A status with a transport error behind it never reached a catalog.
        if status.code() == Code::Unavailable && std::error::Error::source(&status).is_some() {
            Failure::new(
                Exit::Unavailable,
                format!("cannot reach the catalog at {target}: {}", status.message()),
            )
        } else {
            Failure::from_status(&status)
        }
    };
    match args.command {
        BookCommand::Isbn { isbns } if isbns.len() == 1 => {
            let isbn = isbns.into_iter().next().unwrap_or_default();
            let book = client
                .get_book_by_isbn(request(
                    GetBookByIsbnRequest {
                        isbn,
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map_err(status)?
                .into_inner()
                .book
                .unwrap_or_default();
            print_book(&book, args.json)?;
        }
        BookCommand::Isbn { isbns } => {
            let response = client
                .batch_get_books_by_isbn(request(
                    BatchGetBooksByIsbnRequest {
                        isbns,
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map_err(status)?
                .into_inner();
            if args.json {
                println!("{}", to_json(&response)?);
            } else {
                print_batch(&response.results);
            }
            if Exit::of_batch(&response.results) != Exit::Found {
                let missing = response
                    .results
                    .iter()
                    .filter(|r| !matches!(r.result, Some(book_result::Result::Book(_))))
                    .count();
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("{missing} of {} ISBNs have no book", response.results.len()),
                )
                .into());
            }
        }
        BookCommand::Search {
            query,
            page_size,
            page_token,
        } => {
            let page = client
                .search_books(request(
                    SearchBooksRequest {
                        query: query.join(" "),
                        page_size,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map_err(status)?
                .into_inner();
            if args.json {
                println!("{}", to_json(&page)?);
            } else {
                print_page(&page, &page_token);
            }
            if page.books.is_empty() {
                return Err(Failure::new(Exit::NotFound, "no book matches").into());
            }
        }
        BookCommand::Get { id } => {
            let book = client
                .get_book(request(
                    GetBookRequest {
                        id,
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map_err(status)?
                .into_inner()
                .book
                .unwrap_or_default();
            print_book(&book, args.json)?;
        }
    }
    Ok(())
}

/// A request carrying our deadline (tonic sends it as `grpc-timeout`).
fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn print_book(book: &Book, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", to_json(book)?);
    } else {
        println!("{}", describe(book));
    }
    Ok(())
}

fn print_batch(results: &[BookResult]) {
    for result in results {
        match &result.result {
            Some(book_result::Result::Book(book)) => println!("{}", describe(book)),
            Some(book_result::Result::Error(error)) => {
                println!("{}: {}\n", result.isbn, Failure::from_item(error));
            }
            None => println!("{}: no answer\n", result.isbn),
        }
    }
}

fn print_page(page: &SearchBooksResponse, page_token: &str) {
    let start: usize = page_token.parse().unwrap_or(0);
    for (i, book) in page.books.iter().enumerate() {
        println!("{:>3}. {}", start + i + 1, one_line(book));
    }
    println!(
        "{} of {} matches{}",
        page.books.len(),
        page.total_size,
        if page.next_page_token.is_empty() {
            String::new()
        } else {
            format!("; next page: --page-token {}", page.next_page_token)
        }
    );
}

// === JSON ===

/// A catalog message `--json` can print, named as in the descriptors.
trait CatalogMessage: prost::Message {
    const FULL_NAME: &'static str;
}

impl CatalogMessage for Book {
    const FULL_NAME: &'static str = "doumi.catalog.v1.Book";
}

impl CatalogMessage for SearchBooksResponse {
    const FULL_NAME: &'static str = "doumi.catalog.v1.SearchBooksResponse";
}

impl CatalogMessage for BatchGetBooksByIsbnResponse {
    const FULL_NAME: &'static str = "doumi.catalog.v1.BatchGetBooksByIsbnResponse";
}

/// `message` in the protobuf JSON mapping (lowerCamelCase names, int64 as
/// strings, Timestamps in RFC 3339, defaults omitted), read through the
/// catalog's own descriptors so the output is what grpcurl, buf curl or any
/// generated client prints and parses, not a dialect of ours.
fn to_json<M: CatalogMessage>(message: &M) -> anyhow::Result<String> {
    let descriptor = catalog_pool()?
        .get_message_by_name(M::FULL_NAME)
        .with_context(|| format!("{} is not in the catalog's descriptors", M::FULL_NAME))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("cannot read a {} through its descriptor", M::FULL_NAME))?;
    Ok(serde_json::to_string_pretty(&dynamic)?)
}

/// The catalog's descriptors (with the well-known types it imports, which
/// the JSON mapping renders specially), plus google.rpc's error details: a
/// batch item's `google.rpc.Status` carries them as `Any`, and the JSON
/// mapping of an `Any` needs its type's descriptor. Decoded per call:
/// `doumi book` prints once.
fn catalog_pool() -> anyhow::Result<DescriptorPool> {
    let mut pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .context("the catalog's descriptors do not decode")?;
    let rpc = prost_types::FileDescriptorSet::decode(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .context("google.rpc's descriptors do not decode")?;
    // The catalog ships its own copy of google/rpc/status.proto (under
    // another file name than tonic-types'): a file whose messages the pool
    // already has is left out, both copies describing the same wire format.
    let missing: Vec<_> = rpc
        .file
        .into_iter()
        .filter(|file| {
            file.message_type.iter().all(|message| {
                let name = format!("{}.{}", file.package(), message.name());
                pool.get_message_by_name(&name).is_none()
            })
        })
        .collect();
    pool.add_file_descriptor_protos(missing)
        .context("google.rpc's descriptors do not fit the catalog's")?;
    Ok(pool)
}

// === text ===

/// `《title》 — authors (publisher, year) ISBN … · Douban …`
fn one_line(book: &Book) -> String {
    let year = book.pubdate.as_ref().map_or(0, |d| d.year);
    let mut line = format!("《{}》 {}", book.title, book.authors.join(", "));
    match (book.publisher.is_empty(), year) {
        (true, 0) => {}
        (false, 0) => line.push_str(&format!(" ({})", book.publisher)),
        (true, y) => line.push_str(&format!(" ({y})")),
        (false, y) => line.push_str(&format!(" ({}, {y})", book.publisher)),
    }
    if !book.isbn13.is_empty() {
        line.push_str(&format!("  ISBN {}", book.isbn13));
    }
    if !book.id.is_empty() {
        line.push_str(&format!("  douban {}", book.id));
    }
    line
}

/// Every field that is set, one per line.
fn describe(book: &Book) -> String {
    let mut out = format!("《{}》", book.title);
    if !book.subtitle.is_empty() {
        out.push_str(&format!(" {}", book.subtitle));
    }
    out.push('\n');
    let mut field = |label: &str, value: String| {
        if !value.trim().is_empty() {
            out.push_str(&format!("  {label:<12} {value}\n"));
        }
    };
    field("original:", book.origin_title.clone());
    field("authors:", book.authors.join(", "));
    field("translators:", book.translators.join(", "));
    field("publisher:", book.publisher.clone());
    field(
        "published:",
        book.pubdate
            .as_ref()
            .map(|d| d.text.clone())
            .unwrap_or_default(),
    );
    field(
        "pages:",
        if book.pages > 0 {
            book.pages.to_string()
        } else {
            String::new()
        },
    );
    field("binding:", book.binding.clone());
    field(
        "price:",
        book.price
            .as_ref()
            .map(|p| p.text.clone())
            .unwrap_or_default(),
    );
    field(
        "rating:",
        book.rating.as_ref().map_or(String::new(), |r| {
            let source = if r.source.is_empty() {
                String::new()
            } else {
                format!(" on {}", r.source)
            };
            if r.rated {
                format!("{:.1}/10{source} ({} ratings)", r.average, r.count)
            } else {
                format!("unrated{source} ({} ratings)", r.count)
            }
        }),
    );
    field(
        "isbn:",
        [book.isbn13.as_str(), book.isbn10.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" / "),
    );
    field("douban id:", book.id.clone());
    field(
        "series:",
        book.series
            .as_ref()
            .map(|s| s.title.clone())
            .unwrap_or_default(),
    );
    field(
        "tags:",
        book.tags
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
    );
    field(
        "cover:",
        book.images
            .as_ref()
            .map(|i| i.large.clone())
            .unwrap_or_default(),
    );
    field("link:", book.web_url.clone());
    field("source:", provenance(book));
    out
}

fn provenance(book: &Book) -> String {
    let Some(p) = &book.provenance else {
        return String::new();
    };
    match p
        .fetched_at
        .as_ref()
        .and_then(|t| u64::try_from(t.seconds).ok())
    {
        Some(secs) => format!(
            "{}, fetched {}",
            p.provider,
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
        ),
        None => p.provider.clone(),
    }
}

#[cfg(test)]
mod tests {
    use doumi_proto::catalog::v1::{
        Images, Price, Provenance, PublicationDate, Rating, Series, Tag,
    };
    use serde_json::Value;
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    /// A book with every kind of field the JSON mapping treats specially: an
    /// int64, a double, a bool, a Timestamp, repeated messages, snake_case names.
    fn sample_book() -> Book {
        Book {
            id: "6709783".into(),
            isbn10: "7121139513".into(),
            isbn13: "9787121139512".into(),
            title: "浪潮之巅".into(),
            origin_title: "On the Top of Tides".into(),
            authors: vec!["吴军".into()],
            publisher: "电子工业出版社".into(),
            pubdate: Some(PublicationDate {
                text: "2011-8".into(),
                year: 2011,
                month: 8,
            }),
            pages: 504,
            price: Some(Price {
                text: "55.00元".into(),
                amount_minor: 5500,
                currency: "CNY".into(),
            }),
            rating: Some(Rating {
                average: 9.1,
                count: 14_254,
                rated: true,
                source: "douban".into(),
                scale: 10,
            }),
            tags: vec![Tag {
                name: "互联网".into(),
                count: 3_021,
            }],
            images: Some(Images {
                large: "https://img.example/l.jpg".into(),
                ..Default::default()
            }),
            summary: "近一百多年来，总有一些公司很幸运地、有意识或无意识地站在技术革命的浪尖之上。"
                .into(),
            author_intro: "吴军，博士。".into(),
            series: Some(Series {
                id: "1".into(),
                title: "浪潮".into(),
            }),
            web_url: "https://book.douban.com/subject/6709783/".into(),
            provenance: Some(Provenance {
                provider: "douban".into(),
                fetched_at: Some(prost_types::Timestamp {
                    seconds: 1_764_460_800,
                    nanos: 0,
                }),
            }),
            ..Default::default()
        }
    }

    /// Parses `json` as the protobuf JSON mapping of message `name`, as any
    /// other team's client would, and returns its wire bytes.
    fn parse_canonical(json: &str, name: &str) -> Vec<u8> {
        let pool = catalog_pool().unwrap();
        let descriptor = pool.get_message_by_name(name).unwrap();
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let message = DynamicMessage::deserialize(descriptor, &mut deserializer).unwrap();
        deserializer.end().unwrap();
        message.encode_to_vec()
    }

    #[test]
    fn json_of_a_book_parses_back_into_the_same_book() {
        let book = sample_book();

        let json = to_json(&book).unwrap();

        let parsed = Book::decode(parse_canonical(&json, Book::FULL_NAME).as_slice()).unwrap();
        assert_eq!(parsed, book);
    }

    #[test]
    fn json_of_a_book_uses_the_canonical_mapping() {
        let json = to_json(&sample_book()).unwrap();

        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["isbn13"], "9787121139512");
        assert_eq!(value["originTitle"], "On the Top of Tides");
        assert_eq!(value["webUrl"], "https://book.douban.com/subject/6709783/");
        assert_eq!(value["authorIntro"], "吴军，博士。");
        // int64 as a string, int32 as a number.
        assert_eq!(value["price"]["amountMinor"], "5500");
        assert_eq!(value["pages"], 504);
        assert_eq!(value["provenance"]["fetchedAt"], "2025-11-30T00:00:00Z");
        // Defaults are omitted, proto names are not used.
        for absent in [
            "subtitle",
            "ebookUrl",
            "ebookPrice",
            "origin_title",
            "web_url",
        ] {
            assert!(value.get(absent).is_none(), "{absent} in {json}");
        }
        assert!(value["images"].get("small").is_none());
    }

    #[test]
    fn json_of_a_batch_and_a_page_parses_back() {
        let batch = BatchGetBooksByIsbnResponse {
            results: vec![
                BookResult {
                    isbn: "9787121139512".into(),
                    result: Some(book_result::Result::Book(sample_book())),
                },
                BookResult {
                    isbn: "9780000000002".into(),
                    result: Some(book_result::Result::Error(BookError {
                        code: Code::NotFound as i32,
                        message: "no provider knows 9780000000002".into(),
                        ..Default::default()
                    })),
                },
            ],
        };
        let page = SearchBooksResponse {
            books: vec![sample_book()],
            next_page_token: "10".into(),
            total_size: 42,
        };

        let batch_json = to_json(&batch).unwrap();
        let page_json = to_json(&page).unwrap();

        let bytes = parse_canonical(&batch_json, BatchGetBooksByIsbnResponse::FULL_NAME);
        assert_eq!(
            BatchGetBooksByIsbnResponse::decode(bytes.as_slice()).unwrap(),
            batch
        );
        let bytes = parse_canonical(&page_json, SearchBooksResponse::FULL_NAME);
        assert_eq!(SearchBooksResponse::decode(bytes.as_slice()).unwrap(), page);
        let value: Value = serde_json::from_str(&page_json).unwrap();
        assert_eq!(value["nextPageToken"], "10");
        assert_eq!(value["totalSize"], 42);
    }

    /// A batch item's `google.rpc.Status` carries its details as `Any`: the
    /// JSON mapping names their type (`@type`) and still parses back.
    #[test]
    fn json_of_an_item_error_with_details_parses_back() {
        let mut details = ErrorDetails::with_error_info(
            "CIRCUIT_OPEN",
            "catalog.doumi",
            [("provider".to_string(), "douban".to_string())],
        );
        details.set_retry_info(Some(Duration::from_secs(12)));
        let status = tonic::Status::with_error_details(Code::Unavailable, "douban rests", details);
        let item = BookError {
            code: Code::Unavailable as i32,
            message: "douban rests".into(),
            status: Some(tonic_types::pb::Status::decode(status.details()).unwrap()),
        };
        let batch = BatchGetBooksByIsbnResponse {
            results: vec![BookResult {
                isbn: "9787121139512".into(),
                result: Some(book_result::Result::Error(item.clone())),
            }],
        };

        let json = to_json(&batch).unwrap();

        let bytes = parse_canonical(&json, BatchGetBooksByIsbnResponse::FULL_NAME);
        assert_eq!(
            BatchGetBooksByIsbnResponse::decode(bytes.as_slice()).unwrap(),
            batch
        );
        let value: Value = serde_json::from_str(&json).unwrap();
        let details = value["results"][0]["error"]["status"]["details"]
            .as_array()
            .unwrap();
        let detail = |name: &str| {
            details
                .iter()
                .find(|d| d["@type"] == format!("type.googleapis.com/google.rpc.{name}"))
                .unwrap()
        };
        assert_eq!(detail("ErrorInfo")["reason"], "CIRCUIT_OPEN");
        assert_eq!(detail("ErrorInfo")["metadata"]["provider"], "douban");
        assert_eq!(detail("RetryInfo")["retryDelay"], "12s");
        assert_eq!(
            Failure::from_item(&item).to_string(),
            "UNAVAILABLE: douban rests (reason CIRCUIT_OPEN; retry in 12s)"
        );
    }

    #[test]
    fn every_status_code_has_its_exit_status() {
        let expected = [
            (Code::Ok, 0),
            (Code::Cancelled, 1),
            (Code::Unknown, 1),
            (Code::InvalidArgument, 64),
            (Code::DeadlineExceeded, 69),
            (Code::NotFound, 2),
            (Code::AlreadyExists, 1),
            (Code::PermissionDenied, 1),
            (Code::ResourceExhausted, 69),
            (Code::FailedPrecondition, 1),
            (Code::Aborted, 1),
            (Code::OutOfRange, 1),
            (Code::Unimplemented, 1),
            (Code::Internal, 1),
            (Code::Unavailable, 69),
            (Code::DataLoss, 1),
            (Code::Unauthenticated, 1),
        ];

        for (code, exit) in expected {
            let error = anyhow::Error::from(Failure::from_status(&tonic::Status::new(code, "x")));
            assert_eq!(exit_code(&error), exit, "{code:?}");
        }
    }

    #[test]
    fn a_batch_exits_2_unless_every_isbn_has_a_book() {
        let found = |isbn: &str| BookResult {
            isbn: isbn.into(),
            result: Some(book_result::Result::Book(sample_book())),
        };
        let failed = |isbn: &str, code: Code| BookResult {
            isbn: isbn.into(),
            result: Some(book_result::Result::Error(BookError {
                code: code as i32,
                ..Default::default()
            })),
        };

        assert_eq!(Exit::of_batch(&[found("a"), found("b")]), Exit::Found);
        assert_eq!(
            Exit::of_batch(&[found("a"), failed("b", Code::NotFound)]),
            Exit::NotFound
        );
        assert_eq!(
            Exit::of_batch(&[failed("a", Code::InvalidArgument)]),
            Exit::NotFound
        );
        assert_eq!(
            Exit::of_batch(&[found("a"), failed("b", Code::Unavailable)]),
            Exit::NotFound
        );
        let unanswered = BookResult {
            isbn: "c".into(),
            result: None,
        };
        assert_eq!(Exit::of_batch(&[found("a"), unanswered]), Exit::NotFound);
        assert_eq!(Exit::NotFound.code(), 2);
    }

    #[test]
    fn other_errors_exit_1() {
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
    }

    #[test]
    fn the_stderr_line_names_the_code_reason_and_retry_delay() {
        let mut details = ErrorDetails::with_error_info(
            "PROVIDER_RATE_LIMITED",
            "catalog.doumi",
            [("provider".to_string(), "douban".to_string())],
        );
        details.set_retry_info(Some(Duration::from_secs(30)));
        let status = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "douban is rate-limiting\nus",
            details,
        );

        let failure = Failure::from_status(&status);

        assert_eq!(
            failure.to_string(),
            "RESOURCE_EXHAUSTED: douban is rate-limiting us \
             (reason PROVIDER_RATE_LIMITED; retry in 30s)"
        );
        assert_eq!(failure.exit, Exit::Unavailable);
    }

    #[test]
    fn the_stderr_line_without_details_is_code_and_message() {
        let not_found = tonic::Status::with_error_details(
            Code::NotFound,
            "no provider knows 9780000000002",
            ErrorDetails::with_error_info(
                "BOOK_NOT_FOUND",
                "catalog.doumi",
                std::collections::HashMap::new(),
            ),
        );
        let bare = tonic::Status::new(Code::Internal, "boom");

        assert_eq!(
            Failure::from_status(&not_found).to_string(),
            "NOT_FOUND: no provider knows 9780000000002 (reason BOOK_NOT_FOUND)"
        );
        assert_eq!(Failure::from_status(&bare).to_string(), "INTERNAL: boom");
    }

    #[test]
    fn the_exit_statuses_are_in_the_help() {
        use clap::{CommandFactory, Parser};

        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            book: BookArgs,
        }
        let help = Cli::command().render_long_help().to_string();

        for line in ["0   found", "2   not found", "64  usage", "69  unavailable"] {
            assert!(help.contains(line), "{line:?} not in {help}");
        }
    }
}
