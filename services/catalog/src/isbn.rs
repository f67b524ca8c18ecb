//! The ISBN rules, shared with the bot so both judge a spelling alike.

pub use doumi_isbn::{Isbn13, IsbnError};
