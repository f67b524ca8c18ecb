//! What a reader's message means. Pure functions over the typed message, so
//! every rule of the conversation can be tested without a network.

use doumi_isbn::{Isbn13, IsbnError};
use doumi_proto::bot::v1::{InboundMessage, event, inbound_message};

/// Keywords longer than this are cut: nobody types a 200-character title.
const MAX_QUERY_CHARS: usize = 60;

/// What the reader wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A new follower: greet and explain.
    Welcome,
    /// Asked how to use the account.
    Help,
    /// Sent a valid ISBN (typed or scanned, any spelling): the book it names.
    LookupIsbn(Isbn13),
    /// Sent something meant as an ISBN that is not one (wrong length or
    /// check digit), as the reader wrote it: answered here, quoted back —
    /// the catalog would refuse it by the same rules.
    InvalidIsbn(String),
    /// Sent keywords: a title or an author.
    Search(String),
    /// Sent a kind of message doumi cannot read (a photo, a sticker...).
    Unsupported,
    /// Nothing to answer (unfollow, report events, an empty text).
    Ignore,
}

impl Intent {
    /// A bounded label for metrics and logs (never the reader's words).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::Help => "help",
            Self::LookupIsbn(_) | Self::InvalidIsbn(_) => "isbn",
            Self::Search(_) => "search",
            Self::Unsupported => "unsupported",
            Self::Ignore => "ignore",
        }
    }
}

/// Classifies one inbound message.
pub fn classify(message: &InboundMessage) -> Intent {
    use inbound_message::Kind;
    match &message.kind {
        Some(Kind::Text(text)) => classify_text(&text.content),
        // Voice with speech recognition on: treat what was said as typed.
        Some(Kind::Voice(voice)) if !voice.recognition.trim().is_empty() => {
            classify_text(voice.recognition.trim_end_matches(['。', '？', '！', '.']))
        }
        Some(Kind::Event(event)) => match &event.kind {
            Some(event::Kind::Subscribe(_)) => Intent::Welcome,
            Some(event::Kind::ScanCode(scan)) => classify_scan(&scan.scan_result),
            Some(event::Kind::Click(click)) if click.key.eq_ignore_ascii_case("help") => {
                Intent::Help
            }
            _ => Intent::Ignore,
        },
        Some(
            Kind::Image(_)
            | Kind::Voice(_)
            | Kind::Video(_)
            | Kind::Location(_)
            | Kind::Link(_)
            | Kind::File(_),
        ) => Intent::Unsupported,
        // An event we do not model is something that happened, not something
        // the reader said: nothing to answer.
        Some(Kind::Unknown(unknown)) if unknown.raw_type.starts_with("event:") => Intent::Ignore,
        Some(Kind::Unknown(_)) => Intent::Unsupported,
        None => Intent::Ignore,
    }
}

fn classify_text(content: &str) -> Intent {
    let text = content.trim();
    if text.is_empty() {
        return Intent::Ignore;
    }
    if is_help(text) {
        return Intent::Help;
    }
    if let Some(reading) = doumi_isbn::read(text) {
        return lookup(reading, text);
    }
    Intent::Search(text.chars().take(MAX_QUERY_CHARS).collect())
}

/// A barcode scan of a book is `EAN_13,978…`; any other code is unsupported.
/// WeChat names the code type before the comma: an ISBN under another type
/// (a QR code holding one) is still looked up.
fn classify_scan(result: &str) -> Intent {
    let code = result
        .split_once(',')
        .map_or(result, |(_, code)| code)
        .trim();
    match doumi_isbn::read(code) {
        Some(reading) => lookup(reading, code),
        None => Intent::Unsupported,
    }
}

/// A valid ISBN in its canonical form, so every spelling of a book is one
/// catalog and cache key; an invalid one as written, to be quoted back.
fn lookup(reading: Result<Isbn13, IsbnError>, written: &str) -> Intent {
    match reading {
        Ok(isbn) => Intent::LookupIsbn(isbn),
        Err(_) => Intent::InvalidIsbn(written.to_owned()),
    }
}

fn is_help(text: &str) -> bool {
    matches!(
        text.to_lowercase().as_str(),
        "help" | "帮助" | "?" | "？" | "h" | "菜单" | "怎么用" | "使用说明"
    )
}

#[cfg(test)]
mod tests {
    use doumi_isbn::strategy::{isbn_like_text, spelled_isbn};
    use doumi_proto::bot::v1::{Event, MenuClick, ScanCode, Subscribe, Text, Voice};
    use proptest::prelude::*;

    use super::*;

    /// What the catalog's `GetBookByIsbn` makes of the ISBN the bot sends:
    /// the catalog's own parser, not a copy of it.
    fn valid(isbn13: &str) -> Isbn13 {
        Isbn13::parse(isbn13).unwrap()
    }

    fn catalog_reads(sent: &str) -> Result<String, doumi_catalog::isbn::IsbnError> {
        doumi_catalog::isbn::Isbn13::parse(sent).map(|isbn| isbn.to_string())
    }

    fn scan(result: &str) -> InboundMessage {
        event(event::Kind::ScanCode(ScanCode {
            scan_result: result.to_owned(),
            scan_type: "barcode".to_owned(),
            ..Default::default()
        }))
    }

    fn text(content: &str) -> InboundMessage {
        InboundMessage {
            kind: Some(inbound_message::Kind::Text(Text {
                content: content.to_owned(),
            })),
            ..Default::default()
        }
    }

    fn event(kind: event::Kind) -> InboundMessage {
        InboundMessage {
            kind: Some(inbound_message::Kind::Event(Event { kind: Some(kind) })),
            ..Default::default()
        }
    }

