//! The catalog as other teams use it: its gRPC API, against fake Douban, Open
//! Library and Google Books servers (recorded JSON) and a real redis-server.

#[path = "catalog/api.rs"]
mod api;
#[path = "catalog/app.rs"]
mod app;
#[path = "catalog/cache.rs"]
mod cache;
#[path = "catalog/errors.rs"]
mod errors;
#[path = "catalog/faults.rs"]
mod faults;
#[path = "catalog/providers.rs"]
mod providers;
#[path = "catalog/search.rs"]
mod search;
