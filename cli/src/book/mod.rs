//! `doumi book`: ask the catalog's gRPC API for books, as another team's
//! service would. Human-readable by default; `--json` prints the protobuf JSON
//! mapping every other gRPC tool prints; the exit status tells a script what
//! happened (see [`Exit`]).
//!
//! Inside: `exit` (the statuses and the one stderr line a failure prints),
//! `json` (the protobuf JSON mapping), `text` (what a person reads).

mod exit;
mod json;
mod text;

use std::{fmt::Write as _, io::Write as _, time::Duration};

use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnRequest, Book, BookResult, GetBookByIsbnRequest, GetBookRequest,
    SearchBooksRequest, SearchBooksResponse, book_catalog_client::BookCatalogClient, book_result,
};
use doumi_runtime::grpc::{DialSettings, Target};
use tonic::Code;

pub use exit::exit_code;

use exit::{EXIT_STATUS_HELP, Exit, Failure};
use json::to_json;
use text::{describe, one_line};

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
                emit(&to_json(&response)?)?;
            } else {
                emit(&batch_text(&response.results))?;
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
                emit(&to_json(&page)?)?;
            } else {
                emit(&page_text(&page, &page_token))?;
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
        emit(&to_json(book)?)
    } else {
        emit(&describe(book))
    }
}

fn batch_text(results: &[BookResult]) -> String {
    let mut text = String::new();
    for result in results {
        let _ = match &result.result {
            Some(book_result::Result::Book(book)) => writeln!(text, "{}", describe(book)),
            Some(book_result::Result::Error(error)) => {
                writeln!(text, "{}: {}\n", result.isbn, Failure::from_item(error))
            }
            None => writeln!(text, "{}: no answer\n", result.isbn),
        };
    }
    // `emit` ends the output with the newline the last line had.
    text.pop();
    text
}

fn page_text(page: &SearchBooksResponse, page_token: &str) -> String {
    let start: usize = page_token.parse().unwrap_or(0);
    let mut text = String::new();
    for (i, book) in page.books.iter().enumerate() {
        let _ = writeln!(text, "{:>3}. {}", start + i + 1, one_line(book));
    }
    let _ = write!(
        text,
        "{} of {} matches{}",
        page.books.len(),
        page.total_size,
        if page.next_page_token.is_empty() {
            String::new()
        } else {
            format!("; next page: --page-token {}", page.next_page_token)
        }
    );
    text
}

/// Prints `text` and a newline. A reader that stopped reading (`| head`) is
/// no error: the rest is dropped quietly, as other Unix tools do.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
