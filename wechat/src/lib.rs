//! WeChat's official-account protocol, as doumi speaks it — and nothing about
//! books.
//!
//! - Inbound, WeChat → us: [`signature`] (the signed query), [`crypto`] (safe
//!   mode), [`envelope`] (an account's callbacks checked, opened and their
//!   replies sealed), [`inbound`] (message XML → typed messages),
//!   [`outbound`] (typed replies → passive-reply XML), and [`peer`], WeChat's
//!   own side of that exchange for `doumi chat` and the tests.
//! - Outbound, us → WeChat: [`api`], the HTTPS API with its `access_token`
//!   ([`api::TokenManager`]), customer-service messages and menus
//!   ([`api::OfficialAccount`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod crypto;
pub mod envelope;
pub mod inbound;
pub mod outbound;
pub mod peer;
pub mod signature;
#[cfg(feature = "stand-in")]
pub mod stand_in;
