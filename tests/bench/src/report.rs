//! What the benchmark found: figures (samples of several runs, a unit, an optional
//! target), the table printed at the end, the JSON file and the `BENCH` line.

use crate::stats::{summarize, Summary};
use serde_json::{json, Value};

/// A target from the issue, checked against a figure's median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The median must be below this.
    Below(f64),
    /// The median must be at least this.
    AtLeast(f64),
    /// The median must be at most this.
    AtMost(f64),
}

impl Target {
    pub fn met(self, median: f64) -> bool {
        match self {
            Target::Below(b) => median < b,
            Target::AtLeast(b) => median >= b,
            Target::AtMost(b) => median <= b,
        }
    }

    fn show(self) -> String {
        match self {
            Target::Below(b) => format!("< {}", num(b)),
            Target::AtLeast(b) => format!(">= {}", num(b)),
            Target::AtMost(b) => format!("<= {}", num(b)),
        }
    }
}

/// One row of the table: every run's value of one measured quantity.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable key, used in the JSON and by the `BENCH` line (`ft.primary_loss_ms`).
    pub id: &'static str,
    pub label: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    pub target: Option<Target>,
}

impl Figure {
    pub fn summary(&self) -> Option<Summary> {
        summarize(&self.samples)
    }

    /// `Some(met)` when the figure has a target and samples.
    pub fn met(&self) -> Option<bool> {
        Some(self.target?.met(self.summary()?.median))
    }
}

/// The benchmark's findings, in sections, plus notes on how things were measured.
#[derive(Debug, Default)]
pub struct Report {
    /// (section title, its figures), in the order they are printed.
    pub sections: Vec<(String, Vec<Figure>)>,
    /// Lines printed under the table (how it was measured, what failed).
    pub notes: Vec<String>,
    /// `key: value` facts about the run (accelerator, QEMU, runs, date).
    pub meta: Vec<(String, String)>,
}

impl Report {
    /// A report whose sections are printed in this order, whatever order the
    /// figures come in.
    pub fn with_sections(titles: &[&str]) -> Report {
        Report {
            sections: titles.iter().map(|t| (t.to_string(), Vec::new())).collect(),
            ..Report::default()
        }
    }

    /// Add a figure to section `section` (made at the end if it is new).
    pub fn add(
        &mut self,
        section: &str,
        id: &'static str,
        label: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
        target: Option<Target>,
    ) {
        let f = Figure {
            id,
            label: label.into(),
            unit,
            samples,
            target,
        };
        match self.sections.iter_mut().find(|(t, _)| t == section) {
            Some((_, figs)) => figs.push(f),
            None => self.sections.push((section.to_string(), vec![f])),
        }
    }

    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    pub fn figure(&self, id: &str) -> Option<&Figure> {
        self.sections
            .iter()
            .flat_map(|(_, f)| f)
            .find(|f| f.id == id)
    }

    fn median(&self, id: &str) -> Option<f64> {
        Some(self.figure(id)?.summary()?.median)
    }

