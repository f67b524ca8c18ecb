//! Search page tokens: where the next page of a search starts, handed to
//! the caller as an opaque string and checked when it comes back.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};

use crate::{api::errors::CatalogError, providers::SearchQuery};

/// Largest page we return, whatever the caller asks for.
pub(super) const MAX_PAGE_SIZE: u32 = 50;
/// Deepest offset we page to (Douban itself stops being useful well before).
pub(super) const MAX_OFFSET: u32 = 1000;

/// Where the next search page starts, handed to the caller as an opaque
/// string: base64url of a version byte, the offset, the page size and a
/// truncated HMAC-SHA1 over those and the query.
///
/// Integrity-checked, not secret: the MAC key is a constant, so that a token
/// stays valid on every catalog replica and across restarts without any
/// shared configuration. What the MAC protects against is a client building
/// or editing tokens (which would freeze the format) or replaying one on
/// another query, not a determined forger. Binding the query into the MAC is
/// what rejects a token from another search; the offset cap
/// ([`MAX_OFFSET`]), checked after the MAC, is what keeps even a forged token
/// from paging deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PageToken {
    pub(super) offset: u32,
    pub(super) page_size: u32,
}

type PageTokenMac = hmac::Hmac<sha1::Sha1>;

const PAGE_TOKEN_VERSION: u8 = 1;
const PAGE_TOKEN_KEY: &[u8] = b"doumi.catalog.v1.SearchBooks.page_token";
/// 80 bits of MAC: plenty for a token that only has to resist guessing.
const PAGE_TOKEN_MAC_LEN: usize = 10;
/// version + offset (u32) + page size (u8) + MAC.
const PAGE_TOKEN_LEN: usize = 1 + 4 + 1 + PAGE_TOKEN_MAC_LEN;

impl PageToken {
    pub(super) fn encode(self, query: &str) -> String {
        let mut bytes = Vec::with_capacity(PAGE_TOKEN_LEN);
        bytes.push(PAGE_TOKEN_VERSION);
        bytes.extend_from_slice(&self.offset.to_be_bytes());
        bytes.push(u8::try_from(self.page_size).unwrap_or(u8::MAX));
        let tag = mac(&bytes, query).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..PAGE_TOKEN_MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `None` for the first page; an error for anything this service did
    /// not issue for `query`.
    pub(super) fn parse(token: &str, query: &str) -> Result<Option<Self>, CatalogError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| CatalogError::InvalidPageToken)?;
        let [version, o0, o1, o2, o3, size, ref tag @ ..] = bytes[..] else {
            return Err(CatalogError::InvalidPageToken);
        };
        let fields = &bytes[..bytes.len() - tag.len()];
        if version != PAGE_TOKEN_VERSION
            || tag.len() != PAGE_TOKEN_MAC_LEN
            // Compared in constant time.
            || mac(fields, query).verify_truncated_left(tag).is_err()
        {
            return Err(CatalogError::InvalidPageToken);
        }
        let offset = u32::from_be_bytes([o0, o1, o2, o3]);
        let page_size = u32::from(size);
        if offset > MAX_OFFSET || page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(CatalogError::InvalidPageToken);
        }
        Ok(Some(Self { offset, page_size }))
    }
}

/// The MAC over the token's fields and the query. The query is normalised
/// as the search cache keys it, so a token stays valid for any spelling of
/// the same search ("Mistborn" and " mistborn ").
fn mac(fields: &[u8], query: &str) -> PageTokenMac {
    let key = SearchQuery::new(query, 0, 0);
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <PageTokenMac as KeyInit>::new_from_slice(PAGE_TOKEN_KEY)
        .expect("HMAC accepts keys of any length");
    mac.update(fields);
    mac.update(key.query().as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(offset: u32, page_size: u32) -> PageToken {
        PageToken { offset, page_size }
    }

    #[test]
    fn a_page_token_round_trips_for_its_own_query() {
        let issued = token(20, 10).encode("浪潮之巅");
        assert_eq!(
            PageToken::parse(&issued, "浪潮之巅").ok().flatten(),
            Some(token(20, 10))
        );
        assert_eq!(PageToken::parse("", "浪潮之巅").ok().flatten(), None);
        let issued = token(5, 5).encode("mistborn");
        assert_eq!(
            PageToken::parse(&issued, "  MISTBORN ").ok().flatten(),
            Some(token(5, 5)),
            "the same search, spelled differently"
        );
    }

    #[test]
    fn forged_truncated_or_borrowed_tokens_are_refused() {
        let issued = token(20, 10).encode("吴军");
        let mut flipped = URL_SAFE_NO_PAD.decode(&issued).unwrap_or_default();
        flipped[4] ^= 0x01; // offset 20 -> 21
        let cases = [
            PageToken::parse(&issued, "浪潮之巅"), // another query
            PageToken::parse(&issued[..issued.len() - 2], "吴军"), // truncated
            PageToken::parse(&URL_SAFE_NO_PAD.encode(flipped), "吴军"),
            PageToken::parse("20", "吴军"), // the old plain-offset tokens
            PageToken::parse("not base64 !", "吴军"),
            PageToken::parse(&token(MAX_OFFSET + 1, 10).encode("吴军"), "吴军"),
            PageToken::parse(&token(0, MAX_PAGE_SIZE + 1).encode("吴军"), "吴军"),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            assert!(
                matches!(case, Err(CatalogError::InvalidPageToken)),
                "case {i}: {case:?}"
            );
        }
    }
}
