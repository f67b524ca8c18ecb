//! The ports doumi's services listen on unless told otherwise: one place for
//! the default of every listen address and of every address that dials one.

/// The gateway's HTTP port (`/wechat`, health, `/metrics`).
pub const GATEWAY: u16 = 8080;
/// The bot's gRPC port.
pub const BOT: u16 = 50051;
/// The catalog's gRPC port.
pub const CATALOG: u16 = 50052;
/// The bot's and the catalog's Prometheus `/metrics` (each in its own pod).
pub const METRICS: u16 = 9090;

/// A service's default listen address: every interface, `port`.
pub fn listen_on(port: u16) -> String {
    format!("0.0.0.0:{port}")
}

/// The default address of a neighbour dialled over plaintext HTTP/2 on the
/// same machine (in a cluster the manifests name the Service instead).
pub fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}
