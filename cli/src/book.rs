//! `doumi book`: ask the catalog's gRPC API for books, as another team's
//! service would. Human-readable by default, `--json` for scripts.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, Book, GetBookByIsbnRequest, GetBookRequest, SearchBooksRequest,
    book_catalog_client::BookCatalogClient, book_result,
};
use serde_json::{Value, json};
use tonic::{Code, transport::Channel};

#[derive(Debug, clap::Args)]
pub struct BookArgs {
    #[command(subcommand)]
    command: BookCommand,
    /// The catalog's gRPC address.
    #[arg(
        long,
        global = true,
        env = "DOUMI_CATALOG_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    catalog_url: String,
    /// How long to wait for an answer (sent to the catalog as the deadline).
    #[arg(long, global = true, default_value = "10s")]
    timeout: String,
    /// Print JSON (one object per book) instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum BookCommand {
    /// Look books up by ISBN-10 or ISBN-13 (several at once: one batch call).
    Isbn {
        #[arg(required = true, num_args = 1..=50)]
        isbns: Vec<String>,
    },
    /// Search by title or author.
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
    Get { id: String },
}

pub async fn run(args: BookArgs) -> anyhow::Result<()> {
    let timeout = doumi_runtime::settings::parse_duration(&args.timeout)
        .with_context(|| format!("--timeout {:?} is not a duration like 10s", args.timeout))?;
    let channel = Channel::from_shared(args.catalog_url.clone())
        .with_context(|| format!("--catalog-url {:?} is not a URL", args.catalog_url))?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .with_context(|| format!("cannot reach the catalog at {}", args.catalog_url))?;
    let mut client = BookCatalogClient::new(channel);
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
                .map_err(failed)?
                .into_inner()
                .book
                .unwrap_or_default();
            print_book(&book, args.json);
        }
        BookCommand::Isbn { isbns } => {
            let results = client
                .batch_get_books_by_isbn(request(
                    BatchGetBooksByIsbnRequest {
                        isbns,
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map_err(failed)?
                .into_inner()
                .results;
            for result in results {
                match result.result {
                    Some(book_result::Result::Book(book)) => print_book(&book, args.json),
                    Some(book_result::Result::Error(error)) => {
                        let code = Code::from_i32(error.code);
                        if args.json {
                            let code = format!("{code:?}");
                            println!(
                                "{}",
                                json!({"isbn": result.isbn, "error": {"code": code, "message": error.message}})
                            );
                        } else {
                            println!("{}: {:?}: {}\n", result.isbn, code, error.message);
                        }
                    }
                    None => {}
                }
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
                .map_err(failed)?
                .into_inner();
            if args.json {
                let books: Vec<Value> = page.books.iter().map(book_json).collect();
                println!(
                    "{}",
                    json!({"books": books, "total_size": page.total_size, "next_page_token": page.next_page_token})
                );
            } else {
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
                .map_err(failed)?
                .into_inner()
                .book
                .unwrap_or_default();
            print_book(&book, args.json);
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

/// A gRPC status as one line an operator can act on.
fn failed(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

fn print_book(book: &Book, as_json: bool) {
    if as_json {
        println!("{}", book_json(book));
    } else {
        println!("{}", describe(book));
    }
}

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
            if r.rated {
                format!("{:.1} ({} ratings)", r.average, r.count)
            } else {
                format!("unrated ({} ratings)", r.count)
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

/// The proto `Book` as JSON, field names as in the proto.
fn book_json(book: &Book) -> Value {
    json!({
        "id": book.id,
        "isbn10": book.isbn10,
        "isbn13": book.isbn13,
        "title": book.title,
        "subtitle": book.subtitle,
        "origin_title": book.origin_title,
        "alt_title": book.alt_title,
        "authors": book.authors,
        "translators": book.translators,
        "publisher": book.publisher,
        "pubdate": book.pubdate.as_ref().map(|d| json!({"text": d.text, "year": d.year, "month": d.month})),
        "pages": book.pages,
        "price": book.price.as_ref().map(|p| json!({"text": p.text, "amount_minor": p.amount_minor, "currency": p.currency})),
        "binding": book.binding,
        "rating": book.rating.as_ref().map(|r| json!({"average": r.average, "count": r.count, "rated": r.rated})),
        "tags": book.tags.iter().map(|t| json!({"name": t.name, "count": t.count})).collect::<Vec<_>>(),
        "images": book.images.as_ref().map(|i| json!({"small": i.small, "medium": i.medium, "large": i.large})),
        "summary": book.summary,
        "author_intro": book.author_intro,
        "catalog": book.catalog,
        "series": book.series.as_ref().map(|s| json!({"id": s.id, "title": s.title})),
        "web_url": book.web_url,
        "ebook_url": book.ebook_url,
        "ebook_price": book.ebook_price.as_ref().map(|p| json!({"text": p.text, "amount_minor": p.amount_minor, "currency": p.currency})),
        "provenance": book.provenance.as_ref().map(|p| json!({
            "provider": p.provider,
            "fetched_at": p.fetched_at.as_ref().map(|t| t.seconds),
        })),
    })
}
