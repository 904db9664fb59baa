//! Logging set-up: JSON lines in Lambda (CloudWatch), compact text elsewhere; `RUST_LOG` filters.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// A layer beside the log lines (the local runtime's OTLP export of traces).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

pub fn init() {
    init_with(None);
}

/// As [`init`], with `extra` seeing every span and event the filter lets through too.
pub fn init_with(extra: Option<ExtraLayer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let lines = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        fmt.json()
            .with_current_span(true)
            .without_time()
            .with_ansi(false)
            .boxed()
    } else {
        fmt.compact().boxed()
    };
    // try_init: a second call (tests, the local runtime) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(extra)
        .with(lines)
        .with(filter)
        .try_init();
}

/// The Embedded Metric Format recorder of this execution environment (Lambda only).
static METRICS: std::sync::OnceLock<&'static metrics_cloudwatch_embedded::Collector> = std::sync::OnceLock::new();

/// The namespace relaychat's metrics are in.
pub const METRICS_NAMESPACE: &str = "relaychat";

/// Records the functions' metrics (`relaychat_core::measure`) as CloudWatch Embedded Metric
/// Format, with the function's name as the `Function` dimension: in Lambda, whose log lines
/// CloudWatch turns into metrics. Elsewhere nothing is recorded.
pub fn init_metrics() {
    let Some(function) = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME") else {
        return;
    };
    let _ = install_metrics(function.to_string_lossy().into_owned());
}

/// Installs the recorder (once per process) for `function`.
pub fn install_metrics(function: String) -> Option<&'static metrics_cloudwatch_embedded::Collector> {
    if let Some(installed) = METRICS.get() {
        return Some(installed);
    }
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(METRICS_NAMESPACE)
        .with_dimension("Function", function)
        .init()
        .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
        .ok()?;
    relaychat_core::measure::describe();
    Some(METRICS.get_or_init(|| collector))
}

/// Writes what this invocation measured as one EMF document per line on standard output, where
/// Lambda's log capture takes it (after each invocation).
pub fn flush_metrics() {
    if let Some(collector) = METRICS.get()
        && let Err(e) = collector.flush(std::io::stdout().lock())
    {
        tracing::warn!(error = %e, "metrics not written");
    }
}
