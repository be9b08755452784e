//! Results of one workload run ([`Row`]) and their renderings: a fixed-width table for
//! stdout and JSON values for `--json`.

use crate::args::Settings;
use crate::hist::Histogram;
use crate::json::Json;

/// What one "op" of a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// One request and its reply.
    Request,
    /// A fixed sequence of requests (lock: create + getChildren + delete; session: connect +
    /// close).
    Cycle,
    /// watch-fanout: one setData until the last watcher's notification.
    Round,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Request => "request",
            Unit::Cycle => "cycle",
            Unit::Round => "round",
        }
    }
}

/// The measured result of one workload (or one part of it, e.g. serial-read).
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub unit: Unit,
    /// Ops that completed successfully inside the measured window.
    pub ops: u64,
    /// Ops that failed inside the measured window.
    pub errors: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Latency of the successful ops, in microseconds.
    pub hist: Histogram,
    pub first_error: Option<String>,
    /// Watch notifications per op (watch-fanout), else 1.
    pub events_per_op: u64,
    /// CPU time (user + system) the server process used during the measured window, when
    /// its PID is known (`--compare`, `--server-pid`); for an ensemble, summed over the
    /// members.
    pub server_cpu_s: Option<f64>,
    /// An ensemble's CPU time per member (in member order); empty for one server.
    pub member_cpu_s: Vec<f64>,
    /// Open loop (`--rate`): the offered ops/s and what became of the ops it scheduled in
    /// the measured window; `None` for a closed-loop row.
    pub open_loop: Option<OpenLoop>,
}

/// The schedule's side of an open-loop row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenLoop {
    /// Offered load, ops/s.
    pub rate: u64,
    /// Ops scheduled with an intended start in the measured window.
    pub offered: u64,
    /// Of those, not sent because `--max-inflight` ops were outstanding.
    pub missed: u64,
    /// Of those, sent over [`crate::rate::LATE_AFTER`] after their intended start (the load
    /// generator was behind).
    pub late: u64,
}

impl Row {
    pub fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Records the CPU time of each server process (one, or each ensemble member).
    pub fn set_cpu(&mut self, per_server_s: Vec<f64>) {
        self.server_cpu_s = Some(per_server_s.iter().sum());
        self.member_cpu_s = if per_server_s.len() > 1 {
            per_server_s
        } else {
            Vec::new()
        };
    }

    /// Server CPU microseconds per op (needs the server's PID).
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let cpu = self.server_cpu_s?;
        (self.ops > 0).then(|| cpu * 1e6 / self.ops as f64)
    }

    /// Latency at quantile `q`, microseconds.
    pub fn latency_us(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }

    pub fn to_json(&self) -> Json {
        let h = &self.hist;
        Json::obj([
            ("workload", Json::str(&self.name)),
            ("unit", Json::str(self.unit.name())),
            ("ops", Json::UInt(self.ops)),
            ("errors", Json::UInt(self.errors)),
            ("seconds", Json::Num(self.seconds)),
            ("ops_per_sec", Json::Num(round2(self.ops_per_sec()))),
            (
                "events_per_sec",
                Json::Num(round2(self.ops_per_sec() * self.events_per_op as f64)),
            ),
            (
                "latency_us",
                Json::obj([
                    ("min", Json::UInt(h.min())),
                    ("mean", Json::Num(round2(h.mean()))),
                    ("p50", Json::UInt(h.value_at_quantile(0.50))),
                    ("p90", Json::UInt(h.value_at_quantile(0.90))),
                    ("p99", Json::UInt(h.value_at_quantile(0.99))),
                    ("p999", Json::UInt(h.value_at_quantile(0.999))),
                    ("max", Json::UInt(h.max())),
                ]),
            ),
            (
                "server_cpu_s",
                self.server_cpu_s
                    .map(|c| Json::Num(round2(c)))
                    .unwrap_or(Json::Null),
            ),
            (
                "server_cpu_us_per_op",
                self.server_cpu_us_per_op()
                    .map(|c| Json::Num(round2(c)))
                    .unwrap_or(Json::Null),
            ),
            (
                "member_cpu_s",
                if self.member_cpu_s.is_empty() {
                    Json::Null
                } else {
                    Json::Arr(
                        self.member_cpu_s
                            .iter()
                            .map(|&c| Json::Num(round2(c)))
                            .collect(),
                    )
                },
            ),
            (
                "open_loop",
                self.open_loop
                    .map(|o| {
                        Json::obj([
                            ("rate", Json::UInt(o.rate)),
                            ("offered", Json::UInt(o.offered)),
                            ("missed", Json::UInt(o.missed)),
                            ("late", Json::UInt(o.late)),
                        ])
                    })
                    .unwrap_or(Json::Null),
            ),
            (
                "first_error",
                self.first_error
                    .clone()
                    .map(Json::Str)
                    .unwrap_or(Json::Null),
            ),
        ])
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The settings that shape the load, for reports.
pub fn settings_json(s: &Settings) -> Json {
    Json::obj([
        (
            "workloads",
            Json::Arr(s.workloads.iter().map(|w| Json::str(w.name())).collect()),
        ),
        ("sessions", Json::UInt(s.sessions as u64)),
        ("inflight_per_session", Json::UInt(s.inflight as u64)),
        ("max_inflight", Json::UInt(s.max_inflight as u64)),
        ("rate", s.rate.map(Json::UInt).unwrap_or(Json::Null)),
        ("warmup_s", Json::Num(s.warmup.as_secs_f64())),
        ("duration_s", Json::Num(s.duration.as_secs_f64())),
        ("keys", Json::UInt(s.keys as u64)),
        ("value_bytes", Json::UInt(s.value_size as u64)),
        ("watchers", Json::UInt(s.watchers as u64)),
        ("seed", s.seed.map(Json::UInt).unwrap_or(Json::Null)),
    ])
}

/// Thousands separators for readability: 1234567 -> "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The stdout table of rows. The last column is the server's CPU time per op, when known.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<14} {:>8} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11}\n",
        "workload",
        "unit",
        "ops",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "errors",
        "srv CPU µs"
    );
    for r in rows {
        let cpu = r
            .server_cpu_us_per_op()
            .map(|c| format!("{c:.1}"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<14} {:>8} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11}\n",
            r.name,
            r.unit.name(),
            group(r.ops),
            group(r.ops_per_sec().round() as u64),
            group(r.latency_us(0.5)),
            group(r.latency_us(0.99)),
            group(r.latency_us(0.999)),
            group(r.hist.max()),
            group(r.errors),
            cpu,
        ));
        if r.events_per_op > 1 {
            out.push_str(&format!(
                "{:<14} {} notifications per round, {} notifications/s\n",
                "",
                r.events_per_op,
                group((r.ops_per_sec() * r.events_per_op as f64).round() as u64)
            ));
        }
        if let Some(o) = &r.open_loop {
            out.push_str(&format!("{:<14} {}\n", "", open_loop_note(r, o)));
        }
        if let Some(e) = &r.first_error {
            out.push_str(&format!("{:<14} first error: {e}\n", ""));
        }
    }
    out
}

