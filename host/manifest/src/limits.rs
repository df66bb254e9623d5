/// Limits a manifest asks for; unset ones take the host's defaults, and the operator's ceilings cap
/// them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsRequest {
    /// Linear memory per instance, in MiB.
    pub memory_mib: Option<u32>,
    /// Wall-clock deadline per call, in milliseconds.
    pub timeout_ms: Option<u32>,
    /// Largest request body the plugin accepts, in KiB.
    pub max_request_body_kib: Option<u32>,
    /// Largest response body the plugin may return, in KiB.
    pub max_response_body_kib: Option<u32>,
    /// Instances of this plugin running at once.
    pub max_concurrency: Option<u32>,
    /// Outbound HTTP requests per invocation.
    pub max_outbound_requests: Option<u32>,
    /// CPU time per call, in milliseconds (the wall-clock deadline is `timeout_ms`).
    pub cpu_ms: Option<u32>,
    /// Outbound HTTP bytes per invocation, request and response bodies together, in KiB.
    pub max_outbound_kib: Option<u32>,
    /// Events the plugin may publish per minute.
    pub events_per_minute: Option<u32>,
    /// Log lines the plugin may write per minute; lines over it are dropped and counted.
    pub log_lines_per_minute: Option<u32>,
}

/// Bounds a manifest value must be within, whatever the operator's ceilings: (key, min, max).
pub(crate) const BOUNDS: [(&str, u32, u32); 10] = [
    ("memory-mib", 1, 4096),
    ("timeout-ms", 1, 600_000),
    ("max-request-body-kib", 1, 1_048_576),
    ("max-response-body-kib", 1, 1_048_576),
    ("max-concurrency", 1, 10_000),
    ("max-outbound-requests", 0, 10_000),
    ("cpu-ms", 1, 600_000),
    ("max-outbound-kib", 0, 4_194_304),
    ("events-per-minute", 0, 1_000_000),
    ("log-lines-per-minute", 0, 1_000_000),
];
