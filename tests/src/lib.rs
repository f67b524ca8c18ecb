//! Test support for doumi's end-to-end tests: a real `redis-server` on a free
//! port, fake Douban, Open Library and Google Books servers serving recorded
//! JSON, a fake of WeChat's API, an OpenTelemetry collector, and the three services started on ephemeral ports through the same
//! `run` functions the binaries use.
#![forbid(unsafe_code)]

pub mod barcode_photo;
pub mod douban;
pub mod fake_upstream;
pub mod fleet;
pub mod googlebooks;
pub mod openlibrary;
pub mod otlp;
pub mod redis_server;
pub mod stack;
pub mod wechat;
pub mod wechat_api;

pub use douban::FakeDouban;
pub use googlebooks::FakeGoogleBooks;
pub use openlibrary::FakeOpenLibrary;
pub use redis_server::RedisServer;
pub use stack::{StackOptions, TestStack};
pub use wechat_api::FakeWechatApi;
