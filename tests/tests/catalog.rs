//! The catalog as other teams use it: its gRPC API, against fake Douban, Open
//! Library and Google Books servers (recorded JSON) and a real redis-server.

mod api;
mod app;
mod cache;
mod errors;
mod faults;
mod providers;
mod search;
