//! `--json`: the protobuf JSON mapping every other gRPC tool prints, read
//! through the catalog's descriptors.

use anyhow::Context;
use doumi_proto::catalog::v1::{
    BatchGetBooksByIsbnResponse, Book, FILE_DESCRIPTOR_SET, SearchBooksResponse,
};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};

/// A catalog message `--json` can print, named as in the descriptors.
pub(super) trait CatalogMessage: prost::Message {
    const FULL_NAME: &'static str;
}

impl CatalogMessage for Book {
    const FULL_NAME: &'static str = "doumi.catalog.v1.Book";
}

impl CatalogMessage for SearchBooksResponse {
    const FULL_NAME: &'static str = "doumi.catalog.v1.SearchBooksResponse";
}

impl CatalogMessage for BatchGetBooksByIsbnResponse {
    const FULL_NAME: &'static str = "doumi.catalog.v1.BatchGetBooksByIsbnResponse";
}

/// `message` in the protobuf JSON mapping (lowerCamelCase names, int64 as
/// strings, Timestamps in RFC 3339, defaults omitted), read through the
/// catalog's own descriptors so the output is what grpcurl, buf curl or any
/// generated client prints and parses, not a dialect of ours.
pub(super) fn to_json<M: CatalogMessage>(message: &M) -> anyhow::Result<String> {
    let descriptor = catalog_pool()?
        .get_message_by_name(M::FULL_NAME)
        .with_context(|| format!("{} is not in the catalog's descriptors", M::FULL_NAME))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("cannot read a {} through its descriptor", M::FULL_NAME))?;
    Ok(serde_json::to_string_pretty(&dynamic)?)
}

