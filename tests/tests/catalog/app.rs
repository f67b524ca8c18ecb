//! A catalog on ephemeral ports (gRPC and metrics), started through the same
//! `serve` the binary uses, with a gRPC client and fake upstreams.

use std::{future::Future, net::SocketAddr, time::Duration};

use doumi_catalog::{
    BreakerSettings, CatalogConfig, DoubanSettings, Listeners, ProviderSettings, RedisPolicy,
    Source, UpstreamPolicy,
};
use doumi_proto::catalog::v1::{
    Book, GetBookByIsbnRequest, GetBookRequest, book_catalog_client::BookCatalogClient,
};
use doumi_tests::{FakeDouban, FakeGoogleBooks, FakeOpenLibrary};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Status, transport::Channel};

/// 浪潮之巅: known to the fake Douban only.
pub const WAVE: &str = "9787121139512";
/// Harry Potter and the Chamber of Secrets: known to the fake Open Library only.
pub const CHAMBER: &str = "9780439064873";
/// Harry Potter and the Philosopher's Stone: known to the fake Google Books only.
pub const STONE: &str = "9780747532699";
/// A real ISBN no fake knows.
pub const NOBODY: &str = "9787540438845";

/// The three fake providers.
pub struct Upstreams {
    pub douban: FakeDouban,
    pub openlibrary: FakeOpenLibrary,
    pub googlebooks: FakeGoogleBooks,
}

impl Upstreams {
    pub async fn start() -> Self {
        Self {
            douban: FakeDouban::start().await.expect("fake douban"),
            openlibrary: FakeOpenLibrary::start().await.expect("fake open library"),
            googlebooks: FakeGoogleBooks::start().await.expect("fake google books"),
        }
    }

    /// Providers by name, in `order`, pointed at the fakes.
    pub fn source(&self, order: &[&str]) -> Source {
        let providers = order
            .iter()
            .map(|name| match *name {
                "douban" => ProviderSettings::Douban(DoubanSettings {
                    base_url: self.douban.url().to_owned(),
                    apikey: None,
                    timeout: None,
                }),
                "openlibrary" => ProviderSettings::OpenLibrary {
                    base_url: self.openlibrary.url().to_owned(),
                },
                "googlebooks" => ProviderSettings::GoogleBooks {
                    base_url: self.googlebooks.url().to_owned(),
                    apikey: Some("test-apikey".to_owned().into()),
                },
                other => panic!("no fake for {other}"),
            })
            .collect();
        Source {
            providers,
            contact: None,
            caps: Vec::new(),
        }
    }

    /// A test-friendly config: `order` of providers, quick retries, a circuit
    /// that opens after 3 failed calls, Redis given up on quickly.
    pub fn config(&self, order: &[&str]) -> CatalogConfig {
        let mut config = CatalogConfig::offline(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.source = self.source(order);
        config.upstream = UpstreamPolicy {
            timeout: Duration::from_secs(5),
            retries: 1,
            backoff: Duration::from_millis(10),
            concurrency: 16,
            breaker: BreakerSettings {
                failure_threshold: 3,
                cooldown: Duration::from_secs(2),
            },
        };
        config.redis.policy = RedisPolicy {
            timeout: Duration::from_millis(300),
            cooldown: Duration::from_millis(200),
        };
        config
    }
}

/// A running catalog; stops on drop.
pub struct CatalogApp {
    pub metrics: SocketAddr,
    client: BookCatalogClient<Channel>,
    channel: Channel,
    stop: CancellationToken,
}

impl CatalogApp {
    pub async fn start(config: CatalogConfig) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let metrics = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind metrics");
        let addr = grpc.local_addr().expect("grpc addr");
        let metrics_addr = metrics.local_addr().expect("metrics addr");
        let stop = CancellationToken::new();
        tokio::spawn(doumi_catalog::serve(
            config,
            Listeners {
                grpc,
                metrics: Some(metrics),
            },
            stop.clone().cancelled_owned(),
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("catalog url")
            .connect_lazy();
        Self {
            metrics: metrics_addr,
            client: BookCatalogClient::new(channel.clone()),
            channel,
            stop,
        }
    }

    pub fn client(&self) -> BookCatalogClient<Channel> {
        self.client.clone()
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub async fn isbn(&self, isbn: &str) -> Result<Book, Status> {
        self.client()
            .get_book_by_isbn(GetBookByIsbnRequest {
                isbn: isbn.to_owned(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().book.unwrap_or_default())
    }

    pub async fn douban_id(&self, id: &str) -> Result<Book, Status> {
        self.client()
            .get_book(GetBookRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().book.unwrap_or_default())
    }

    /// The Prometheus text the metrics listener serves.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body")
    }
}

impl Drop for CatalogApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn provider(book: &Book) -> &str {
    book.provenance.as_ref().map_or("", |p| p.provider.as_str())
}

/// Polls `check` until it holds, for up to 10 s; fails the test otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}
