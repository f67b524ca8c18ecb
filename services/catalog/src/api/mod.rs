//! The catalog's gRPC face: what a caller sends is checked here, and what
//! goes wrong becomes a status here — nowhere deeper.

mod errors;
pub(crate) mod health;
mod page_token;
mod read_mask;
mod service;

pub(crate) use service::CatalogService;