    /// The table: one row per figure, median and spread (min/max) over the runs.
    pub fn table(&self) -> String {
        let head = [
            "figure", "unit", "median", "min", "max", "runs", "target", "",
        ];
        let mut rows: Vec<Option<[String; 8]>> = vec![Some(head.map(String::from))];
        for (title, figs) in self.sections.iter().filter(|(_, f)| !f.is_empty()) {
            rows.push(None);
            rows.push(Some([
                title.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]));
            for f in figs {
                let s = f.summary();
                let v = |g: fn(&Summary) -> f64| s.as_ref().map_or("-".into(), |s| num(g(s)));
                rows.push(Some([
                    format!("  {}", f.label),
                    f.unit.to_string(),
                    v(|s| s.median),
                    v(|s| s.min),
                    v(|s| s.max),
                    s.map_or("0".into(), |s| s.n.to_string()),
                    f.target.map_or(String::new(), Target::show),
                    match f.met() {
                        Some(true) => "met".into(),
                        Some(false) => "MISSED".into(),
                        None if f.target.is_some() => "not measured".into(),
                        None => String::new(),
                    },
                ]));
            }
        }
        let mut width = [0usize; 8];
        for r in rows.iter().flatten().skip(1) {
            // Section titles span the row; they do not widen the first column.
            if r[1].is_empty() && r[2].is_empty() && !r[0].starts_with("  ") {
                continue;
            }
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        for (w, c) in width.iter_mut().zip(&head) {
            *w = (*w).max(c.len());
        }
        let mut out = String::new();
        for r in &rows {
            let Some(r) = r else {
                out.push('\n');
                continue;
            };
            let is_title = r[1..].iter().all(String::is_empty) && !r[0].starts_with("  ");
            let line = if is_title {
                r[0].clone()
            } else {
                let mut l = String::new();
                for (j, (c, w)) in r.iter().zip(width).enumerate() {
                    match j {
                        0 | 1 | 6 | 7 => l.push_str(&format!("{c:<w$}")),
                        _ => l.push_str(&format!("{c:>w$}")),
                    }
                    l.push_str("  ");
                }
                l
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The same findings as JSON (every sample, the summary, the target and verdict).
    pub fn json(&self) -> Value {
        let sections: Vec<Value> = self
            .sections
            .iter()
            .map(|(title, figs)| {
                let figs: Vec<Value> = figs
                    .iter()
                    .map(|f| {
                        json!({
                            "id": f.id,
                            "label": f.label,
                            "unit": f.unit,
                            "samples": f.samples,
                            "summary": f.summary(),
                            "target": f.target.map(Target::show),
                            "met": f.met(),
                        })
                    })
                    .collect();
                json!({"title": title, "figures": figs})
            })
            .collect();
        let meta: serde_json::Map<String, Value> = self
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "meta": meta,
            "sections": sections,
            "notes": self.notes,
            "bench": self.bench_line(),
        })
    }

    /// `BENCH failover_ms=N ha_ms=N rr_ratio=X write_ratio=X cpu_ratio=X
    /// protect_ratio=X ftd_rss_mib=X`: medians; `na` for a figure not measured.
    pub fn bench_line(&self) -> String {
        let int = |id: &str| self.median(id).map_or("na".into(), |v| format!("{v:.0}"));
        let x = |v: Option<f64>| v.map_or("na".into(), |v| format!("{v:.2}"));
        let worst = |ids: &[&str], max: bool| {
            ids.iter()
                .filter_map(|id| self.median(id))
                .reduce(|a, b| if (b > a) == max { b } else { a })
        };
        format!(
            "BENCH failover_ms={} ha_ms={} rr_ratio={} write_ratio={} cpu_ratio={} protect_ratio={} ftd_rss_mib={}",
            int(ids::FAILOVER_MS),
            int(ids::HA_MS),
            x(self.median(ids::RR_RATIO)),
            x(self.median(ids::WRITE_RATIO)),
            x(self.median(ids::CPU_RATIO)),
            x(worst(ids::PROTECT_RATIOS, true)),
            worst(ids::FTD_RSS_PROTECTING, true).map_or("na".into(), |v| format!("{v:.1}")),
        )
    }
}

/// The ids the `BENCH` line reads.
pub mod ids {
    pub const FAILOVER_MS: &str = "ft.primary_loss_ms";
    pub const HA_MS: &str = "ha.primary_loss_ms";
    pub const RR_RATIO: &str = "overhead.rr_ratio";
    pub const WRITE_RATIO: &str = "overhead.write_ratio";
    pub const CPU_RATIO: &str = "overhead.cpu_ratio";
    /// The larger (worse) of the two guest sizes' medians.
    pub const PROTECT_RATIOS: &[&str] = &["protect.ratio_256", "protect.ratio_1024"];
    /// The larger of the primary's and the secondary's medians.
    pub const FTD_RSS_PROTECTING: &[&str] =
        &["ftd.rss_protecting_primary", "ftd.rss_protecting_secondary"];
}

/// A number for the table: integers plain, small values with 2-3 significant decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::with_sections(&["2. failover", "1. overhead"]);
        let f = "2. failover";
        let o = "1. overhead";
        r.add(
            o,
            ids::RR_RATIO,
            "rr ratio",
            "x",
            vec![0.5, 0.6, 0.55],
            Some(Target::AtLeast(0.7)),
        );
        r.add(
            f,
            ids::FAILOVER_MS,
            "primary loss",
            "ms",
            vec![900.0, 870.0, 1100.0],
            Some(Target::Below(1000.0)),
        );
        r.add(
            f,
            ids::HA_MS,
            "HA restart",
            "ms",
            vec![6000.0, 6400.0],
            None,
        );
        r.add(
            o,
            "protect.ratio_256",
            "protect 256",
            "x",
            vec![1.2],
            Some(Target::AtMost(1.5)),
        );
        r.add(
            o,
            "protect.ratio_1024",
            "protect 1024",
            "x",
            vec![1.6],
            Some(Target::AtMost(1.5)),
        );
        r.add(
            o,
            "ftd.rss_protecting_primary",
            "rss",
            "MiB",
            vec![9.0, 9.5],
            Some(Target::Below(20.0)),
        );
        r.add(
            o,
            ids::CPU_RATIO,
            "cpu",
            "x",
            vec![],
            Some(Target::AtLeast(0.9)),
        );
        r
    }

