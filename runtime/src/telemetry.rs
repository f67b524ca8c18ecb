//! Logging set-up: `RUST_LOG` filters, `DOUMI_LOG_FORMAT` picks human text or
//! JSON lines (for containers).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber once; later calls (tests, `doumi up`
/// starting several services in one process) are no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _already_set = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
}

/// The `--log-format` flag every binary shares.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format: `text` for people, `json` for log collectors.
    #[arg(long = "log-format", env = "DOUMI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}
