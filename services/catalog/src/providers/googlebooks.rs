//! Google Books as a fallback for ISBN lookups and keyword search, both
//! through `/books/v1/volumes?q=…` (`q=isbn:…` for an ISBN; `&key=` when an
//! apikey is set).

use std::time::SystemTime;

use doumi_proto::catalog::v1::{Book, Images, Price, Rating, Tag};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    isbn::Isbn13,
    providers::book,
    providers::http::{HttpClient, RawResponse},
    providers::provider::{
        Ask, BookProvider, ProviderError, ProviderKind, SearchPage, SearchQuery,
    },
};

/// Largest `maxResults` Google Books accepts; more is a 400.
const MAX_RESULTS: u32 = 40;

/// `/books/v1/volumes`; no match is `{"totalItems": 0}` with no `items` at all.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Volumes {
    /// Matches in all, as Google estimates them (the estimate may change
    /// from one page to the next).
    pub total_items: u32,
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
    pub extra_large: String,
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

/// Maps a volume to a `Book`; `isbn` is the one asked for, used when the
/// volume does not list a valid ISBN of its own.
pub fn to_book(volume: Volume, isbn: &Isbn13, fetched_at: SystemTime) -> Book {
    map_volume(volume, Some(isbn), fetched_at)
}

/// Maps a search result to a `Book`, known by the ISBN it lists (none when
/// it lists no valid one).
pub fn search_result_to_book(volume: Volume, fetched_at: SystemTime) -> Book {
    map_volume(volume, None, fetched_at)
}

/// Google serves its images over https too; WeChat and browsers would
/// rather not fetch covers over plain http.
fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}

/// The first non-empty link, as https.
fn first_of(links: &[&str]) -> String {
    links
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or_else(String::new, |l| https(l.trim()))
}

fn map_volume(volume: Volume, asked: Option<&Isbn13>, fetched_at: SystemTime) -> Book {
    let info = volume.volume_info;
    let own = ["ISBN_13", "ISBN_10"]
        .into_iter()
        .filter_map(|kind| info.identifier(kind))
        .find_map(|id| Isbn13::parse(id).ok());
    let isbn = own.as_ref().or(asked);
    let isbn13 = isbn.map(|i| i.as_str().to_owned()).unwrap_or_default();
    let isbn10 = info
        .identifier("ISBN_10")
        .map(str::to_owned)
        .or_else(|| isbn.and_then(Isbn13::to_isbn10))
        .unwrap_or_default();
    let l = &info.image_links;
    // A WeChat card shows `large`: the largest image there is.
    let large = first_of(&[
        &l.extra_large,
        &l.large,
        &l.medium,
        &l.small,
        &l.thumbnail,
        &l.small_thumbnail,
    ]);
    let medium = first_of(&[&l.medium, &l.thumbnail, &l.small, &l.small_thumbnail]);
    let small = first_of(&[&l.small, &l.small_thumbnail, &l.thumbnail]);
    let web_url = first_of(&[&info.canonical_volume_link, &info.info_link]);
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
            // Douban's scale, so every client compares one scale.
            average: stars * 2.0,
            source: ProviderKind::GoogleBooks.name().to_owned(),
            scale: book::FIVE_STARS,
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
        web_url,
        provenance: Some(book::provenance(ProviderKind::GoogleBooks, fetched_at)),
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

    /// `GET /books/v1/volumes` with `params`, and the apikey when one is set.
    async fn volumes(&self, params: &[(&str, &str)]) -> Result<Volumes, ProviderError> {
        let url = format!("{}/books/v1/volumes", self.base_url);
        let mut query = params.to_vec();
        if let Some(key) = &self.apikey {
            query.push(("key", key.expose_secret()));
        }
        let response = self.http.get(&url, &query).await?;
        check(&response)?;
        response.json(self.name())
    }
}

/// What an answer's status says, before its body is read.
fn check(response: &RawResponse) -> Result<(), ProviderError> {
    match response.status {
        200..=299 => Ok(()),
        404 => Err(ProviderError::NotFound),
        // Quota errors: 429, or 403 with reason rateLimitExceeded.
        429 => Err(ProviderError::RateLimited(
            "googlebooks HTTP 429".to_owned(),
        )),
        403 if String::from_utf8_lossy(&response.body).contains("imitExceeded") => Err(
            ProviderError::RateLimited("googlebooks quota exceeded".to_owned()),
        ),
        400 | 401 | 403 => Err(ProviderError::Rejected(format!(
            "googlebooks HTTP {} (apikey?)",
            response.status
        ))),
        status => Err(ProviderError::Unavailable(format!(
            "googlebooks HTTP {status}"
        ))),
    }
}

