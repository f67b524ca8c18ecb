//! What a reader's message means. Pure functions over the typed message, so
//! every rule of the conversation can be tested without a network.

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
    /// Sent something shaped like an ISBN (typed or scanned).
    LookupIsbn(String),
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
            Self::LookupIsbn(_) => "isbn",
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
    if looks_like_isbn(text) {
        return Intent::LookupIsbn(text.to_owned());
    }
    Intent::Search(text.chars().take(MAX_QUERY_CHARS).collect())
}

/// A barcode scan of a book is `EAN_13,978…`; anything else is searched as text.
fn classify_scan(result: &str) -> Intent {
    let code = result.split_once(',').map_or(result, |(_, code)| code);
    if looks_like_isbn(code) {
        Intent::LookupIsbn(code.trim().to_owned())
    } else {
        Intent::Unsupported
    }
}

fn is_help(text: &str) -> bool {
    matches!(
        text.to_lowercase().as_str(),
        "help" | "帮助" | "?" | "？" | "h" | "菜单" | "怎么用" | "使用说明"
    )
}

/// Shape only: 10 or 13 characters of digits (a final X for ISBN-10) once
/// hyphens and spaces are gone. Whether the check digit is right is the
/// catalog's call; a wrong one gets a "not a valid ISBN" answer, not a search.
pub fn looks_like_isbn(text: &str) -> bool {
    let text = text
        .trim()
        .trim_start_matches("ISBN")
        .trim_start_matches("isbn")
        .trim_start_matches([':', '：', ' ']);
    let chars: Vec<char> = text
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\u{3000}'))
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            other => other,
        })
        .collect();
    let Some((last, body)) = chars.split_last() else {
        return false;
    };
    matches!(chars.len(), 10 | 13)
        && body.iter().all(char::is_ascii_digit)
        && (last.is_ascii_digit() || (chars.len() == 10 && matches!(last, 'x' | 'X')))
}

#[cfg(test)]
mod tests {
    use doumi_proto::bot::v1::{Event, MenuClick, ScanCode, Subscribe, Text, Voice};

    use super::*;

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
    fn isbns_in_every_shape_readers_type() {
        for isbn in [
            "9787121139512",
            "7121139510",
            "978-7-121-13951-2",
            "711528282x",
            " 978 7121139512 ",
            "ISBN 9787121139512",
        ] {
            assert_eq!(
                classify(&text(isbn)),
                Intent::LookupIsbn(isbn.trim().to_owned()),
                "{isbn}"
            );
        }
        // A wrong check digit is still an ISBN attempt: the catalog says what is wrong.
        assert_eq!(
            classify(&text("9787121139513")),
            Intent::LookupIsbn("9787121139513".to_owned())
        );
    }

    #[test]
    fn everything_else_is_a_keyword_search() {
        assert_eq!(
            classify(&text("浪潮之巅")),
            Intent::Search("浪潮之巅".to_owned())
        );
        assert_eq!(classify(&text("1984")), Intent::Search("1984".to_owned()));
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
        let scan = event(event::Kind::ScanCode(ScanCode {
            scan_result: "EAN_13,9787540438845".to_owned(),
            scan_type: "barcode".to_owned(),
            ..Default::default()
        }));
        assert_eq!(
            classify(&scan),
            Intent::LookupIsbn("9787540438845".to_owned())
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
}