/// The line under an open-loop row: target and achieved rate, and the schedule's misses.
pub fn open_loop_note(r: &Row, o: &OpenLoop) -> String {
    format!(
        "open loop: target {} ops/s, achieved {} ops/s; {} missed (in-flight cap full), \
         {} sent over {} ms late, of {} scheduled",
        group(o.rate),
        group(r.ops_per_sec().round() as u64),
        group(o.missed),
        group(o.late),
        crate::rate::LATE_AFTER.as_secs_f64() * 1e3,
        group(o.offered)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn table_and_json_of_a_row() {
        let mut hist = Histogram::new();
        for v in [100, 200, 300, 400] {
            hist.record(v);
        }
        let r = Row {
            name: "read".into(),
            unit: Unit::Request,
            ops: 4,
            errors: 1,
            seconds: 2.0,
            hist,
            first_error: Some("connection loss".into()),
            events_per_op: 1,
            server_cpu_s: Some(0.002),
            member_cpu_s: Vec::new(),
            open_loop: None,
        };
        assert_eq!(r.ops_per_sec(), 2.0);
        assert_eq!(r.server_cpu_us_per_op(), Some(500.0));
        let t = table(std::slice::from_ref(&r));
        assert!(t.lines().nth(1).unwrap().starts_with("read "), "{t}");
        assert!(t.contains("first error: connection loss"));
        let j = r.to_json().to_pretty();
        assert!(j.contains("\"ops_per_sec\": 2"), "{j}");
        assert!(j.contains("\"p50\": 200"), "{j}");
        assert!(j.contains("\"server_cpu_us_per_op\": 500"), "{j}");
        assert!(t.lines().nth(1).unwrap().ends_with(" 500.0"), "{t}");
        assert!(!t.contains("open loop") && j.contains("\"open_loop\": null"));

        let open = Row {
            open_loop: Some(OpenLoop {
                rate: 3,
                offered: 6,
                missed: 2,
                late: 1,
            }),
            ..r
        };
        let t = table(std::slice::from_ref(&open));
        assert!(
            t.contains("open loop: target 3 ops/s, achieved 2 ops/s; 2 missed"),
            "{t}"
        );
        assert!(t.contains("1 sent over 1 ms late, of 6 scheduled"), "{t}");
        let j = open.to_json().to_pretty();
        assert!(j.contains("\"missed\": 2"), "{j}");
    }
}
