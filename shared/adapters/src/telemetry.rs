//! Logging set-up: JSON lines in Lambda (CloudWatch), compact text elsewhere; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // try_init: a second call (tests, the local runtime) keeps the first subscriber.
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder
            .json()
            .with_current_span(true)
            .without_time()
            .with_ansi(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
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
