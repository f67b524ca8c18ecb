//! One message followed across gateway → bot → catalog, each service in its
//! own process as in production: spans from all three reach an OTLP
//! collector under one trace id with parent links across the process
//! boundaries (the gateway and the catalog export over gRPC, the bot over
//! HTTP), every service's log lines for the message carry that trace id
//! (text and JSON), each service's `/metrics` has the gRPC, process and
//! build series with HELP text, and the reader's OpenID appears nowhere.
//!
//! The three processes are this test binary run again: `service_process`
//! (ignored in normal runs) reads the service to run from its environment
//! and runs that service's `Cli`, as each `main.rs` does.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use clap::Parser;
use doumi_tests::{
    otlp::{Collector, ReceivedSpan},
    stack::TOKEN,
    wechat::WechatClient,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Which service a child process runs.
const SERVICE_VAR: &str = "DOUMI_TEST_SERVICE";

/// A reader's OpenID, shaped like WeChat's; it must never leave the gateway
/// in clear.
const READER: &str = "oDoumiTraceReader0123456789ab";
/// 《浪潮之巅》, in the bundled sample catalog.
const ISBN: &str = "9787121139512";

/// The body of a child process: one service, configured by its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests below"]
async fn service_process() {
    let argv = ["doumi-test-service"];
    match std::env::var(SERVICE_VAR).as_deref() {
        Ok("gateway") => doumi_gateway::Cli::parse_from(argv).run().await,
        Ok("bot") => doumi_bot::Cli::parse_from(argv).run().await,
        Ok("catalog") => doumi_catalog::Cli::parse_from(argv).run().await,
        other => panic!("{SERVICE_VAR} must name a service, not {other:?}"),
    }
}

/// A free loopback port, for a child to bind.
fn free_port() -> SocketAddr {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
}

/// One service running in its own process, its log lines collected.
struct ServiceProcess {
    _child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    fn start(service: &str, env: &[(&str, String)]) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("own path: {e}"));
        let mut command = Command::new(exe);
        command
            .args([
                "traces::service_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env_clear()
            .env(SERVICE_VAR, service)
            // Every doumi crate at debug: the lines a message writes on
            // each hop, including the gRPC access line.
            .env(
                "RUST_LOG",
                "info,doumi_runtime=debug,doumi_bot=debug,doumi_catalog=debug,doumi_gateway=debug",
            )
            // Spans leave within 100 ms instead of 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {service}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let collected = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                collected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line);
            }
        });
        Self {
            _child: child,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Waits until `addr` accepts connections (the child has started).
async fn listening(addr: SocketAddr) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

async fn scrape(addr: SocketAddr) -> String {
    let url = format!("http://{addr}/metrics");
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    response.text().await.unwrap_or_default()
}

/// The three services, each its own process, exporting to `collector`.
struct Stack {
    gateway: SocketAddr,
    bot_metrics: SocketAddr,
    catalog_metrics: SocketAddr,
    gateway_process: ServiceProcess,
    bot_process: ServiceProcess,
    catalog_process: ServiceProcess,
}

impl Stack {
    async fn start(collector: &Collector) -> Self {
        let (catalog, catalog_metrics) = (free_port(), free_port());
        let (bot, bot_metrics) = (free_port(), free_port());
        let gateway = free_port();
        let catalog_process = ServiceProcess::start(
            "catalog",
            &[
                ("DOUMI_CATALOG_LISTEN", catalog.to_string()),
                ("DOUMI_CATALOG_METRICS_LISTEN", catalog_metrics.to_string()),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("http://{}", collector.grpc),
                ),
                ("DOUMI_LOG_FORMAT", "text".into()),
            ],
        );
        let bot_process = ServiceProcess::start(
            "bot",
            &[
                ("DOUMI_BOT_LISTEN", bot.to_string()),
                ("DOUMI_BOT_METRICS_LISTEN", bot_metrics.to_string()),
                ("DOUMI_CATALOG_URL", format!("http://{catalog}")),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("http://{}", collector.http),
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
                ("DOUMI_LOG_FORMAT", "json".into()),
            ],
        );
        let gateway_process = ServiceProcess::start(
            "gateway",
            &[
                ("DOUMI_GATEWAY_LISTEN", gateway.to_string()),
                ("DOUMI_BOT_URL", format!("http://{bot}")),
                ("DOUMI_WECHAT_TOKEN", TOKEN.into()),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("http://{}", collector.grpc),
                ),
                ("DOUMI_LOG_FORMAT", "text".into()),
            ],
        );
        for addr in [catalog, catalog_metrics, bot, bot_metrics, gateway] {
            listening(addr).await;
        }
        Self {
            gateway,
            bot_metrics,
            catalog_metrics,
            gateway_process,
            bot_process,
            catalog_process,
        }
    }

    fn wechat(&self) -> WechatClient {
        WechatClient::new(format!("http://{}/wechat", self.gateway), TOKEN)
    }
}