    #[test]
    fn isbns_in_every_shape_readers_type_ask_for_one_isbn13() {
        for (isbn, isbn13) in [
            ("9787121139512", "9787121139512"),
            ("7121139510", "9787121139512"),
            ("978-7-121-13951-2", "9787121139512"),
            ("978－7－121－13951－2", "9787121139512"),
            ("９７８７１２１１３９５１２", "9787121139512"),
            (
                "978\u{2013}7\u{2013}121\u{2013}13951\u{2013}2",
                "9787121139512",
            ),
            ("\u{3000}978\u{3000}7121139512\u{3000}", "9787121139512"),
            ("ISBN：978 7 121 13951 2", "9787121139512"),
            ("ISBN 9787121139512", "9787121139512"),
            ("711528282x", "9787115282828"),
            ("711528282Ｘ", "9787115282828"),
            ("ISBN 7-115-28282-X", "9787115282828"),
        ] {
            assert_eq!(
                classify(&text(isbn)),
                Intent::LookupIsbn(valid(isbn13)),
                "{isbn:?}"
            );
        }
    }

    #[test]
    fn a_wrong_isbn_is_answered_as_written_without_a_lookup() {
        for isbn in [
            "9787121139513",
            "978－7－121－13951－3",
            "7115282828",
            "9771234567898",
        ] {
            assert_eq!(
                classify(&text(&format!(" {isbn}\u{3000}"))),
                Intent::InvalidIsbn(isbn.to_owned()),
                "{isbn:?}"
            );
            assert!(catalog_reads(isbn).is_err(), "{isbn:?}");
        }
    }

    #[test]
    fn everything_else_is_a_keyword_search() {
        assert_eq!(
            classify(&text("浪潮之巅")),
            Intent::Search("浪潮之巅".to_owned())
        );
        assert_eq!(classify(&text("1984")), Intent::Search("1984".to_owned()));
        // Eleven digits or a letter inside: not an ISBN attempt.
        for other in ["978-7121-1395", "71211X9510", "9787121139512 浪潮之巅"] {
            assert_eq!(
                classify(&text(other)),
                Intent::Search(other.to_owned()),
                "{other:?}"
            );
        }
        assert_eq!(
            classify(&text("  吴军 ")),
            Intent::Search("吴军".to_owned())
        );
        let long = "书".repeat(500);
        assert_eq!(
            classify(&text(&long)),
            Intent::Search("书".repeat(MAX_QUERY_CHARS))
        );
    }

    #[test]
    fn help_and_welcome() {
        for word in ["help", "HELP", "帮助", "?", "？"] {
            assert_eq!(classify(&text(word)), Intent::Help, "{word}");
        }
        assert_eq!(
            classify(&event(event::Kind::Subscribe(Subscribe::default()))),
            Intent::Welcome
        );
        assert_eq!(
            classify(&event(event::Kind::Click(MenuClick {
                key: "HELP".to_owned()
            }))),
            Intent::Help
        );
        assert_eq!(classify(&text("   ")), Intent::Ignore);
    }

    #[test]
    fn barcode_scans_and_spoken_titles() {
        assert_eq!(
            classify(&scan("EAN_13,9787540438845")),
            Intent::LookupIsbn(valid("9787540438845"))
        );
        assert_eq!(
            classify(&scan("EAN_13,9787540438846")),
            Intent::InvalidIsbn("9787540438846".to_owned())
        );
        // Another product's EAN-13: the reader hears it is no book's ISBN.
        assert_eq!(
            classify(&scan("EAN_13,6901234567892")),
            Intent::InvalidIsbn("6901234567892".to_owned())
        );
        assert_eq!(
            classify(&scan("QR_CODE,http://weixin.qq.com/r/abc")),
            Intent::Unsupported
        );
        let voice = InboundMessage {
            kind: Some(inbound_message::Kind::Voice(Voice {
                recognition: "三体。".to_owned(),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(classify(&voice), Intent::Search("三体".to_owned()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// The bot and the catalog can never disagree: any spelling of a valid
        /// ISBN is looked up, and the catalog reads what the bot sends as the
        /// same book.
        #[test]
        fn every_spelling_of_a_valid_isbn_reaches_the_catalog_as_that_isbn(
            spelled in spelled_isbn()
        ) {
            let intent = classify(&text(&spelled.text));
            prop_assert_eq!(&intent, &Intent::LookupIsbn(valid(&spelled.isbn13)));
            if let Intent::LookupIsbn(sent) = intent {
                prop_assert_eq!(catalog_reads(sent.as_str()), Ok(spelled.isbn13));
            }
        }

        /// Whatever a reader sends, the bot looks it up exactly when the ISBN
        /// rules call it an ISBN, and the catalog then judges it as they do.
        #[test]
        fn the_bot_looks_up_what_the_isbn_rules_call_an_isbn(content in isbn_like_text()) {
            match (classify(&text(&content)), doumi_isbn::read(&content)) {
                (Intent::LookupIsbn(sent), Some(Ok(reading))) => {
                    prop_assert_eq!(catalog_reads(sent.as_str()), Ok(reading.to_string()));
                }
                (Intent::InvalidIsbn(sent), Some(Err(_))) => {
                    prop_assert!(catalog_reads(&sent).is_err(), "the catalog would read {sent:?}");
                }
                (intent @ (Intent::LookupIsbn(_) | Intent::InvalidIsbn(_)), reading) => {
                    return Err(TestCaseError::fail(format!("{content:?} (read {reading:?}) became {intent:?}")));
                }
                (other, Some(_)) => {
                    return Err(TestCaseError::fail(format!("the ISBN {content:?} became {other:?}")));
                }
                (_, None) => {}
            }
        }
    }
}
