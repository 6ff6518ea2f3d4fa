//! Prometheus metrics (`GET /metrics`): records accepted, rejected by reason, resends answered
//! without a new row, batch sizes, record request latency and database errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: &'static str,
    field: &'static str,
}

/// Every metric the collector exports; cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    accepted: Counter,
    rejected: Family<RejectLabels, Counter>,
    unavailable: Counter,
    in_flight: Gauge,
    batch_size: Histogram,
    latency: Histogram,
    database_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("telem_collector");
        let accepted = Counter::default();
        let rejected = Family::<RejectLabels, Counter>::default();
        let unavailable = Counter::default();
        let in_flight = Gauge::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let database_errors = Counter::default();
        registry.register(
            "records_accepted",
            "Records stored and answered 201",
            accepted.clone(),
        );
        registry.register(
            "records_rejected",
            "Records answered 400 or 413, by reason and field",
            rejected.clone(),
        );
        registry.register(
            "records_unavailable",
            "Records answered 503 (database unavailable or overloaded)",
            unavailable.clone(),
        );
        registry.register(
            "record_requests_in_flight",
            "Record requests received and not yet answered",
            in_flight.clone(),
        );
        registry.register(
            "batch_size_records",
            "Records per group-commit transaction",
            batch_size.clone(),
        );
        registry.register(
            "record_request_duration_seconds",
            "Time from receiving a record request to answering it",
            latency.clone(),
        );
        registry.register(
            "database_errors",
            "Failed batches and failed single-record retries",
            database_errors.clone(),
        );
        Self {
            registry,
            accepted,
            rejected,
            unavailable,
            in_flight,
            batch_size,
            latency,
            database_errors,
        }
    }

    pub fn accepted(&self) {
        self.accepted.inc();
    }
    pub fn rejected(&self, reason: &'static str, field: &'static str) {
        self.rejected
            .get_or_create(&RejectLabels { reason, field })
            .inc();
    }
    pub fn unavailable(&self) {
        self.unavailable.inc();
    }
    /// Marks a record request as started; the guard marks it answered when dropped.
    pub fn request_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }
    /// Record requests currently being handled.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
    pub fn observe_batch(&self, records: usize) {
        self.batch_size.observe(records as f64);
    }
    pub fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }
    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Decrements the in-flight gauge when the request is answered (or dropped).
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.accepted();
        m.rejected("invalid", "severity");
        m.observe_batch(3);
        m.observe_latency(0.002);
        let text = m.render();
        for name in [
            "telem_collector_records_accepted_total 1",
            "telem_collector_records_rejected_total{reason=\"invalid\",field=\"severity\"} 1",
            "telem_collector_batch_size_records_count 1",
            "telem_collector_record_request_duration_seconds_bucket",
            "telem_collector_database_errors_total 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
