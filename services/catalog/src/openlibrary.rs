//! Open Library as a fallback for ISBN lookups: one call to
//! `/api/books?bibkeys=ISBN:…&jscmd=data&format=json`, which (unlike
//! `/isbn/{isbn}.json`) names the authors instead of linking to them.

use std::{collections::HashMap, time::SystemTime};

use doumi_proto::catalog::v1::{Book, Images, Tag};
use serde::Deserialize;

use crate::{
    book,
    http::HttpClient,
    isbn::Isbn13,
    provider::{BookProvider, ProviderError},
};

/// Subjects are free-form and many; a handful is enough to act as tags.
const MAX_TAGS: usize = 8;

/// One edition as `jscmd=data` describes it; every field may be missing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OpenLibraryEdition {
    pub url: String,
    pub title: String,
    pub subtitle: String,
    pub authors: Vec<Named>,
    pub publishers: Vec<Named>,
    pub publish_date: String,
    pub number_of_pages: Option<u32>,
    pub identifiers: Identifiers,
    pub subjects: Vec<Named>,
    pub cover: Option<Cover>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Identifiers {
    pub isbn_10: Vec<String>,
    pub isbn_13: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Cover {
    pub small: String,
    pub medium: String,
    pub large: String,
}

/// Maps an edition to a `Book`; `isbn` is the one asked for, used when the
/// record does not list its own.
pub fn to_book(edition: OpenLibraryEdition, isbn: &Isbn13, fetched_at: SystemTime) -> Book {
    let cover = edition.cover.unwrap_or_default();
    let first = |v: &[String]| v.first().cloned().unwrap_or_default();
    let isbn13 = match first(&edition.identifiers.isbn_13) {
        s if s.is_empty() => isbn.as_str().to_owned(),
        s => s,
    };
    let isbn10 = match first(&edition.identifiers.isbn_10) {
        s if s.is_empty() => isbn.to_isbn10().unwrap_or_default(),
        s => s,
    };
    Book {
        isbn10,
        isbn13,
        title: edition.title,
        subtitle: edition.subtitle,
        authors: names(edition.authors),
        publisher: names(edition.publishers)
            .into_iter()
            .next()
            .unwrap_or_default(),
        pubdate: Some(book::parse_pubdate(&edition.publish_date)),
        pages: edition
            .number_of_pages
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
        tags: names(edition.subjects)
            .into_iter()
            .take(MAX_TAGS)
            .map(|name| Tag { name, count: 0 })
            .collect(),
        images: Some(Images {
            small: cover.small,
            medium: cover.medium,
            large: cover.large,
        }),
        web_url: edition.url.replacen("http://", "https://", 1),
        provenance: Some(book::provenance("openlibrary", fetched_at)),
        ..Book::default()
    }
}

fn names(named: Vec<Named>) -> Vec<String> {
    named
        .into_iter()
        .map(|n| n.name.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Open Library's books API.
#[derive(Debug, Clone)]
pub struct OpenLibraryClient {
    http: HttpClient,
    base_url: String,
}

impl OpenLibraryClient {
    /// `base_url` like `https://openlibrary.org`, without a trailing slash.
    pub fn new(base_url: String, http: HttpClient) -> Self {
        Self { http, base_url }
    }
}

#[tonic::async_trait]
impl BookProvider for OpenLibraryClient {
    fn name(&self) -> &'static str {
        "openlibrary"
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        let bibkey = format!("ISBN:{isbn}");
        let url = format!("{}/api/books", self.base_url);
        let response = self
            .http
            .get(
                &url,
                &[("bibkeys", &bibkey), ("jscmd", "data"), ("format", "json")],
            )
            .await?;
        match response.status {
            200..=299 => {}
            404 => return Err(ProviderError::NotFound),
            429 => {
                return Err(ProviderError::RateLimited(
                    "openlibrary HTTP 429".to_owned(),
                ));
            }
            status => {
                return Err(ProviderError::Unavailable(format!(
                    "openlibrary HTTP {status}"
                )));
            }
        }
        // Keyed by the bibkey asked for; an unknown ISBN is `{}`.
        let mut found: HashMap<String, OpenLibraryEdition> = response.json(self.name())?;
        let edition = found.remove(&bibkey).ok_or(ProviderError::NotFound)?;
        if edition.title.trim().is_empty() {
            return Err(ProviderError::NotFound);
        }
        Ok(to_book(edition, isbn, SystemTime::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_edition_decodes_into_a_book() {
        let path = format!(
            "{}/../../tests/fixtures/openlibrary/openlibrary_api_books_jscmd_data.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let mut all: HashMap<String, OpenLibraryEdition> = serde_json::from_str(&text).unwrap();
        let edition = all.remove("ISBN:0439064872").unwrap();
        let isbn = Isbn13::parse("0439064872").unwrap();
        let book = to_book(edition, &isbn, SystemTime::UNIX_EPOCH);
        assert_eq!(book.title, "Harry Potter and the Chamber of Secrets");
        assert_eq!(book.authors, ["J. K. Rowling"]);
        assert_eq!(book.publisher, "Scholastic Inc.");
        assert_eq!(
            (book.isbn10.as_str(), book.isbn13.as_str()),
            ("0439064872", "9780439064873")
        );
        assert_eq!(book.pages, 344);
        let date = book.pubdate.unwrap();
        assert_eq!(
            (date.text.as_str(), date.year, date.month),
            ("2000-09", 2000, 9)
        );
        assert_eq!(
            book.images.unwrap().medium,
            "https://covers.openlibrary.org/b/id/11416356-M.jpg"
        );
        assert!(book.tags.iter().any(|t| t.name == "Fantasy fiction"));
        assert!(book.tags.len() <= MAX_TAGS);
        assert_eq!(
            book.web_url,
            "https://openlibrary.org/books/OL32784120M/Harry_Potter_and_the_Chamber_of_Secrets"
        );
        assert_eq!(book.provenance.unwrap().provider, "openlibrary");
        assert!(book.id.is_empty() && book.rating.is_none() && book.price.is_none());

        // A record without ISBNs of its own keeps the one asked for.
        let zen = all.remove("LCCN:93005405").unwrap();
        let asked = Isbn13::parse("0385472579").unwrap();
        let book = to_book(zen, &asked, SystemTime::UNIX_EPOCH);
        assert_eq!(book.isbn13, asked.as_str());
        assert_eq!(book.subtitle, "shouts of nothingness");
    }
}
