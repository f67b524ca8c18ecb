//! Logs and traces. `RUST_LOG` filters the log lines, `DOUMI_LOG_FORMAT`
//! picks human text or JSON lines; with an OTLP endpoint (the OpenTelemetry
//! standard variables) spans are also exported, and every log line written
//! inside a message's spans carries its `trace_id`. Without an endpoint no
//! exporter, propagator or OpenTelemetry layer exists, so tracing costs what
//! the log lines cost and nothing more.

use std::{
    future::Future,
    io::IsTerminal,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use opentelemetry::{
    KeyValue,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    runtime,
    trace::{Sampler, SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
};
use sha1::{Digest, Sha1};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::settings::Problems;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How spans reach the collector (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP over gRPC, usually port 4317.
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies, usually port 4318 (`/v1/traces`).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Which traces are kept (`OTEL_TRACES_SAMPLER`), by the specification's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    #[value(name = "traceidratio")]
    TraceIdRatio,
    /// Follow the caller's decision; keep every trace that starts here.
    #[default]
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    #[value(name = "parentbased_traceidratio")]
    ParentbasedTraceIdRatio,
}

/// The telemetry flags every binary shares (global: `doumi up --otlp URL`
/// works as well as `doumi --otlp URL up`). The OpenTelemetry ones are the
/// standard variables, read here so a bad value stops start-up with one line
/// and `--help` lists them; the batch processor's `OTEL_BSP_*` and the
/// exporter's `OTEL_EXPORTER_OTLP_TIMEOUT`/`_HEADERS` are read by the SDK.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log line format: `text` for people, `json` for log collectors.
    #[arg(
        global = true,
        long = "log-format",
        env = "DOUMI_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub format: LogFormat,
    /// OTLP collector to export traces to (e.g. `http://127.0.0.1:4317`);
    /// unset = no traces.
    #[arg(
        global = true,
        long = "otlp-endpoint",
        visible_alias = "otlp",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (then `/v1/traces` is appended to the endpoint).
    #[arg(
        global = true,
        long = "otlp-protocol",
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value_t
    )]
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` of exported spans; unset = the binary's name.
    #[arg(global = true, long = "otel-service-name", env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// Which traces to keep.
    #[arg(
        global = true,
        long = "otel-traces-sampler",
        env = "OTEL_TRACES_SAMPLER",
        value_enum,
        default_value_t
    )]
    pub sampler: SamplerKind,
    /// The ratio (0 to 1) of the `*traceidratio` samplers.
    #[arg(
        global = true,
        long = "otel-traces-sampler-arg",
        env = "OTEL_TRACES_SAMPLER_ARG"
    )]
    pub sampler_arg: Option<String>,
}

/// Validated trace export settings.
#[derive(Debug, Clone)]
pub struct TraceExport {
    endpoint: String,
    protocol: OtlpProtocol,
    sampler: Sampler,
}

impl TelemetryArgs {
    /// The trace export these flags ask for, `None` when no endpoint is set;
    /// every bad value is recorded in `problems`.
    pub fn trace_export(&self, problems: &mut Problems) -> Option<TraceExport> {
        let endpoint = self
            .otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())?;
        let endpoint = problems.http_url("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)?;
        let ratio = match &self.sampler_arg {
            None => 1.0,
            Some(arg) => match arg.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
                _ => {
                    problems.add(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("{arg:?} is not a ratio between 0 and 1"),
                    );
                    return None;
                }
            },
        };
        let sampler = match self.sampler {
            SamplerKind::AlwaysOn => Sampler::AlwaysOn,
            SamplerKind::AlwaysOff => Sampler::AlwaysOff,
            SamplerKind::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
            SamplerKind::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerKind::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerKind::ParentbasedTraceIdRatio => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
        };
        Some(TraceExport {
            endpoint,
            protocol: self.otlp_protocol,
            sampler,
        })
    }
}

/// True once spans are exported: only then are trace contexts extracted,
/// injected and written into log lines.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported from this process.
pub fn tracing_on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The exporter's handle; [`Telemetry::shutdown`] flushes what is buffered.
#[must_use = "dropping it loses the spans not yet exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // Blocks until the batch processor (a task on this runtime) is done.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP exporter could not be built")]
pub struct ExportError(#[from] opentelemetry_otlp::ExporterBuildError);

/// The crates whose spans are exported: doumi's own (at debug, so every stage
/// of a message shows in a trace), and everything else only from info.
fn exported() -> Targets {
    Targets::new()
        .with_default(tracing::Level::INFO)
        .with_targets(
            [
                "doumi",
                "doumi_runtime",
                "doumi_wechat",
                "doumi_gateway",
                "doumi_bot",
                "doumi_catalog",
            ]
            .map(|target| (target, tracing::Level::DEBUG)),
        )
}

/// Installs the global subscriber for `service` (the default
/// `service.name`): log lines filtered by `RUST_LOG`, and the exporter when
/// `export` is set. Later calls (tests, `doumi up` running several services
/// in one process) keep the first subscriber.
pub fn init(
    service: &str,
    format: LogFormat,
    export: Option<&TraceExport>,
    service_name: Option<&str>,
) -> Result<Telemetry, ExportError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        // Colours only for a person at a terminal, never into a file or pipe.
        LogFormat::Text => fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    }
    .with_filter(filter);
    let registry = tracing_subscriber::registry().with(logs);
    let Some(export) = export else {
        let _already_set = registry.try_init();
        return Ok(Telemetry { provider: None });
    };

    let exporter = match export.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(export.endpoint.clone())
            .build()?,
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(reqwest::Client::new())
            .with_endpoint(format!(
                "{}/v1/traces",
                export.endpoint.trim_end_matches('/')
            ))
            .build()?,
    };
    let name = service_name.unwrap_or(service).to_owned();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, runtime::Tokio).build())
        .with_sampler(export.sampler.clone())
        .with_resource(
            Resource::builder()
                .with_service_name(name)
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("doumi"))
        .with_filter(exported());
    if registry.with(layer).try_init().is_ok() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        TRACING.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Makes `span` a child of the trace `headers` carry (W3C `traceparent`),
/// and records its trace id in the span's `trace_id` field, so every log
/// line inside it can be joined with the trace.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !tracing_on() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
    record_trace_id(span);
}

/// Records the trace id of `span` (a new trace, or its parent's) in its
/// `trace_id` field.
pub fn record_trace_id(span: &tracing::Span) {
    if !tracing_on() {
        return;
    }
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Writes the trace of `span` into outgoing `headers` (W3C `traceparent`).
pub fn inject_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !tracing_on() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    });
}

tokio::task_local! {
    /// The message a task works for, as it appears in logs on every hop.
    static MESSAGE: String;
}

/// Runs `work` for the message tagged `tag`: gRPC calls made inside carry
/// the tag to the next service, whose log lines show it too.
pub async fn for_message<F: Future>(tag: String, work: F) -> F::Output {
    MESSAGE.scope(tag, work).await
}

/// The tag of the message this task works for, if any.
pub fn message_tag() -> Option<String> {
    MESSAGE.try_with(Clone::clone).ok()
}

/// A short keyed hash of an identifier that must never be logged in clear (a
/// reader's OpenID): stable within this process, so one reader's lines can be
/// followed, and meaningless outside it, so no list of OpenIDs can be matched
/// against the logs.
pub fn pseudonym(id: &str) -> String {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let digest = Sha1::new().chain_update(key).chain_update(id).finalize();
    hex::encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_hide_the_id_and_stay_stable() {
        let openid = "oAbCdEfGhIjKlMnOpQrStUvWxYz0";
        let tag = pseudonym(openid);
        assert_eq!(tag, pseudonym(openid));
        assert_ne!(tag, pseudonym("oAnotherReader0000000000000"));
        assert_eq!(tag.len(), 12);
        assert!(!tag.contains(openid));
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    fn args(flags: &[&str]) -> TelemetryArgs {
        use clap::Parser;
        let argv = std::iter::once("doumi-test").chain(flags.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.telemetry,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn no_endpoint_no_export_and_bad_values_are_named() {
        let mut problems = Problems::new();
        assert!(args(&[]).trace_export(&mut problems).is_none());
        let export = args(&[
            "--otlp",
            "http://127.0.0.1:4318",
            "--otlp-protocol",
            "http/protobuf",
        ])
        .trace_export(&mut problems)
        .expect("an endpoint exports");
        assert_eq!(export.protocol, OtlpProtocol::HttpProtobuf);
        let bad = args(&[
            "--otlp-endpoint",
            "http://127.0.0.1:4317",
            "--otel-traces-sampler",
            "parentbased_traceidratio",
            "--otel-traces-sampler-arg",
            "1.5",
        ]);
        assert!(bad.trace_export(&mut problems).is_none());
        let report = problems.finish(Some(())).unwrap_err().to_string();
        assert!(report.contains("OTEL_TRACES_SAMPLER_ARG"), "{report}");
    }
}
