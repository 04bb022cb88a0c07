//! Prometheus metrics. Each binary owns a [`Registry`] in its state (no global recorder),
//! so tests can run many instances in one process.

use prometheus::{core::Collector, HistogramOpts, Opts};
pub use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out) {
        tracing::warn!(error = %e, "could not encode metrics");
    }
    out
}

/// Latency buckets from 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

// Metric definitions are static: an invalid name or a duplicate is a programming error,
// caught by any test that builds the binary's state.
fn register<C: Collector + Clone + 'static>(registry: &Registry, c: Result<C, prometheus::Error>) -> C {
    let c = c.unwrap_or_else(|e| panic!("invalid metric definition: {e}"));
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("metric registered twice: {e}"));
    c
}

pub fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help))
}

pub fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(r, IntCounterVec::new(Opts::new(name, help), labels))
}

pub fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help))
}

pub fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels))
}

pub fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(r, Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())))
}
