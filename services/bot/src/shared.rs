//! The one Redis connection setup for what bot replicas share (each reader's
//! pace, each reader's last search).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazily connected Redis with short timeouts: a reader's message never
/// waits long on Redis trouble, it falls back to this process instead.
pub fn connection(client: redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(300)))
        .set_response_timeout(Some(Duration::from_millis(100)))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config)
}
