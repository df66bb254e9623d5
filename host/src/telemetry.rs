//! Logs and traces: the `tracing` subscriber of the `ucms` binary.
//!
//! Log lines go to stderr (text or JSON, filtered by `[log] level`). With `[telemetry]
//! otlp-endpoint`, spans also go to an OpenTelemetry collector over OTLP/HTTP (protobuf): each
//! HTTP request (`http.request`), each plugin invocation inside it (`plugin.invoke`, with the
//! plugin, kind, outcome, CPU time and peak memory) and each host call the plugin makes
//! (`ucms::host_call` spans such as `kv.get` or `documents.query`), parented so a collector shows
//! one trace per request. A caller's W3C `traceparent` header continues its trace.
//!
//! The exporter sends with the host's own reqwest client on the tokio runtime; spans are batched
//! and flushed when [`Telemetry`] is dropped at exit.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, TelemetryConfig};

/// The spans exported over OTLP: requests and invocations (info), host calls (debug, target
/// `ucms::host_call`).
const EXPORT_FILTER: &str = "info,ucms::host_call=debug,h2=off,hyper=off,reqwest=off,sqlx=off";

/// Keeps the trace exporter alive; dropping it flushes what is buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: could not flush the last traces: {e}");
        }
    }
}

/// Installs the global subscriber: log lines filtered by `filter`, and, when configured, the OTLP
/// exporter (its requests run on `runtime`).
pub fn init(
    filter: &str,
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    runtime: &tokio::runtime::Handle,
) -> Telemetry {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: log filter '{filter}' is not valid ({e}); using 'info'");
        EnvFilter::new("info")
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = if log.format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (otel, provider) = match &telemetry.otlp_endpoint {
        Some(endpoint) => match tracer_provider(endpoint, telemetry, runtime) {
            Ok(provider) => {
                let tracer = provider.tracer("ucms");
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(EnvFilter::new(EXPORT_FILTER));
                (Some(layer), Some(provider))
            }
            Err(e) => {
                eprintln!("warning: traces won't be exported to {endpoint}: {e:#}");
                (None, None)
            }
        },
        None => (None, None),
    };
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    // `crate::devlog`: the test harness's record of plugin log lines (idle unless enabled).
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(crate::devlog::layer())
        .try_init();
    Telemetry { provider }
}

fn tracer_provider(
    endpoint: &str,
    telemetry: &TelemetryConfig,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<SdkTracerProvider> {
    crate::install_crypto_provider();
    let client = OtlpClient {
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
        runtime: runtime.clone(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            telemetry.sample_ratio.clamp(0.0, 1.0),
        ))))
        .with_resource(resource)
        .build())
}

/// The OTLP exporter's HTTP client: the host's reqwest, its requests spawned on the tokio runtime
/// (the batch exporter runs on a thread of its own).
#[derive(Debug, Clone)]
struct OtlpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let (parts, body) = request.into_parts();
                let url = parts.uri.to_string();
                let response = client
                    .request(parts.method, url)
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                let mut out = http::Response::new(body);
                *out.status_mut() = status;
                *out.headers_mut() = headers;
                Ok(out)
            })
            .await?
    }
}

/// Continues a caller's trace: the W3C `traceparent` of `headers` becomes the parent of `span`
/// (when traces are exported; otherwise the propagator is a no-op).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(context);
}
