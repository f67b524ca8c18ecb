//! The bundled sample catalog: real books in Douban v2's JSON shape, served
//! when no Douban base URL is configured so the stack works offline.

use std::{collections::HashMap, time::SystemTime};

use doumi_proto::catalog::v1::Book;

use crate::{
    isbn::Isbn13,
    key::DoubanId,
    providers::book,
    providers::douban::model::DoubanBook,
    providers::provider::{
        Ask, BookProvider, ProviderError, ProviderKind, SearchPage, SearchQuery,
    },
};

const SAMPLE_BOOKS: &str = include_str!("../../data/sample-books.json");

/// An in-memory catalog loaded from the bundled JSON.
#[derive(Debug)]
pub struct SampleCatalog {
    books: Vec<Book>,
    by_isbn: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

impl SampleCatalog {
    /// Loads the bundled books; the data is checked by this crate's tests, so a
    /// malformed entry here is a build defect, reported rather than panicked on.
    pub fn load() -> Result<Self, serde_json::Error> {
        let raw: Vec<DoubanBook> = serde_json::from_str(SAMPLE_BOOKS)?;
        let loaded_at = SystemTime::now();
        let books: Vec<Book> = raw
            .into_iter()
            .map(|b| book::from_douban(b, ProviderKind::Sample, loaded_at))
            .collect();
        let by_isbn = books
            .iter()
            .enumerate()
            .map(|(i, b)| (b.isbn13.clone(), i))
            .collect();
        let by_id = books
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id.clone(), i))
            .collect();
        Ok(Self {
            books,
            by_isbn,
            by_id,
        })
    }

    pub fn len(&self) -> usize {
        self.books.len()
    }
}

/// True when every keyword appears in the title or an author's name.
fn matches(book: &Book, terms: &[String]) -> bool {
    let haystack = format!(
        "{} {} {} {} {}",
        book.title,
        book.subtitle,
        book.origin_title,
        book.authors.join(" "),
        book.translators.join(" ")
    )
    .to_lowercase();
    terms.iter().all(|t| haystack.contains(t.as_str()))
}

#[tonic::async_trait]
impl BookProvider for SampleCatalog {
    fn name(&self) -> &'static str {
        ProviderKind::Sample.name()
    }

    fn can(&self, _ask: Ask) -> bool {
        true
    }

    async fn by_douban_id(&self, id: &DoubanId) -> Result<Book, ProviderError> {
        self.by_id
            .get(id.as_str())
            .map(|&i| self.books[i].clone())
            .ok_or(ProviderError::NotFound)
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        self.by_isbn
            .get(isbn.as_str())
            .map(|&i| self.books[i].clone())
            .ok_or(ProviderError::NotFound)
    }

    async fn search(&self, search: &SearchQuery) -> Result<SearchPage, ProviderError> {
        let (query, start, count) = (search.query(), search.start(), search.count());
        let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let mut hits: Vec<&Book> = self.books.iter().filter(|b| matches(b, &terms)).collect();
        // Most-read first, as Douban's own search tends to rank.
        hits.sort_by_key(|b| std::cmp::Reverse(b.rating.as_ref().map_or(0, |r| r.count)));
        Ok(SearchPage {
            total: u32::try_from(hits.len()).unwrap_or(u32::MAX),
            books: hits
                .into_iter()
                .skip(start as usize)
                .take(count as usize)
                .cloned()
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_books_are_many_real_and_valid() {
        let catalog = SampleCatalog::load().unwrap();
        assert!(catalog.len() >= 30, "only {} books", catalog.len());
        let mut chinese = 0;
        for book in &catalog.books {
            let isbn =
                Isbn13::parse(&book.isbn13).unwrap_or_else(|e| panic!("{}: {e}", book.title));
            assert_eq!(isbn.as_str(), book.isbn13);
            if !book.isbn10.is_empty() {
                assert_eq!(
                    isbn.to_isbn10().as_deref(),
                    Some(book.isbn10.as_str()),
                    "{}",
                    book.title
                );
            }
            assert!(
                !book.title.is_empty() && !book.authors.is_empty(),
                "{}",
                book.isbn13
            );
            chinese += usize::from(book.isbn13.starts_with("9787"));
        }
        assert!(
            chinese >= 15 && catalog.len() - chinese >= 5,
            "{chinese} Chinese books"
        );
        assert_eq!(catalog.by_isbn.len(), catalog.len(), "duplicate ISBNs");
        assert_eq!(catalog.by_id.len(), catalog.len(), "duplicate Douban ids");
    }

    #[tokio::test]
    async fn finds_by_isbn_and_by_title_or_author() {
        let catalog = SampleCatalog::load().unwrap();
        let book = catalog
            .by_isbn(&Isbn13::parse("7121139510").unwrap())
            .await
            .unwrap();
        assert_eq!(
            (book.title.as_str(), book.authors[0].as_str()),
            ("浪潮之巅", "吴军")
        );

        let by_id = catalog
            .by_douban_id(&DoubanId::parse("6709783").unwrap())
            .await
            .unwrap();
        assert_eq!(by_id.isbn13, "9787121139512");

        let by_author = catalog
            .search(&SearchQuery::new("吴军", 0, 10))
            .await
            .unwrap();
        assert!(by_author.books.iter().any(|b| b.title == "数学之美"));
        let by_title = catalog
            .search(&SearchQuery::new("introduction to algorithms", 0, 10))
            .await
            .unwrap();
        // The English original and its Chinese translation (by its original title).
        let isbns: Vec<&str> = by_title.books.iter().map(|b| b.isbn13.as_str()).collect();
        assert!(
            isbns.contains(&"9780262033848") && isbns.contains(&"9787111407010"),
            "{isbns:?}"
        );
        let two_terms = catalog
            .search(&SearchQuery::new("东野圭吾 白夜", 0, 10))
            .await
            .unwrap();
        assert_eq!(two_terms.total, 1);
        let none = catalog
            .search(&SearchQuery::new("no such book anywhere", 0, 10))
            .await
            .unwrap();
        assert_eq!(none.total, 0);
    }
}
