//! `doumi book` as a script sees it: the binary against a catalog serving the
//! bundled sample books, judged by its exit status, stdout and stderr.

use std::{net::SocketAddr, process::Output};

use doumi_catalog::CatalogConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// In the bundled sample catalog.
const CLEAN_CODE: &str = "9780132350884";
/// A well-formed ISBN no sample book has.
const UNKNOWN: &str = "9780000000002";

/// A catalog on a free port, stopped when the value drops.
struct TestCatalog {
    url: String,
    _stop: tokio_util::sync::DropGuard,
}

async fn spawn_catalog() -> TestCatalog {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(doumi_catalog::run(
        CatalogConfig::offline(addr),
        listener,
        stop.clone().cancelled_owned(),
    ));
    TestCatalog {
        url: format!("http://{addr}"),
        _stop: stop.drop_guard(),
    }
}

/// Runs `doumi book <args> --catalog-url <url>`.
async fn doumi_book(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_doumi"))
        .arg("book")
        .args(args)
        .args(["--catalog-url", url])
        .env_remove("DOUMI_CATALOG_URL")
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_found_book_exits_0_with_canonical_json() {
    let catalog = spawn_catalog().await;

    let output = doumi_book(&catalog.url, &["isbn", CLEAN_CODE, "--json"]).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let book: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(book["isbn13"], CLEAN_CODE);
    assert_eq!(book["title"], "Clean Code");
    assert!(book["provenance"]["fetchedAt"].is_string());
}

#[tokio::test]
async fn an_unknown_book_exits_2_and_names_the_code() {
    let catalog = spawn_catalog().await;

    let output = doumi_book(&catalog.url, &["isbn", UNKNOWN]).await;

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("NOT_FOUND: "),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_partial_batch_exits_2_and_prints_every_result() {
    let catalog = spawn_catalog().await;

    let output = doumi_book(&catalog.url, &["isbn", CLEAN_CODE, UNKNOWN, "--json"]).await;

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let batch: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(batch["results"][0]["book"]["isbn13"], CLEAN_CODE);
    assert_eq!(batch["results"][1]["isbn"], UNKNOWN);
    assert_eq!(batch["results"][1]["error"]["code"], 5);
    assert!(stderr(&output).contains("1 of 2 ISBNs have no book"));
}

#[tokio::test]
async fn a_whole_batch_found_exits_0() {
    let catalog = spawn_catalog().await;

    let output = doumi_book(&catalog.url, &["isbn", CLEAN_CODE, CLEAN_CODE]).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test]
async fn a_malformed_isbn_exits_64() {
    let catalog = spawn_catalog().await;

    let output = doumi_book(&catalog.url, &["isbn", "978-0-13-235088-5"]).await;

    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("INVALID_ARGUMENT: "),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_malformed_flag_exits_64() {
    let output = doumi_book(
        "http://127.0.0.1:1",
        &["isbn", CLEAN_CODE, "--no-such-flag"],
    )
    .await;
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));

    let output = doumi_book(
        "http://127.0.0.1:1",
        &["isbn", CLEAN_CODE, "--timeout", "soon"],
    )
    .await;
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
}

#[tokio::test]
async fn an_unreachable_catalog_exits_69() {
    // A port that was free a moment ago: nothing listens there.
    let addr: SocketAddr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };

    let output = doumi_book(&format!("http://{addr}"), &["isbn", CLEAN_CODE]).await;

    assert_eq!(output.status.code(), Some(69), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot reach the catalog"));
}

#[tokio::test]
async fn help_lists_the_exit_statuses_and_exits_0() {
    let output = doumi_book("http://127.0.0.1:1", &["--help"]).await;

    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("Exit status:"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("69  unavailable"));
}

/// `doumi book … | head -1`: once the reader of the output has gone, the rest
/// is dropped quietly and the exit status still says what was found.
#[tokio::test]
async fn a_reader_that_stops_reading_is_no_error() {
    let catalog = spawn_catalog().await;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_doumi"))
        .args(["book", "isbn", CLEAN_CODE, "--catalog-url", &catalog.url])
        .env_remove("DOUMI_CATALOG_URL")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}
