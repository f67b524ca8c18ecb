//! ISBN rules in one place: which spellings readers type and scanners send
//! count as an ISBN, check digits, and ISBN-10 → ISBN-13.
//!
//! The bot decides with [`read`] whether a message is an ISBN and the catalog
//! validates with [`Isbn13::parse`]; both are the same rules, so a spelling the
//! bot looks up as an ISBN is never judged differently by the catalog.
#![forbid(unsafe_code)]

use std::{fmt, str::FromStr};

#[cfg(any(test, feature = "proptest"))]
pub mod strategy;

/// WeChat's `scancode_waitmsg` results name the barcode type before a comma.
const SCAN_PREFIXES: [&str; 3] = ["EAN_13,", "ISBN_13,", "ISBN_10,"];

/// A validated ISBN-13: the one key books are looked up and cached by, so an
/// ISBN-10 and the hyphenated forms of a book all name the same entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Isbn13(String);

/// What is wrong with a would-be ISBN, in words a caller can act on (the
/// catalog sends them back with `INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsbnError {
    /// Nothing but separators or an `ISBN` prefix.
    #[error("an ISBN is empty")]
    Empty,
    /// A character that is no digit, separator or final `X`.
    #[error("an ISBN may only hold digits, hyphens, spaces and an ISBN-10's final X, found {0:?}")]
    BadCharacter(char),
    /// Neither 10 nor 13 digits.
    #[error("an ISBN has 10 or 13 digits, this one has {0}")]
    WrongLength(usize),
    /// Ten digits whose last one does not match the others: a typo.
    #[error("the check digit of ISBN-10 {0} is wrong")]
    BadIsbn10Check(String),
    /// Thirteen digits whose last one does not match the others: a typo.
    #[error("the check digit of ISBN-13 {0} is wrong")]
    BadIsbn13Check(String),
    /// An EAN-13 of something other than a book (books are `978`/`979`).
    #[error("an ISBN-13 starts with 978 or 979, {0} does not")]
    NotBookland(String),
}

/// Reads `text` as an ISBN the way a reader means it.
///
/// `None`: it is not shaped like an ISBN at all (after the spellings
/// [`Isbn13::parse`] accepts are undone, it is not 10 or 13 digits with at
/// most a final `X`), so it is something else, such as a title.
/// `Some(Err(_))`: it is ISBN-shaped but not a valid ISBN (a wrong check
/// digit, a non-book prefix); the reader meant an ISBN and should hear what is
/// wrong with it rather than get a keyword search.
/// `Some(Ok(_))`: a valid ISBN, in canonical ISBN-13 form.
///
/// [`Isbn13::parse`] gives exactly the same answer for `Some`, and an error
/// for `None`.
pub fn read(text: &str) -> Option<Result<Isbn13, IsbnError>> {
    Shaped::new(text).ok().map(Shaped::validate)
}

// === impl Isbn13 ===

impl Isbn13 {
    /// Parses what a reader typed or a scanner produced.
    ///
    /// Accepted: ASCII and full-width digits; `X`/`x`/`Ｘ`/`ｘ` as an
    /// ISBN-10's last character; hyphens and dashes of every width (`-`, `－`,
    /// U+2010–U+2015, the minus sign U+2212) and any whitespace (including the
    /// ideographic space U+3000 a Chinese keyboard types, NBSP and tabs) as
    /// separators; an `ISBN`/`isbn`/`ＩＳＢＮ` prefix, optionally with `-13`/`-10`
    /// and followed by `:`/`：`/spaces; WeChat's scan prefixes `EAN_13,`,
    /// `ISBN_13,` and `ISBN_10,`. An ISBN-10 is converted to its ISBN-13.
    pub fn parse(input: &str) -> Result<Self, IsbnError> {
        Shaped::new(input)?.validate()
    }

    /// The 13 ASCII digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISBN-10 form, which older records and some providers still key
    /// books by; `None` for `979-` ISBNs, which have none.
    pub fn to_isbn10(&self) -> Option<String> {
        let body = self
            .0
            .as_bytes()
            .get(3..12)
            .filter(|_| self.0.starts_with("978"))?;
        let mut isbn10: String = body.iter().copied().map(char::from).collect();
        isbn10.push(char::from(isbn10_check(body)));
        Some(isbn10)
    }
}

impl fmt::Display for Isbn13 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Isbn13 {
    type Err = IsbnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Isbn13 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// === impl Shaped ===

/// Ten or thirteen ASCII digits with at most a final `X`: what a reader meant
/// as an ISBN, whether or not it is a valid one.
enum Shaped {
    Ten([u8; 10]),
    Thirteen([u8; 13]),
}

impl Shaped {
    /// Undoes the spellings, or says why `text` is no ISBN at all.
    fn new(text: &str) -> Result<Self, IsbnError> {
        let chars = normalise(text)?;
        if let Some(x) = chars.iter().position(|&c| c == b'X')
            && x + 1 != chars.len()
        {
            return Err(IsbnError::BadCharacter('X'));
        }
        if let Ok(ten) = <[u8; 10]>::try_from(chars.as_slice()) {
            Ok(Self::Ten(ten))
        } else if let Ok(thirteen) = <[u8; 13]>::try_from(chars.as_slice()) {
            Ok(Self::Thirteen(thirteen))
        } else if chars.is_empty() {
            Err(IsbnError::Empty)
        } else {
            Err(IsbnError::WrongLength(chars.len()))
        }
    }