/// The catalog's descriptors (with the well-known types it imports, which
/// the JSON mapping renders specially), plus google.rpc's error details: a
/// batch item's `google.rpc.Status` carries them as `Any`, and the JSON
/// mapping of an `Any` needs its type's descriptor. Decoded per call:
/// `doumi book` prints once.
fn catalog_pool() -> anyhow::Result<DescriptorPool> {
    let mut pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .context("the catalog's descriptors do not decode")?;
    let rpc = prost_types::FileDescriptorSet::decode(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .context("google.rpc's descriptors do not decode")?;
    // The catalog ships its own copy of google/rpc/status.proto (under
    // another file name than tonic-types'): a file whose messages the pool
    // already has is left out, both copies describing the same wire format.
    let missing: Vec<_> = rpc
        .file
        .into_iter()
        .filter(|file| {
            file.message_type.iter().all(|message| {
                let name = format!("{}.{}", file.package(), message.name());
                pool.get_message_by_name(&name).is_none()
            })
        })
        .collect();
    pool.add_file_descriptor_protos(missing)
        .context("google.rpc's descriptors do not fit the catalog's")?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use doumi_proto::catalog::v1::{BookError, BookResult, book_result};

    use tonic::Code;

    use crate::book::exit::Failure;
    use doumi_proto::catalog::v1::{
        Images, Price, Provenance, PublicationDate, Rating, Series, Tag,
    };
    use serde_json::Value;
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    /// A book with every kind of field the JSON mapping treats specially: an
    /// int64, a double, a bool, a Timestamp, repeated messages, snake_case names.
    fn sample_book() -> Book {
        Book {
            id: "6709783".into(),
            isbn10: "7121139513".into(),
            isbn13: "9787121139512".into(),
            title: "浪潮之巅".into(),
            origin_title: "On the Top of Tides".into(),
            authors: vec!["吴军".into()],
            publisher: "电子工业出版社".into(),
            pubdate: Some(PublicationDate {
                text: "2011-8".into(),
                year: 2011,
                month: 8,
            }),
            pages: 504,
            price: Some(Price {
                text: "55.00元".into(),
                amount_minor: 5500,
                currency: "CNY".into(),
            }),
            rating: Some(Rating {
                average: 9.1,
                count: 14_254,
                rated: true,
                source: "douban".into(),
                scale: 10,
            }),
            tags: vec![Tag {
                name: "互联网".into(),
                count: 3_021,
            }],
            images: Some(Images {
                large: "https://img.example/l.jpg".into(),
                ..Default::default()
            }),
            summary: "近一百多年来，总有一些公司很幸运地、有意识或无意识地站在技术革命的浪尖之上。"
                .into(),
            author_intro: "吴军，博士。".into(),
            series: Some(Series {
                id: "1".into(),
                title: "浪潮".into(),
            }),
            web_url: "https://book.douban.com/subject/6709783/".into(),
            provenance: Some(Provenance {
                provider: "douban".into(),
                fetched_at: Some(prost_types::Timestamp {
                    seconds: 1_764_460_800,
                    nanos: 0,
                }),
            }),
            ..Default::default()
        }
    }

    /// Parses `json` as the protobuf JSON mapping of message `name`, as any
    /// other team's client would, and returns its wire bytes.
    fn parse_canonical(json: &str, name: &str) -> Vec<u8> {
        let pool = catalog_pool().unwrap();
        let descriptor = pool.get_message_by_name(name).unwrap();
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let message = DynamicMessage::deserialize(descriptor, &mut deserializer).unwrap();
        deserializer.end().unwrap();
        message.encode_to_vec()
    }

    #[test]
    fn json_of_a_book_parses_back_into_the_same_book() {
        let book = sample_book();

        let json = to_json(&book).unwrap();

        let parsed = Book::decode(parse_canonical(&json, Book::FULL_NAME).as_slice()).unwrap();
        assert_eq!(parsed, book);
    }

    #[test]
    fn json_of_a_book_uses_the_canonical_mapping() {
        let json = to_json(&sample_book()).unwrap();

        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["isbn13"], "9787121139512");
        assert_eq!(value["originTitle"], "On the Top of Tides");
        assert_eq!(value["webUrl"], "https://book.douban.com/subject/6709783/");
        assert_eq!(value["authorIntro"], "吴军，博士。");
        // int64 as a string, int32 as a number.
        assert_eq!(value["price"]["amountMinor"], "5500");
        assert_eq!(value["pages"], 504);
        assert_eq!(value["provenance"]["fetchedAt"], "2025-11-30T00:00:00Z");
        // Defaults are omitted, proto names are not used.
        for absent in [
            "subtitle",
            "ebookUrl",
            "ebookPrice",
            "origin_title",
            "web_url",
        ] {
            assert!(value.get(absent).is_none(), "{absent} in {json}");
        }
        assert!(value["images"].get("small").is_none());
    }

    #[test]
    fn json_of_a_batch_and_a_page_parses_back() {
        let batch = BatchGetBooksByIsbnResponse {
            results: vec![
                BookResult {
                    isbn: "9787121139512".into(),
                    result: Some(book_result::Result::Book(sample_book())),
                },
                BookResult {
                    isbn: "9780000000002".into(),
                    result: Some(book_result::Result::Error(BookError {
                        code: Code::NotFound as i32,
                        message: "no provider knows 9780000000002".into(),
                        ..Default::default()
                    })),
                },
            ],
        };
        let page = SearchBooksResponse {
            books: vec![sample_book()],
            next_page_token: "10".into(),
            total_size: 42,
        };

        let batch_json = to_json(&batch).unwrap();
        let page_json = to_json(&page).unwrap();

        let bytes = parse_canonical(&batch_json, BatchGetBooksByIsbnResponse::FULL_NAME);
        assert_eq!(
            BatchGetBooksByIsbnResponse::decode(bytes.as_slice()).unwrap(),
            batch
        );
        let bytes = parse_canonical(&page_json, SearchBooksResponse::FULL_NAME);
        assert_eq!(SearchBooksResponse::decode(bytes.as_slice()).unwrap(), page);
        let value: Value = serde_json::from_str(&page_json).unwrap();
        assert_eq!(value["nextPageToken"], "10");
        assert_eq!(value["totalSize"], 42);
    }

    /// A batch item's `google.rpc.Status` carries its details as `Any`: the
    /// JSON mapping names their type (`@type`) and still parses back.
    #[test]
    fn json_of_an_item_error_with_details_parses_back() {
        let mut details = ErrorDetails::with_error_info(
            "CIRCUIT_OPEN",
            "catalog.doumi",
            [("provider".to_string(), "douban".to_string())],
        );
        details.set_retry_info(Some(Duration::from_secs(12)));
        let status = tonic::Status::with_error_details(Code::Unavailable, "douban rests", details);
        let item = BookError {
            code: Code::Unavailable as i32,
            message: "douban rests".into(),
            status: Some(tonic_types::pb::Status::decode(status.details()).unwrap()),
        };
        let batch = BatchGetBooksByIsbnResponse {
            results: vec![BookResult {
                isbn: "9787121139512".into(),
                result: Some(book_result::Result::Error(item.clone())),
            }],
        };

        let json = to_json(&batch).unwrap();

        let bytes = parse_canonical(&json, BatchGetBooksByIsbnResponse::FULL_NAME);
        assert_eq!(
            BatchGetBooksByIsbnResponse::decode(bytes.as_slice()).unwrap(),
            batch
        );
        let value: Value = serde_json::from_str(&json).unwrap();
        let details = value["results"][0]["error"]["status"]["details"]
            .as_array()
            .unwrap();
        let detail = |name: &str| {
            details
                .iter()
                .find(|d| d["@type"] == format!("type.googleapis.com/google.rpc.{name}"))
                .unwrap()
        };
        assert_eq!(detail("ErrorInfo")["reason"], "CIRCUIT_OPEN");
        assert_eq!(detail("ErrorInfo")["metadata"]["provider"], "douban");
        assert_eq!(detail("RetryInfo")["retryDelay"], "12s");
        assert_eq!(
            Failure::from_item(&item).to_string(),
            "UNAVAILABLE: douban rests (reason CIRCUIT_OPEN; retry in 12s)"
        );
    }
}
