//! doumi's bot: what a reader's message means and what to answer, served as
//! the `doumi.bot.v1.Bot` gRPC API. It knows books only through the catalog.
//!
//! A message flows top to bottom through the tree:
//!
//! - `service`: the gRPC face — the caller's deadline, then the conversation:
//!   a page or a number continues the reader's search, anything else is
//!   classified and answered.
//! - `intent`: what a message means (an ISBN, parsed; keywords; help...).
//! - `conversation`: each reader's last search, for numbers and pages;
//!   `rate_limit`: each reader's pace.
//! - `barcode/`: a photo of a book's barcode → an ISBN.
//! - `catalog_link`: the gRPC call to the catalog, and the one place its
//!   statuses become what a reader hears; `answer`: every sentence, in Chinese.
//! - `startup`: all of it wired together and served (`run`).
//! - beside them: `config` and `cli` (settings), `metrics`.
#![forbid(unsafe_code)]

mod answer;
mod barcode;
mod catalog_link;
mod cli;
mod config;
mod conversation;
mod intent;
pub mod metrics;
mod rate_limit;
mod service;
mod startup;

pub use barcode::{BarcodeError, BarcodeReader, MAX_IMAGE_BYTES};
pub use cli::Cli;
pub use config::{BookReply, BotArgs, BotConfig};
pub use startup::{BotError, run};
