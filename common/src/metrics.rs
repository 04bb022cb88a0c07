//! Prometheus metrics. Each binary owns a [`Registry`] in its state (no global recorder),
//! so tests can run many instances in one process. Names carry their unit (`_seconds`,
//! `_messages`, `_bytes`, `_total`).

use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    HistogramOpts, Opts,
};
pub use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// A registry with the process metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, ...) of this process.
pub fn registry() -> Registry {
    let registry = Registry::new();
    let process = prometheus::process_collector::ProcessCollector::for_self();
    registry.register(Box::new(process)).unwrap_or_else(|e| panic!("process metrics registered twice: {e}"));
    registry
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out) {
        tracing::warn!(error = %e, "could not encode metrics");
    }
    out
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text, as
/// scraped by tests and benchmarks. `name` matches whole metric names only.
pub fn sum_samples(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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

pub fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(r, HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels))
}

/// A gauge read when it is scraped (a queue length, say), so it is never stale.
pub fn gauge_fn(r: &Registry, name: &str, help: &str, read: impl Fn() -> i64 + Send + Sync + 'static) {
    let gauge = IntGauge::new(name, help).unwrap_or_else(|e| panic!("invalid metric definition: {e}"));
    let collector = GaugeFn { gauge, read: Box::new(read) };
    r.register(Box::new(collector)).unwrap_or_else(|e| panic!("metric registered twice: {e}"));
}

struct GaugeFn {
    gauge: IntGauge,
    read: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl Collector for GaugeFn {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set((self.read)());
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_fns_are_read_on_scrape_and_samples_sum_by_whole_name() {
        let r = Registry::new();
        let value = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(3));
        let read = value.clone();
        gauge_fn(&r, "abtest_queue_messages", "q", move || read.load(std::sync::atomic::Ordering::SeqCst));
        let c = counter_vec(&r, "abtest_queue_messages_total", "c", &["k"]);
        c.with_label_values(&["a"]).inc_by(2);
        c.with_label_values(&["b"]).inc_by(5);
        assert_eq!(sum_samples(&render(&r), "abtest_queue_messages"), 3.0);
        value.store(9, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(sum_samples(&render(&r), "abtest_queue_messages"), 9.0);
        assert_eq!(sum_samples(&render(&r), "abtest_queue_messages_total"), 7.0);
    }
}
