//! The local runtime's traces over OTLP/HTTP (protobuf), when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (Jaeger, Tempo, an OpenTelemetry collector).
//!
//! The spans exported are the ones that carry relaychat's W3C trace (`relaychat_core::trace`):
//! a WebSocket action, an HTTP request, each Kafka record a consumer handles. Each keeps the ids
//! its `traceparent` travels with, so one message's path is one trace whatever the hops:
//! ws-message's action, then persist-message's and deliver-message's records as its children, and
//! so on. The function comes from the span or the invocation around it (`function`).

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Subscriber, warn};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Spans waiting for the exporter; past this, new ones are dropped (and counted in the log)
/// rather than growing memory when the collector is down.
const QUEUE: usize = 4_096;
const BATCH: usize = 512;
const EVERY: Duration = Duration::from_secs(1);

/// The endpoint the OTLP variables name, if any.
pub fn configured_endpoint() -> Option<String> {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .into_iter()
        .find_map(relaychat_adapters::optional)
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the OTLP exporter")]
pub struct OtlpError(#[source] opentelemetry_otlp::ExporterBuildError);

enum Item {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// The exporter's handle: flush what is queued (at shutdown, in tests).
#[derive(Clone)]
pub struct Otlp {
    queue: mpsc::Sender<Item>,
}

impl Otlp {
    /// Sends every span queued so far, and waits for it to be sent.
    pub async fn flush(&self) {
        let (done, sent) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = sent.await;
        }
    }
}

/// The layer and its exporter, sending to `endpoint` (a full URL such as
/// `http://127.0.0.1:4318/v1/traces`), or to what the `OTEL_EXPORTER_OTLP_*` variables say when
/// `None`. Must be called within a Tokio runtime (the exporter runs on it).
pub fn layer(endpoint: Option<&str>) -> Result<(OtlpLayer, Otlp), OtlpError> {
    let mut builder = SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let mut exporter = builder.build().map_err(OtlpError)?;
    exporter.set_resource(&Resource::builder_empty().with_service_name("relaychat-local").build());
    let (queue, mut items) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
        loop {
            let item = tokio::time::timeout(EVERY, items.recv()).await;
            let flush = match item {
                Ok(Some(Item::Span(span))) => {
                    batch.push(*span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    None
                }
                Ok(Some(Item::Flush(done))) => Some(done),
                Ok(None) => return,
                Err(_) => None,
            };
            if !batch.is_empty()
                && let Err(e) = exporter.export(std::mem::take(&mut batch)).await
            {
                warn!(error = %e, "spans not exported over OTLP");
            }
            if let Some(done) = flush {
                let _ = done.send(());
            }
        }
    });
    let handle = Otlp { queue };
    Ok((OtlpLayer { otlp: handle.clone() }, handle))
}

/// Turns the spans that carry a trace into OTLP spans (see the module's notes).
pub struct OtlpLayer {
    otlp: Otlp,
}

/// A span being timed, with what it recorded.
struct Open {
    start: SystemTime,
    fields: Fields,
}

#[derive(Default)]
struct Fields {
    trace_id: Option<u128>,
    span_id: Option<u64>,
    parent_span_id: Option<u64>,
    function: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let hex = |len: usize| {
            (value.len() == len)
                .then(|| u128::from_str_radix(value, 16).ok())
                .flatten()
        };
        match field.name() {
            "trace_id" => self.trace_id = hex(32),
            "span_id" => self.span_id = hex(16).and_then(|v| u64::try_from(v).ok()),
            "parent_span_id" => self.parent_span_id = hex(16).and_then(|v| u64::try_from(v).ok()),
            "function" => self.function = Some(value.to_owned()),
            name => self.attributes.push(KeyValue::new(name, value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%x` fields (Display) arrive here too, formatted as they print.
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes
            .push(KeyValue::new(field.name(), i64::try_from(value).unwrap_or(i64::MAX)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for OtlpLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if fields.function.is_none() {
            // The invocation around a record names its function.
            fields.function = span.scope().skip(1).find_map(|ancestor| {
                let ext = ancestor.extensions();
                ext.get::<Function>().map(|f| f.0.clone())
            });
        }
        let mut ext = span.extensions_mut();
        if let Some(function) = &fields.function {
            ext.insert(Function(function.clone()));
        }
        if fields.trace_id.is_some() && fields.span_id.is_some() {
            ext.insert(Open {
                start: SystemTime::now(),
                fields,
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let data = span_data(span.name(), open);
        if self.otlp.queue.try_send(Item::Span(Box::new(data))).is_err() {
            warn!("OTLP queue full: a span was dropped");
        }
    }
}

/// The function a span (or an ancestor) runs in.
struct Function(String);

fn span_data(name: &'static str, open: Open) -> SpanData {
    let Open { start, fields } = open;
    let function = fields.function.unwrap_or_else(|| "relaychat".into());
    // A record is consumed; an action or request is served.
    let kind = if name == "record" {
        SpanKind::Consumer
    } else {
        SpanKind::Server
    };
    let mut attributes = fields.attributes;
    attributes.push(KeyValue::new("faas.name", function.clone()));
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(fields.trace_id.unwrap_or_default()),
            SpanId::from(fields.span_id.unwrap_or_default()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: fields.parent_span_id.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: fields.parent_span_id.is_some(),
        span_kind: kind,
        name: Cow::Owned(format!("{function} {name}")),
        start_time: start,
        end_time: SystemTime::now(),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("relaychat").build(),
    }
}
