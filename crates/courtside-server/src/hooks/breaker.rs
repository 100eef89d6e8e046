//! The app hooks' circuit breaker: closed while calls succeed; open for a while after
//! `failures_max` failed calls in a row (calls are refused at once); then half-open, where one
//! call probes the backend — its success closes the breaker, its failure opens it again. A probe
//! that never reports (its request was dropped) frees the way for another after `probe_max`.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    failures_max: u32,
    open_for: Duration,
    probe_max: Duration,
    failures_in_a_row: u32,
    open_until: Option<Instant>,
    probe_started: Option<Instant>,
}

impl Breaker {
    pub fn new(failures_max: u32, open_for: Duration, probe_max: Duration) -> Self {
        Self { failures_max: failures_max.max(1), open_for, probe_max, failures_in_a_row: 0, open_until: None, probe_started: None }
    }

    /// Whether calls are refused (open, or half-open with a probe under way).
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// Whether a call may go to the backend now.
    pub fn admit(&mut self, now: Instant) -> bool {
        let Some(open_until) = self.open_until else { return true };
        if now < open_until {
            return false;
        }
        match self.probe_started {
            Some(started) if now.saturating_duration_since(started) < self.probe_max => false,
            _ => {
                self.probe_started = Some(now);
                true
            }
        }
    }

    pub fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
        self.open_until = None;
        self.probe_started = None;
    }

    pub fn failed(&mut self, now: Instant) {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        if self.probe_started.is_some() || self.failures_in_a_row >= self.failures_max {
            self.open_until = Some(now + self.open_for);
            self.probe_started = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(10);
    const PROBE: Duration = Duration::from_secs(3);

    #[test]
    fn opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let now = Instant::now();
        let mut breaker = Breaker::new(3, OPEN, PROBE);
        breaker.failed(now);
        breaker.failed(now);
        breaker.succeeded();
        breaker.failed(now);
        breaker.failed(now);
        assert!(breaker.admit(now), "two in a row since the success");
        breaker.failed(now);
        assert!(breaker.is_open());
        assert!(!breaker.admit(now + OPEN - Duration::from_millis(1)));
    }

    #[test]
    fn half_open_lets_one_probe_through_which_closes_or_reopens() {
        let now = Instant::now();
        let mut breaker = Breaker::new(1, OPEN, PROBE);
        breaker.failed(now);
        let later = now + OPEN;
        assert!(breaker.admit(later), "the probe");
        assert!(!breaker.admit(later), "one probe at a time");
        breaker.failed(later);
        assert!(!breaker.admit(later + OPEN - Duration::from_millis(1)), "a failed probe opens it again");
        let again = later + OPEN;
        assert!(breaker.admit(again));
        breaker.succeeded();
        assert!(!breaker.is_open());
        assert!(breaker.admit(again) && breaker.admit(again), "closed: every call goes");
    }

    #[test]
    fn a_probe_that_never_reports_frees_the_way_after_its_deadline() {
        let now = Instant::now();
        let mut breaker = Breaker::new(1, OPEN, PROBE);
        breaker.failed(now);
        assert!(breaker.admit(now + OPEN));
        assert!(!breaker.admit(now + OPEN + PROBE - Duration::from_millis(1)));
        assert!(breaker.admit(now + OPEN + PROBE));
    }
}