    #[test]
    fn bench_line_has_the_medians_and_na_for_the_missing() {
        assert_eq!(
            sample().bench_line(),
            "BENCH failover_ms=900 ha_ms=6200 rr_ratio=0.55 write_ratio=na cpu_ratio=na protect_ratio=1.60 ftd_rss_mib=9.2"
        );
    }

    #[test]
    fn targets_are_judged_on_the_median() {
        let r = sample();
        assert_eq!(r.figure(ids::FAILOVER_MS).unwrap().met(), Some(true));
        assert_eq!(r.figure(ids::RR_RATIO).unwrap().met(), Some(false));
        assert_eq!(r.figure(ids::HA_MS).unwrap().met(), None);
        assert_eq!(r.figure(ids::CPU_RATIO).unwrap().met(), None);
        assert!(Target::AtMost(1.5).met(1.5) && !Target::Below(1.5).met(1.5));
    }

    #[test]
    fn table_has_sections_rows_and_verdicts() {
        let t = sample().table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("figure") && lines[0].contains("median"),
            "{t}"
        );
        assert!(
            t.contains("\n2. failover\n") && t.contains("\n1. overhead\n"),
            "{t}"
        );
        let row = lines.iter().find(|l| l.contains("primary loss")).unwrap();
        assert!(
            row.contains("900") && row.contains("870") && row.contains("1100"),
            "{row}"
        );
        assert!(
            row.contains("< 1000") && row.trim_end().ends_with("met"),
            "{row}"
        );
        let row = lines.iter().find(|l| l.contains("rr ratio")).unwrap();
        assert!(row.contains("0.55") && row.ends_with("MISSED"), "{row}");
        let row = lines.iter().find(|l| l.contains("  cpu")).unwrap();
        assert!(row.ends_with("not measured"), "{row}");
    }

    #[test]
    fn json_carries_samples_and_verdicts() {
        let j = sample().json();
        let f = &j["sections"][0]["figures"][0];
        assert_eq!(f["id"], ids::FAILOVER_MS);
        assert_eq!(f["samples"].as_array().unwrap().len(), 3);
        assert_eq!(f["summary"]["median"], 900.0);
        assert_eq!(f["met"], true);
        assert!(j["bench"]
            .as_str()
            .unwrap()
            .starts_with("BENCH failover_ms=900 "));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(0.456), "0.46");
        assert_eq!(num(3.0), "3");
        assert_eq!(num(f64::NAN), "-");
    }
}
