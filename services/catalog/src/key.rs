//! What a book is looked up and cached by: an ISBN-13 or a Douban subject id.

use std::fmt;

use crate::isbn::Isbn13;

/// A Douban subject id: 1 to 12 ASCII digits, e.g. `6709783`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DoubanId(String);

/// What is wrong with a would-be Douban id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Douban book id is 1 to 12 digits, like 6709783; {0:?} is not")]
pub struct DoubanIdError(String);

impl DoubanId {
    pub fn parse(input: &str) -> Result<Self, DoubanIdError> {
        let id = input.trim();
        if (1..=12).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(id.to_owned()))
        } else {
            Err(DoubanIdError(input.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DoubanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of one cached lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BookKey {
    Isbn(Isbn13),
    Douban(DoubanId),
}

impl fmt::Display for BookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Isbn(isbn) => write!(f, "isbn:{isbn}"),
            Self::Douban(id) => write!(f, "douban:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn douban_ids_are_digits() {
        assert_eq!(DoubanId::parse(" 6709783 ").unwrap().as_str(), "6709783");
        for bad in ["", "67a", "1234567890123", "-1", "６７"] {
            assert!(DoubanId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_print_as_their_redis_suffix() {
        let isbn = Isbn13::parse("7121139510").unwrap();
        assert_eq!(BookKey::Isbn(isbn).to_string(), "isbn:9787121139512");
        let id = DoubanId::parse("6709783").unwrap();
        assert_eq!(BookKey::Douban(id).to_string(), "douban:6709783");
    }
}
