//! What both ends of a hop agree on: the HTTP/2 windows, how a vanished
//! peer is noticed, and the header a call's deadline travels in.

use std::time::Duration;

/// HTTP/2 flow-control windows of both hops. Everything rides one
/// connection per hop, so the default 64 KiB window would make concurrent
/// calls wait on each other's WINDOW_UPDATEs; these are set once, never
/// adapted per call.
pub(super) const STREAM_WINDOW: u32 = 1 << 20;
pub(super) const CONNECTION_WINDOW: u32 = 8 << 20;

/// The most header bytes either end accepts with one call or answer (what
/// hyper allows by default): a call's headers are a few hundred bytes.
pub(super) const MAX_HEADER_LIST_SIZE: u32 = 16 << 10;

/// How both ends notice a peer that vanished without a FIN (its node gone, a
/// partition): the kernel probes a connection idle for `KEEPALIVE_IDLE`,
/// every `KEEPALIVE_INTERVAL`, and closes it after `KEEPALIVE_PROBES`
/// unanswered probes. TCP's keepalive rather than HTTP/2 PINGs: hyper's PING
/// keep-alive reads the clock and takes a lock on every frame of every call
/// (~1,000 instructions a message per connection end, measured); the
/// kernel's costs nothing while data flows.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// Sets both ends' socket options on a hop's connection: no Nagle delay
/// (a call is one small write and waits for its answer) and the keepalive
/// above.
pub(super) fn tune(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    stream.set_nodelay(true)?;
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// The header a gRPC call's deadline travels in. Named once, as a value:
/// looking a header up by a string parses the name on every call.
pub(super) static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// A `grpc-timeout` value: digits and a unit (H, M, S, m, u, n).
pub(super) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}
