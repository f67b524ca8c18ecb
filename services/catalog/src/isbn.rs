//! ISBN rules in one place: normalising what readers and scanners send,
//! validating check digits, and converting ISBN-10 to ISBN-13.

use std::fmt;

/// A validated ISBN-13: the one key books are looked up and cached by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Isbn13(String);

/// What is wrong with a would-be ISBN, in words a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsbnError {
    #[error("an ISBN is empty")]
    Empty,
    #[error("an ISBN may only hold digits, hyphens, spaces and a final X, found {0:?}")]
    BadCharacter(char),
    #[error("an ISBN has 10 or 13 digits, this one has {0}")]
    WrongLength(usize),
    #[error("the check digit of ISBN-10 {0} is wrong")]
    BadIsbn10Check(String),
    #[error("the check digit of ISBN-13 {0} is wrong")]
    BadIsbn13Check(String),
    #[error("an ISBN-13 starts with 978 or 979, {0} does not")]
    NotBookland(String),
}

impl Isbn13 {
    /// Parses what a reader typed or a scanner produced: `9787121139512`,
    /// `978-7-121-13951-2`, `7121139510`, full-width digits, or WeChat's
    /// `EAN_13,9787121139512` scan result.
    pub fn parse(input: &str) -> Result<Self, IsbnError> {
        let input = input.trim();
        let input = input
            .strip_prefix("EAN_13,")
            .or_else(|| input.strip_prefix("ISBN_13,"))
            .or_else(|| input.strip_prefix("ISBN_10,"))
            .unwrap_or(input);
        let input = input
            .strip_prefix("ISBN")
            .or_else(|| input.strip_prefix("isbn"))
            .unwrap_or(input)
            .trim_start_matches([':', '：', ' ']);
        let chars = normalise(input)?;
        match chars.len() {
            0 => Err(IsbnError::Empty),
            10 => from_isbn10(&chars),
            13 => from_isbn13(&chars),
            n => Err(IsbnError::WrongLength(n)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISBN-10 form; `None` for `979-` ISBNs, which have none.
    pub fn to_isbn10(&self) -> Option<String> {
        let body = self.0.strip_prefix("978")?;
        let digits: Vec<u32> = body[..9].chars().filter_map(|c| c.to_digit(10)).collect();
        let mut isbn10: String = body[..9].to_owned();
        isbn10.push(isbn10_check(&digits));
        Some(isbn10)
    }
}

impl fmt::Display for Isbn13 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fullwidth_to_ascii(c: char) -> char {
    match c {
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
        'Ｘ' | 'ｘ' => 'X',
        _ => c,
    }
}

/// Drops separators, maps full-width digits, upper-cases `x`.
fn normalise(input: &str) -> Result<Vec<char>, IsbnError> {
    let mut out = Vec::with_capacity(13);
    for c in input.chars() {
        match fullwidth_to_ascii(c) {
            '-' | ' ' | '\u{3000}' | '‐' | '–' => {}
            d @ '0'..='9' => out.push(d),
            'x' | 'X' => out.push('X'),
            other => return Err(IsbnError::BadCharacter(other)),
        }
    }
    Ok(out)
}

fn from_isbn10(chars: &[char]) -> Result<Isbn13, IsbnError> {
    let text: String = chars.iter().collect();
    if let Some(pos) = chars.iter().position(|&c| c == 'X')
        && pos != 9
    {
        return Err(IsbnError::BadCharacter('X'));
    }
    let digits: Vec<u32> = chars[..9].iter().filter_map(|c| c.to_digit(10)).collect();
    if isbn10_check(&digits) != chars[9] {
        return Err(IsbnError::BadIsbn10Check(text));
    }
    let mut thirteen: Vec<u32> = vec![9, 7, 8];
    thirteen.extend(&digits);
    let mut out: String = "978".to_owned();
    out.extend(&chars[..9]);
    out.push(isbn13_check(&thirteen));
    Ok(Isbn13(out))
}

fn from_isbn13(chars: &[char]) -> Result<Isbn13, IsbnError> {
    let text: String = chars.iter().collect();
    if chars.contains(&'X') {
        return Err(IsbnError::BadCharacter('X'));
    }
    if !(text.starts_with("978") || text.starts_with("979")) {
        return Err(IsbnError::NotBookland(text));
    }
    let digits: Vec<u32> = chars[..12].iter().filter_map(|c| c.to_digit(10)).collect();
    if isbn13_check(&digits) != chars[12] {
        return Err(IsbnError::BadIsbn13Check(text));
    }
    Ok(Isbn13(text))
}

/// Check character of an ISBN-10 from its first nine digits (weights 10..2, mod 11).
fn isbn10_check(digits: &[u32]) -> char {
    let sum: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
    match (11 - sum % 11) % 11 {
        10 => 'X',
        n => char::from_digit(n, 10).unwrap_or('0'),
    }
}

/// Check digit of an ISBN-13 from its first twelve digits (weights 1,3, mod 10).
fn isbn13_check(digits: &[u32]) -> char {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
        .sum();
    char::from_digit((10 - sum % 10) % 10, 10).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRS: &[(&str, &str)] = &[
        ("9787121139512", "7121139510"),
        ("9787115282828", "711528282X"),
        ("9787111127482", "711112748X"),
        ("9787544242516", "754424251X"),
        ("9787020042494", "702004249X"),
        ("9787505715660", "7505715666"),
        ("9780306406157", "0306406152"),
    ];

    #[test]
    fn isbn10_and_isbn13_agree_both_ways() {
        for (thirteen, ten) in PAIRS {
            assert_eq!(Isbn13::parse(ten).unwrap().as_str(), *thirteen, "{ten}");
            assert_eq!(
                Isbn13::parse(thirteen).unwrap().to_isbn10().as_deref(),
                Some(*ten)
            );
        }
    }

    #[test]
    fn separators_fullwidth_lowercase_x_and_scan_results_are_accepted() {
        let want = "9787121139512";
        for input in [
            "978-7-121-13951-2",
            "978 7 121 13951 2",
            "９７８７１２１１３９５１２",
            "EAN_13,9787121139512",
            "ISBN 978-7-121-13951-2",
            " 9787121139512 ",
        ] {
            assert_eq!(Isbn13::parse(input).unwrap().as_str(), want, "{input}");
        }
        assert_eq!(
            Isbn13::parse("711528282x").unwrap().as_str(),
            "9787115282828"
        );
    }

    #[test]
    fn bad_isbns_say_what_is_wrong() {
        assert_eq!(Isbn13::parse(""), Err(IsbnError::Empty));
        assert_eq!(
            Isbn13::parse("97871210703898"),
            Err(IsbnError::WrongLength(14))
        );
        assert!(matches!(
            Isbn13::parse("9787121139513"),
            Err(IsbnError::BadIsbn13Check(_))
        ));
        assert!(matches!(
            Isbn13::parse("7121139511"),
            Err(IsbnError::BadIsbn10Check(_))
        ));
        assert!(matches!(
            Isbn13::parse("1234567890123"),
            Err(IsbnError::NotBookland(_))
        ));
        assert_eq!(
            Isbn13::parse("71211X9510"),
            Err(IsbnError::BadCharacter('X'))
        );
        assert_eq!(
            Isbn13::parse("978a121139512"),
            Err(IsbnError::BadCharacter('a'))
        );
        assert!(Isbn13::parse("EAN_13,9787121139512").is_ok());
    }

    #[test]
    fn isbn_979_has_no_isbn10() {
        let isbn = Isbn13::parse("9791032305690").unwrap();
        assert_eq!(isbn.to_isbn10(), None);
    }
}
