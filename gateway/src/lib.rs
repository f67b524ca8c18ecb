//! doumi's gateway: the only part on the public internet. It speaks WeChat's
//! official-account protocol (signatures, XML, the 5-second reply window) and
//! nothing about books; every message goes to the bot over gRPC.
//!
//! A message flows top to bottom through the tree:
//!
//! - `routes`: `POST /wechat` (or `/wechat/NAME`) — the account, its
//!   signature, decryption, parsing (the protocol itself lives in
//!   `doumi-wechat`), health and `/metrics`; `error` is the one mapping of
//!   what goes wrong to an HTTP answer.
//! - `accounts/`: the official accounts served — their settings (the
//!   single-account variables or the accounts file), and each live: Token,
//!   keys through a rotation, reply window, courier.
//! - `window/`: WeChat's 5-second window — one piece of work per message
//!   whatever the retries, each attempt answered in its budget; inside it
//!   `slots` (the messages remembered), `shared_store` (its Redis side, when
//!   replicas share one) and `settings`.
//! - `bot_link`: the gRPC call to the bot, and the sentences a reader sees
//!   when the bot cannot answer.
//! - `delivery`: a reply that missed the window, sent as a customer-service
//!   message through WeChat's API.
//! - `startup`: all of it wired together and served (`run`).
//! - beside them: `config` and `cli` (settings), `metrics`.
#![forbid(unsafe_code)]

pub mod accounts;
mod bot_link;
mod cli;
mod config;
mod delivery;
mod error;
pub mod metrics;
mod routes;
mod startup;
pub mod window;

pub use accounts::{AccountSettings, Accounts, WechatToken};
pub use bot_link::BOT_UNAVAILABLE;
pub use cli::Cli;
pub use config::{DeliverySettings, GatewayArgs, GatewayConfig};
pub use startup::{GatewayError, run};
