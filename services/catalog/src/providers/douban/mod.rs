//! Douban API v2 (book): its JSON shape, its error bodies and an HTTP client
//! for any v2-compatible base URL.

mod client;
mod error;
pub mod model;

pub use client::{DoubanClient, DoubanSettings};
pub use error::classify_error;
