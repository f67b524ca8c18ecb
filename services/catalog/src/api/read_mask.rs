//! Partial responses (Google's AIP-157): a caller names the `Book` fields it
//! wants in `read_mask`, and only those are copied, encoded and sent. The bot
//! shows a dozen short fields of a book whose summary and table of contents
//! run to kilobytes; asking for just those is most of the cost of a lookup.

use std::sync::Arc;

use doumi_proto::catalog::v1::Book;
use prost_types::FieldMask;

/// Declares every top-level `Book` field once: the names a mask may use and
/// how each is copied.
macro_rules! book_fields {
    ($($field:ident),* $(,)?) => {
        /// The names a read mask may use, in the proto's order.
        pub const FIELDS: &[&str] = &[$(stringify!($field)),*];

        /// Each field's place in [`FIELDS`] (and bit in a mask).
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum Field {
            $($field),*
        }

        /// The place of the field named `name` in [`FIELDS`]. A `match`
        /// rather than a search: compiled to a switch on the length, it
        /// compares a path with one or two names, not with every one.
        fn index_of(name: &str) -> Option<u32> {
            match name {
                $(stringify!($field) => Some(Field::$field as u32),)*
                _ => None,
            }
        }

        /// Copies the fields whose bit is set in `bits` from `from`.
        fn copy_fields(bits: u32, from: &Book) -> Book {
            let mut book = Book::default();
            let mut bit = 1u32;
            $(
                if bits & bit != 0 {
                    book.$field = from.$field.clone();
                }
                bit <<= 1;
            )*
            let _ = bit;
            book
        }
    };
}

book_fields!(
    id,
    isbn10,
    isbn13,
    title,
    subtitle,
    origin_title,
    alt_title,
    authors,
    translators,
    publisher,
    pubdate,
    pages,
    price,
    binding,
    rating,
    tags,
    images,
    summary,
    author_intro,
    catalog,
    series,
    web_url,
    provenance,
    ebook_url,
    ebook_price,
);

// One bit per field.
const _: () = assert!(FIELDS.len() <= 32);

/// Which fields of a `Book` to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMask {
    /// One bit per entry of [`FIELDS`]; `None` = every field.
    bits: Option<u32>,
}

/// A mask naming a field `Book` does not have.
#[derive(Debug, thiserror::Error)]
#[error("read_mask names {0:?}, which is not a field of Book")]
pub struct UnknownField(pub String);

impl ReadMask {
    /// Every field: what callers without a mask get.
    pub const ALL: Self = Self { bits: None };

    /// The mask a request carries; unset or empty = every field. A nested
    /// path (`rating.average`) selects its top-level field.
    pub fn parse(mask: Option<&FieldMask>) -> Result<Self, UnknownField> {
        let Some(mask) = mask.filter(|m| !m.paths.is_empty()) else {
            return Ok(Self::ALL);
        };
        let mut bits = 0u32;
        for path in &mask.paths {
            // A byte scan: `split('.')` costs more than the rest of the
            // mask, and every lookup the bot makes carries one.
            let top = path
                .bytes()
                .position(|b| b == b'.')
                .map_or(path.as_str(), |dot| &path[..dot]);
            let index = index_of(top).ok_or_else(|| UnknownField(path.clone()))?;
            bits |= 1 << index;
        }
        Ok(Self { bits: Some(bits) })
    }

    /// The book as the caller asked for it: the shared copy itself when every
    /// field is wanted and nobody else holds it, otherwise the fields copied.
    pub fn apply(&self, book: Arc<Book>) -> Book {
        match self.bits {
            None => Arc::unwrap_or_clone(book),
            Some(bits) => copy_fields(bits, &book),
        }
    }
}

#[cfg(test)]
mod tests {
    use doumi_proto::catalog::v1::Rating;

    use super::*;

    fn mask(paths: &[&str]) -> Option<FieldMask> {
        Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    fn book() -> Arc<Book> {
        Arc::new(Book {
            title: "浪潮之巅".into(),
            authors: vec!["吴军".into()],
            summary: "长".repeat(1000),
            rating: Some(Rating {
                average: 9.1,
                count: 26845,
                rated: true,
                source: "douban".into(),
                scale: 10,
            }),
            ..Book::default()
        })
    }

    #[test]
    fn only_the_named_fields_are_returned() {
        let masked = ReadMask::parse(mask(&["title", "rating.average"]).as_ref())
            .unwrap()
            .apply(book());
        assert_eq!(masked.title, "浪潮之巅");
        assert_eq!(masked.rating.map(|r| r.count), Some(26845));
        assert!(masked.summary.is_empty() && masked.authors.is_empty());
    }

    #[test]
    fn no_mask_is_the_whole_book_and_unknown_fields_are_refused() {
        assert_eq!(ReadMask::parse(None).unwrap().apply(book()), *book());
        assert_eq!(ReadMask::parse(mask(&[]).as_ref()).unwrap(), ReadMask::ALL);
        let error = ReadMask::parse(mask(&["title", "colour"]).as_ref()).unwrap_err();
        assert_eq!(error.0, "colour");
    }

    #[test]
    fn every_book_field_can_be_named() {
        // A field added to the proto but not to FIELDS would be unreachable.
        let descriptor = Book::default();
        let encoded_names = format!("{descriptor:?}");
        for (index, field) in FIELDS.iter().enumerate() {
            assert!(encoded_names.contains(&format!("{field}:")), "{field}");
            assert_eq!(index_of(field), u32::try_from(index).ok(), "{field}");
        }
        assert_eq!(FIELDS.len(), encoded_names.matches(": ").count());
    }
}
