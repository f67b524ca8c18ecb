//! Google Books as a fallback for ISBN lookups:
//! `/books/v1/volumes?q=isbn:…` (with `&key=` when an apikey is set).

use std::time::SystemTime;

use doumi_proto::catalog::v1::{Book, Images, Price, Rating, Tag};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    book,
    http::HttpClient,
    isbn::Isbn13,
    provider::{BookProvider, ProviderError},
};

/// `/books/v1/volumes`; no match is `{"totalItems": 0}` with no `items` at all.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Volumes {
    pub items: Vec<Volume>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Volume {
    pub volume_info: VolumeInfo,
    pub sale_info: SaleInfo,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeInfo {
    pub title: String,
    pub subtitle: String,
    pub authors: Vec<String>,
    pub publisher: String,
    pub published_date: String,
    pub description: String,
    pub industry_identifiers: Vec<Identifier>,
    pub page_count: Option<u32>,
    pub categories: Vec<String>,
    /// 0-5 stars.
    pub average_rating: Option<f64>,
    pub ratings_count: Option<u32>,
    pub image_links: ImageLinks,
    pub info_link: String,
    pub canonical_volume_link: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Identifier {
    /// `ISBN_10`, `ISBN_13` or `OTHER`.
    #[serde(rename = "type")]
    pub kind: String,
    pub identifier: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageLinks {
    pub small_thumbnail: String,
    pub thumbnail: String,
    pub small: String,
    pub medium: String,
    pub large: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SaleInfo {
    pub list_price: Option<ListPrice>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListPrice {
    pub amount: f64,
    pub currency_code: String,
}

impl VolumeInfo {
    fn identifier(&self, kind: &str) -> Option<&str> {
        self.industry_identifiers
            .iter()
            .find(|i| i.kind == kind)
            .map(|i| i.identifier.as_str())
    }

    /// Whether this volume is the edition with `isbn`.
    fn is(&self, isbn: &Isbn13) -> bool {
        self.industry_identifiers
            .iter()
            .any(|i| Isbn13::parse(&i.identifier).is_ok_and(|own| own == *isbn))
    }
}

/// Maps a volume to a `Book`; `isbn` is the one asked for.
pub fn to_book(volume: Volume, isbn: &Isbn13, fetched_at: SystemTime) -> Book {
    let info = volume.volume_info;
    let isbn13 = info
        .identifier("ISBN_13")
        .unwrap_or(isbn.as_str())
        .to_owned();
    let isbn10 = info
        .identifier("ISBN_10")
        .map(str::to_owned)
        .or_else(|| isbn.to_isbn10())
        .unwrap_or_default();
    let links = info.image_links;
    let or = |a: String, b: &str| if a.is_empty() { b.to_owned() } else { a };
    let medium = or(links.medium, &links.thumbnail);
    let large = or(links.large, &medium);
    let small = or(links.small, &links.small_thumbnail);
    Book {
        isbn10,
        isbn13,
        title: info.title,
        subtitle: info.subtitle,
        authors: info.authors,
        publisher: info.publisher,
        pubdate: Some(book::parse_pubdate(&info.published_date)),
        pages: info
            .page_count
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
        rating: info.average_rating.map(|stars| Rating {
            // Douban's scale, so every client reads one scale.
            average: stars * 2.0,
            count: info
                .ratings_count
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
            rated: stars > 0.0,
        }),
        price: volume
            .sale_info
            .list_price
            .filter(|p| p.amount > 0.0 && !p.currency_code.is_empty())
            .map(|p| Price {
                text: format!("{} {:.2}", p.currency_code, p.amount),
                amount_minor: (p.amount * 100.0).round() as i64,
                currency: p.currency_code,
            }),
        tags: info
            .categories
            .into_iter()
            .map(|name| Tag { name, count: 0 })
            .collect(),
        images: Some(Images {
            small,
            medium,
            large,
        }),
        summary: info.description,
        web_url: or(info.canonical_volume_link, &info.info_link),
        provenance: Some(book::provenance("googlebooks", fetched_at)),
        ..Book::default()
    }
}

/// Google Books' volumes API.
#[derive(Debug, Clone)]
pub struct GoogleBooksClient {
    http: HttpClient,
    base_url: String,
    apikey: Option<SecretString>,
}

impl GoogleBooksClient {
    /// `base_url` like `https://www.googleapis.com`, without a trailing slash.
    pub fn new(base_url: String, apikey: Option<SecretString>, http: HttpClient) -> Self {
        Self {
            http,
            base_url,
            apikey,
        }
    }
}

#[tonic::async_trait]
impl BookProvider for GoogleBooksClient {
    fn name(&self) -> &'static str {
        "googlebooks"
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        let url = format!("{}/books/v1/volumes", self.base_url);
        let q = format!("isbn:{isbn}");
        let mut query = vec![("q", q.as_str())];
        if let Some(key) = &self.apikey {
            query.push(("key", key.expose_secret()));
        }
        let response = self.http.get(&url, &query).await?;
        match response.status {
            200..=299 => {}
            404 => return Err(ProviderError::NotFound),
            // Quota errors: 429, or 403 with reason rateLimitExceeded.
            429 => {
                return Err(ProviderError::RateLimited(
                    "googlebooks HTTP 429".to_owned(),
                ));
            }
            403 if String::from_utf8_lossy(&response.body).contains("imitExceeded") => {
                return Err(ProviderError::RateLimited(
                    "googlebooks quota exceeded".to_owned(),
                ));
            }
            400 | 401 | 403 => {
                return Err(ProviderError::Rejected(format!(
                    "googlebooks HTTP {} (apikey?)",
                    response.status
                )));
            }
            status => {
                return Err(ProviderError::Unavailable(format!(
                    "googlebooks HTTP {status}"
                )));
            }
        }
        let volumes: Volumes = response.json(self.name())?;
        // `q=isbn:` is a search: prefer the volume that really has this ISBN.
        let mut items = volumes.items;
        let at = items.iter().position(|v| v.volume_info.is(isbn));
        let volume = match at {
            Some(i) => items.swap_remove(i),
            None => items.into_iter().next().ok_or(ProviderError::NotFound)?,
        };
        if volume.volume_info.title.trim().is_empty() {
            return Err(ProviderError::NotFound);
        }
        Ok(to_book(volume, isbn, SystemTime::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Volumes {
        let path = format!(
            "{}/../../tests/fixtures/googlebooks/googlebooks_q_isbn_0747532699.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn recorded_volume_decodes_into_a_book() {
        let isbn = Isbn13::parse("0747532699").unwrap();
        let volume = fixture().items.remove(0);
        assert!(volume.volume_info.is(&isbn));
        let book = to_book(volume, &isbn, SystemTime::UNIX_EPOCH);
        assert_eq!(book.title, "Harry Potter 1 and the Philosopher's Stone");
        assert_eq!(book.authors, ["J. K. Rowling"]);
        assert_eq!(book.publisher, "Bloomsbury Pub Limited");
        assert_eq!(
            (book.isbn10.as_str(), book.isbn13.as_str()),
            ("0747532699", "9780747532699")
        );
        assert_eq!(book.pages, 223);
        assert_eq!(book.pubdate.map(|d| (d.year, d.month)), Some((1997, 0)));
        let rating = book.rating.unwrap();
        assert!((rating.average - 9.0).abs() < 1e-9 && rating.count == 19 && rating.rated);
        assert_eq!(book.tags[0].name, "Juvenile Fiction");
        assert!(book.summary.starts_with("Harry Potter is an ordinary boy"));
        let images = book.images.unwrap();
        assert!(images.small.contains("zoom=5") && images.medium.contains("zoom=1"));
        assert!(
            book.web_url
                .starts_with("https://books.google.com/books/about/")
        );
        assert_eq!(book.provenance.unwrap().provider, "googlebooks");
        assert!(book.price.is_none() && book.id.is_empty());
    }

    #[test]
    fn no_match_has_no_items_key() {
        let none: Volumes =
            serde_json::from_str(r#"{"kind":"books#volumes","totalItems":0}"#).unwrap();
        assert!(none.items.is_empty());
    }
}