    fn validate(self) -> Result<Isbn13, IsbnError> {
        match self {
            Self::Ten(chars) => from_isbn10(&chars),
            Self::Thirteen(chars) => from_isbn13(&chars),
        }
    }
}

/// The ISBN's characters as ASCII digits and `X`, prefixes and separators
/// dropped, full-width forms narrowed.
fn normalise(text: &str) -> Result<Vec<u8>, IsbnError> {
    let mut out = Vec::with_capacity(13);
    for c in strip_prefixes(text.trim()).chars() {
        match narrow(c) {
            d @ '0'..='9' => out.push(d as u8),
            'X' | 'x' => out.push(b'X'),
            n if is_separator(n) => {}
            _ => return Err(IsbnError::BadCharacter(c)),
        }
    }
    Ok(out)
}

/// Drops WeChat's scan prefix and an `ISBN`, `ISBN：`, `ISBN-13:`... prefix.
fn strip_prefixes(text: &str) -> &str {
    let text = SCAN_PREFIXES
        .iter()
        .find_map(|prefix| strip_folded(text, prefix))
        .unwrap_or(text);
    let Some(rest) = strip_folded(text, "isbn") else {
        return text;
    };
    let rest = strip_form(rest).unwrap_or(rest);
    rest.trim_start_matches(|c: char| narrow(c) == ':' || c.is_whitespace())
}

/// `-13:` / ` 10：` after `ISBN`: taken only with the colon, which no ISBN
/// holds, so `ISBN 1012345678` still reads as an ISBN-10 starting `10`.
fn strip_form(rest: &str) -> Option<&str> {
    let rest = rest.trim_start_matches(|c| is_separator(narrow(c)));
    let rest = strip_folded(rest, "13").or_else(|| strip_folded(rest, "10"))?;
    let mut chars = rest.trim_start().chars();
    (chars.next().map(narrow) == Some(':')).then_some(chars.as_str())
}

/// `text` without `prefix`, comparing full-width and ASCII letters alike and
/// ignoring ASCII case.
fn strip_folded<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let mut chars = text.chars();
    for want in prefix.chars() {
        let got = narrow(chars.next()?);
        if !got.eq_ignore_ascii_case(&want) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// The ASCII character a full-width form (U+FF01–U+FF5E, what a Chinese
/// keyboard types in full-width mode) stands for; other characters as they are.
fn narrow(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// What readers put between the groups of an ISBN: hyphens and dashes of
/// every kind an input method produces, any whitespace, and the invisible
/// characters copy-and-paste carries along.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '\u{00AD}'
                | '\u{2010}'..='\u{2015}'
                | '\u{2212}'
                | '\u{FE58}'
                | '\u{FE63}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'
                | '\u{FEFF}'
        )
}

fn from_isbn10(chars: &[u8; 10]) -> Result<Isbn13, IsbnError> {
    let (body, check) = chars.split_at(9);
    if check != [isbn10_check(body)] {
        return Err(IsbnError::BadIsbn10Check(text(chars)));
    }
    let mut thirteen = [0; 13];
    thirteen[..3].copy_from_slice(b"978");
    thirteen[3..12].copy_from_slice(body);
    thirteen[12] = isbn13_check(&thirteen[..12]);
    Ok(Isbn13(text(&thirteen)))
}

fn from_isbn13(chars: &[u8; 13]) -> Result<Isbn13, IsbnError> {
    if chars[12] == b'X' {
        return Err(IsbnError::BadCharacter('X'));
    }
    if !(chars.starts_with(b"978") || chars.starts_with(b"979")) {
        return Err(IsbnError::NotBookland(text(chars)));
    }
    if chars[12] != isbn13_check(&chars[..12]) {
        return Err(IsbnError::BadIsbn13Check(text(chars)));
    }
    Ok(Isbn13(text(chars)))
}

fn text(chars: &[u8]) -> String {
    chars.iter().copied().map(char::from).collect()
}

fn digit(c: u8) -> u32 {
    u32::from(c.saturating_sub(b'0'))
}

/// Check character of an ISBN-10 from its first nine digits (weights 10..2,
/// mod 11; 10 is written `X`).
fn isbn10_check(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip((2..=10).rev())
        .map(|(&c, w)| digit(c) * w)
        .sum();
    match (11 - sum % 11) % 11 {
        10 => b'X',
        n => b'0' + n as u8,
    }
}

/// Check digit of an ISBN-13 from its first twelve digits (weights 1,3, mod 10).
fn isbn13_check(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip([1, 3].into_iter().cycle())
        .map(|(&c, w)| digit(c) * w)
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests;
