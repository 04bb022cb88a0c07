//! Exponential backoff with jitter, cut short by shutdown.

use std::time::Duration;

use common::shutdown::CancellationToken;
use rand::Rng;

pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self { next: Duration::from_millis(100).min(max), max }
    }

    /// Sleeps for the next interval, ±25 % so that many consumers do not retry in step;
    /// `false` if shutdown came first.
    pub(crate) async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let jitter = rand::rng().random_range(0.75..1.25);
        let delay = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
