//! Per-phase results: operations, errors, operations/s, latency percentiles (HdrHistogram,
//! microseconds, 3 significant digits), as a text table and as JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::workload::Phase;

/// Latencies from 1 µs to 10 min.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

#[derive(Clone)]
pub struct PhaseResult {
    pub phase: Phase,
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl PhaseResult {
    pub fn ops_per_s(&self) -> f64 {
        per_s(self.ops, self.elapsed)
    }

    fn ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn to_json(&self) -> Value {
        let us = |q: f64| if self.latency.is_empty() { 0 } else { self.latency.value_at_quantile(q) };
        json!({
            "phase": self.phase.name(),
            "ops": self.ops,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "ops_per_s": self.ops_per_s(),
            "p50_us": us(0.50),
            "p90_us": us(0.90),
            "p99_us": us(0.99),
            "max_us": self.latency.max(),
            "mean_us": self.latency.mean(),
        })
    }
}

fn per_s(ops: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        ops as f64 / secs
    } else {
        0.0
    }
}

/// The phases of the lifecycle taken together: their operations over the sum of their
/// durations (phases run one after another, so that is the time the lifecycle took).
pub struct Summary {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Summary {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a PhaseResult>) -> anyhow::Result<Summary> {
        let mut s = Summary { ops: 0, errors: 0, elapsed: Duration::ZERO, latency: histogram()? };
        for r in results {
            s.ops += r.ops;
            s.errors += r.errors;
            s.elapsed += r.elapsed;
            let _ = s.latency.add(&r.latency);
        }
        Ok(s)
    }

    pub fn to_json(&self) -> Value {
        let us = |q: f64| if self.latency.is_empty() { 0 } else { self.latency.value_at_quantile(q) };
        json!({
            "ops": self.ops,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "ops_per_s": per_s(self.ops, self.elapsed),
            "p50_us": us(0.50),
            "p99_us": us(0.99),
        })
    }
}

pub fn table(results: &[PhaseResult], lifecycle: Option<&Summary>) -> String {
    let mut out = format!(
        "{:<14} {:>8} {:>7} {:>10} {:>9} {:>9}\n",
        "phase", "ops", "errors", "ops/s", "p50 ms", "p99 ms"
    );
    for r in results {
        out.push_str(&format!(
            "{:<14} {:>8} {:>7} {:>10.1} {:>9.3} {:>9.3}\n",
            r.phase.name(),
            r.ops,
            r.errors,
            r.ops_per_s(),
            r.ms(0.50),
            r.ms(0.99)
        ));
    }
    if let Some(s) = lifecycle {
        let ms =
            |q: f64| if s.latency.is_empty() { 0.0 } else { s.latency.value_at_quantile(q) as f64 / 1000.0 };
        out.push_str(&format!(
            "{:<14} {:>8} {:>7} {:>10.1} {:>9.3} {:>9.3}\n",
            "lifecycle",
            s.ops,
            s.errors,
            per_s(s.ops, s.elapsed),
            ms(0.50),
            ms(0.99)
        ));
    }
    out
}
