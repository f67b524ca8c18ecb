//! Douban v2's book JSON, decoded leniently: numbers arrive as strings and
//! strings as numbers, fields go missing, `series` is absent rather than null.

use serde::{Deserialize, Deserializer, de};

/// One book as `/v2/book/:id`, `/v2/book/isbn/:name` and search return it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoubanBook {
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    #[serde(deserialize_with = "lenient_string")]
    pub isbn10: String,
    #[serde(deserialize_with = "lenient_string")]
    pub isbn13: String,
    #[serde(deserialize_with = "lenient_string")]
    pub title: String,
    #[serde(deserialize_with = "lenient_string")]
    pub subtitle: String,
    #[serde(deserialize_with = "lenient_string")]
    pub origin_title: String,
    #[serde(deserialize_with = "lenient_string")]
    pub alt_title: String,
    #[serde(deserialize_with = "lenient_strings")]
    pub author: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub translator: Vec<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub publisher: String,
    #[serde(deserialize_with = "lenient_string")]
    pub pubdate: String,
    #[serde(deserialize_with = "lenient_string")]
    pub pages: String,
    #[serde(deserialize_with = "lenient_string")]
    pub price: String,
    #[serde(deserialize_with = "lenient_string")]
    pub binding: String,
    pub rating: Option<DoubanRating>,
    #[serde(deserialize_with = "lenient_list")]
    pub tags: Vec<DoubanTag>,
    #[serde(deserialize_with = "lenient_string")]
    pub image: String,
    pub images: Option<DoubanImages>,
    #[serde(deserialize_with = "lenient_string")]
    pub alt: String,
    #[serde(deserialize_with = "lenient_string")]
    pub url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub summary: String,
    #[serde(deserialize_with = "lenient_string")]
    pub author_intro: String,
    #[serde(deserialize_with = "lenient_string")]
    pub catalog: String,
    pub series: Option<DoubanSeries>,
    /// Only present when Douban Read sells an e-book.
    #[serde(deserialize_with = "lenient_string")]
    pub ebook_url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub ebook_price: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoubanRating {
    /// A string such as `"9.1"`; `"0.0"` when too few readers rated.
    #[serde(deserialize_with = "lenient_string")]
    pub average: String,
    #[serde(rename = "numRaters", deserialize_with = "lenient_u32")]
    pub num_raters: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoubanTag {
    #[serde(deserialize_with = "lenient_string")]
    pub name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub title: String,
    #[serde(deserialize_with = "lenient_u32")]
    pub count: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoubanImages {
    #[serde(deserialize_with = "lenient_string")]
    pub small: String,
    #[serde(deserialize_with = "lenient_string")]
    pub medium: String,
    #[serde(deserialize_with = "lenient_string")]
    pub large: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoubanSeries {
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    #[serde(deserialize_with = "lenient_string")]
    pub title: String,
}

/// The `/v2/book/search` envelope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoubanSearch {
    #[serde(deserialize_with = "lenient_u32")]
    pub start: u32,
    #[serde(deserialize_with = "lenient_u32")]
    pub count: u32,
    #[serde(deserialize_with = "lenient_u32")]
    pub total: u32,
    #[serde(deserialize_with = "lenient_list")]
    pub books: Vec<DoubanBook>,
}

/// A string, number, bool or null as a string (`null` → empty).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

/// An integer given as a number or a digit string; anything else is 0.
fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// A list of strings; a lone string becomes a one-element list, null empty.
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s),
                _ => None,
            })
            .collect(),
        serde_json::Value::String(s) if !s.trim().is_empty() => vec![s],
        _ => Vec::new(),
    })
}

/// A list whose malformed elements are skipped instead of failing the book.
fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::DeserializeOwned,
{
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}
