//! How `doumi book` ends: the exit statuses scripts branch on, and the one
//! line on stderr a failed call prints.

use std::fmt;

use prost::Message;

use doumi_proto::catalog::v1::{BookError, BookResult, book_result};
use tonic::Code;
use tonic_types::StatusExt;

/// The exit statuses, shown under `doumi book --help`. Scripts branch on them,
/// so they are part of the tool's interface: change them only with a note.
pub(super) const EXIT_STATUS_HELP: &str = "\
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
    pub(super) fn of_status(code: Code) -> Exit {
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
    pub(super) fn of_batch(results: &[BookResult]) -> Exit {
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
    pub(super) fn new(exit: Exit, line: impl Into<String>) -> Self {
        Failure {
            exit,
            line: line.into(),
        }
    }

    /// A failed call as one line: code, message, ErrorInfo reason, RetryInfo
    /// delay, so an operator (or a log scraper) can tell a refused key from an
    /// outage without a second tool.
    pub(super) fn from_status(status: &tonic::Status) -> Self {
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
    pub(super) fn from_item(error: &BookError) -> Self {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use doumi_proto::catalog::v1::Book;
    use tonic_types::ErrorDetails;

    use super::*;

    fn sample_book() -> Book {
        Book {
            title: "浪潮之巅".into(),
            ..Default::default()
        }
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
}