#[tonic::async_trait]
impl BookProvider for GoogleBooksClient {
    fn name(&self) -> &'static str {
        ProviderKind::GoogleBooks.name()
    }

    fn can(&self, ask: Ask) -> bool {
        matches!(ask, Ask::Isbn | Ask::Search)
    }

    async fn by_isbn(&self, isbn: &Isbn13) -> Result<Book, ProviderError> {
        let q = format!("isbn:{isbn}");
        let volumes = self.volumes(&[("q", q.as_str())]).await?;
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

    /// `startIndex` counts results, like the catalog's page tokens; a page
    /// larger than Google allows comes back shorter, and the next page starts
    /// after what was returned.
    async fn search(&self, search: &SearchQuery) -> Result<SearchPage, ProviderError> {
        let (query, start, count) = (search.query(), search.start(), search.count());
        let start_index = start.to_string();
        let max_results = count.clamp(1, MAX_RESULTS).to_string();
        let params = [
            ("q", query),
            ("startIndex", start_index.as_str()),
            ("maxResults", max_results.as_str()),
            // Magazines are not books (Douban leaves them out of search too).
            ("printType", "books"),
        ];
        let volumes = match self.volumes(&params).await {
            // A search always has an answer, if only an empty one.
            Err(ProviderError::NotFound) => {
                return Err(ProviderError::Unavailable(
                    "googlebooks has no /books/v1/volumes (HTTP 404)".to_owned(),
                ));
            }
            other => other?,
        };
        let now = SystemTime::now();
        Ok(SearchPage {
            total: volumes.total_items,
            books: volumes
                .items
                .into_iter()
                .filter(|v| !v.volume_info.title.trim().is_empty())
                .map(|v| search_result_to_book(v, now))
                .collect(),
        })
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
        assert_eq!(none.total_items, 0);
    }

    #[test]
    fn recorded_volume_as_a_search_result_has_its_own_isbn_and_https_images() {
        let volumes = fixture();
        assert_eq!(volumes.total_items, 1);
        let volume = volumes.items.into_iter().next().unwrap();
        let book = search_result_to_book(volume, SystemTime::UNIX_EPOCH);
        assert_eq!(book.title, "Harry Potter 1 and the Philosopher's Stone");
        assert_eq!(book.authors, ["J. K. Rowling"]);
        assert_eq!(
            (book.isbn10.as_str(), book.isbn13.as_str()),
            ("0747532699", "9780747532699")
        );
        let images = book.images.unwrap();
        // Only thumbnails: the larger of the two is the card's cover.
        assert_eq!(
            images.large,
            "https://books.google.com/books/content?id=yZ1APgAACAAJ&printsec=frontcover&img=1&zoom=1&source=gbs_api"
        );
        assert!(images.small.starts_with("https://") && images.small.contains("zoom=5"));
        assert_eq!(
            book.web_url,
            "https://books.google.com/books/about/Harry_Potter_1_and_the_Philosopher_s_Sto.html?hl=&id=yZ1APgAACAAJ"
        );
        assert_eq!(book.provenance.unwrap().provider, "googlebooks");
    }

    #[test]
    fn search_results_take_the_largest_image_and_any_valid_isbn() {
        // The documented answer shape, with every image size and an ISBN-10 only.
        let volumes: Volumes = serde_json::from_str(
            r#"{"kind": "books#volumes", "totalItems": 412, "items": [
              {"id": "a", "volumeInfo": {"title": "三体", "authors": ["刘慈欣"],
                "industryIdentifiers": [{"type": "OTHER", "identifier": "UOM:39015"},
                                        {"type": "ISBN_10", "identifier": "7536692935"}],
                "imageLinks": {"smallThumbnail": "http://books.google.com/st", "thumbnail": "http://books.google.com/t",
                               "small": "http://books.google.com/s", "medium": "http://books.google.com/m",
                               "large": "http://books.google.com/l", "extraLarge": "http://books.google.com/xl"},
                "infoLink": "http://books.google.com/books?id=a"}},
              {"id": "b", "volumeInfo": {"title": "No identifiers", "imageLinks": {"smallThumbnail": "http://books.google.com/st"}}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(volumes.total_items, 412);
        let mut books = volumes
            .items
            .into_iter()
            .map(|v| search_result_to_book(v, SystemTime::UNIX_EPOCH));
        let three_body = books.next().unwrap();
        assert_eq!(
            (three_body.isbn13.as_str(), three_body.isbn10.as_str()),
            ("9787536692930", "7536692935")
        );
        let images = three_body.images.unwrap();
        assert_eq!(
            (
                images.small.as_str(),
                images.medium.as_str(),
                images.large.as_str()
            ),
            (
                "https://books.google.com/s",
                "https://books.google.com/m",
                "https://books.google.com/xl"
            )
        );
        assert_eq!(three_body.web_url, "https://books.google.com/books?id=a");

        let bare = books.next().unwrap();
        assert!(bare.isbn13.is_empty() && bare.isbn10.is_empty());
        assert_eq!(bare.images.unwrap().large, "https://books.google.com/st");
    }
}