/// The spans of the trace the gateway started for the message, once spans
/// from all three services have arrived.
async fn message_trace(collector: &Collector) -> (String, Vec<ReceivedSpan>) {
    for _ in 0..200 {
        let spans = collector.spans();
        if let Some(root) = spans
            .iter()
            .find(|s| s.service == "doumi-gateway" && s.span.name == "POST /wechat")
        {
            let trace_id = root.trace_id();
            let trace: Vec<ReceivedSpan> = spans
                .into_iter()
                .filter(|s| s.trace_id() == trace_id)
                .collect();
            let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
            if services.len() == 3 {
                return (trace_id, trace);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: BTreeSet<(String, String)> = collector
        .spans()
        .into_iter()
        .map(|s| (s.service, s.span.name))
        .collect();
    panic!("no trace with spans from all three services; spans seen: {seen:?}");
}

/// The one span of `service` named `name` in `trace`.
fn span<'a>(trace: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.service == service && s.span.name == name)
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "expected one {service} span {name:?}, found {}; trace: {:?}",
            found.len(),
            trace
                .iter()
                .map(|s| (&s.service, &s.span.name))
                .collect::<Vec<_>>()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_across_three_processes() {
    let collector = Collector::start().await.expect("collector");
    let stack = Stack::start(&collector).await;

    let answer = stack
        .wechat()
        .post_signed(&WechatClient::text_from(READER, ISBN))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("浪潮之巅"), "{}", answer.body);

    let (trace_id, trace) = message_trace(&collector).await;

    // gateway → bot: the bot's server span is a child of the gateway's call.
    let root = span(&trace, "doumi-gateway", "POST /wechat");
    assert!(
        root.span.parent_span_id.is_empty(),
        "the message starts the trace"
    );
    let to_bot = span(&trace, "doumi-gateway", "doumi.bot.v1.Bot/Reply");
    let bot = trace
        .iter()
        .find(|s| s.service == "doumi-bot" && s.span.name == "doumi.bot.v1.Bot/Reply")
        .expect("the bot's server span");
    assert_eq!(bot.parent_span_id(), to_bot.span_id(), "bot ← gateway");
    // bot → catalog, likewise.
    let lookup = "doumi.catalog.v1.BookCatalog/GetBookByIsbn";
    let to_catalog = span(&trace, "doumi-bot", lookup);
    let catalog = trace
        .iter()
        .find(|s| s.service == "doumi-catalog" && s.span.name == lookup)
        .expect("the catalog's server span");
    assert_eq!(
        catalog.parent_span_id(),
        to_catalog.span_id(),
        "catalog ← bot"
    );
    // The stages inside each service are in the same trace.
    for (service, stage) in [
        ("doumi-gateway", "verify"),
        ("doumi-gateway", "parse"),
        ("doumi-gateway", "window"),
        ("doumi-gateway", "work"),
        ("doumi-gateway", "render"),
        ("doumi-bot", "reply"),
        ("doumi-catalog", "cache"),
        ("doumi-catalog", "provider"),
    ] {
        span(&trace, service, stage);
    }

    // Every service's log lines for the message carry the trace id (the bot
    // writes JSON, the others text).
    for (name, process) in [
        ("gateway", &stack.gateway_process),
        ("bot", &stack.bot_process),
        ("catalog", &stack.catalog_process),
    ] {
        let lines = process.lines();
        assert!(
            lines.iter().any(|line| line.contains(&trace_id)),
            "no {name} log line carries trace id {trace_id}: {lines:#?}"
        );
    }

    // The reader is known by a pseudonym only: not in any log line, span
    // attribute or metric.
    let metrics = [
        scrape(stack.gateway).await,
        scrape(stack.bot_metrics).await,
        scrape(stack.catalog_metrics).await,
    ];
    for process in [
        &stack.gateway_process,
        &stack.bot_process,
        &stack.catalog_process,
    ] {
        for line in process.lines() {
            assert!(!line.contains(READER), "OpenID in a log line: {line}");
        }
    }
    for span in &collector.spans() {
        for value in span.attribute_values() {
            assert!(
                !value.contains(READER),
                "OpenID in span {}: {value}",
                span.span.name
            );
        }
    }
    for page in &metrics {
        assert!(!page.contains(READER), "OpenID in metrics");
    }

    // Metrics on every service after one message.
    let [gateway, bot, catalog] = &metrics;
    let has = |page: &str, series: &str| page.lines().any(|l| l.starts_with(series));
    for (name, page) in [("gateway", gateway), ("bot", bot), ("catalog", catalog)] {
        for series in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
            &format!("doumi_build_info{{service=\"{name}\""),
        ] {
            assert!(has(page, series), "{name} has no {series}:\n{page}");
        }
        // Every series has its HELP text.
        for family in page.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let family = family.split(' ').next().unwrap_or_default();
            assert!(
                page.contains(&format!("# HELP {family} ")),
                "{name}: {family} has no HELP"
            );
        }
    }
    assert!(has(
        gateway,
        "grpc_client_handled_total{grpc_service=\"doumi.bot.v1.Bot\",grpc_method=\"Reply\",grpc_code=\"OK\"}"
    ));
    assert!(has(
        bot,
        "grpc_server_handled_total{grpc_service=\"doumi.bot.v1.Bot\",grpc_method=\"Reply\",grpc_code=\"OK\"}"
    ));
    assert!(has(
        bot,
        "grpc_client_handled_total{grpc_service=\"doumi.catalog.v1.BookCatalog\",grpc_method=\"GetBookByIsbn\",grpc_code=\"OK\"}"
    ));
    assert!(has(
        catalog,
        "grpc_server_handled_total{grpc_service=\"doumi.catalog.v1.BookCatalog\",grpc_method=\"GetBookByIsbn\",grpc_code=\"OK\"}"
    ));
    assert!(has(catalog, "grpc_server_handling_seconds_bucket"));
    assert!(has(bot, "doumi_bot_intents_total{intent=\"isbn\"}"));
}
