//! Rendering topologies for people: tables, ages, one-word status.

use chrono::{DateTime, Utc};
use concord_schemas::{ConditionStatus, Topology, condition_type};

/// A left-aligned text table.
#[derive(Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `5s`, `3m`, `2h`, `4d` since `t`.
pub fn age(t: Option<DateTime<Utc>>) -> String {
    let Some(t) = t else {
        return "<unknown>".into();
    };
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// One word (or a short phrase) for the state of a topology.
pub fn phase(t: &Topology) -> String {
    if t.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let Some(status) = &t.status else {
        return "Pending".into();
    };
    let is_true = |ty: &str| {
        status
            .condition(ty)
            .is_some_and(|c| c.status == ConditionStatus::True)
    };
    if let Some(c) = status
        .condition(condition_type::DEGRADED)
        .filter(|c| c.status == ConditionStatus::True)
    {
        return if c.reason.is_empty() {
            "Degraded".into()
        } else {
            format!("Degraded ({})", c.reason)
        };
    }
    if status.observed_generation < t.metadata.generation.unwrap_or(0) {
        return "Progressing".into();
    }
    if is_true(condition_type::READY) {
        "Ready".into()
    } else if is_true(condition_type::PROGRESSING) {
        "Progressing".into()
    } else {
        "NotReady".into()
    }
}

/// `ready/desired` instances over all operators.
pub fn instances(t: &Topology) -> String {
    let desired: u32 = t.spec.operators.iter().map(|o| o.instances).sum();
    let ready: u32 = t
        .status
        .as_ref()
        .map_or(0, |s| s.operators.iter().map(|o| o.ready).sum());
    format!("{ready}/{desired}")
}

/// The row `get topologies` prints for one topology.
pub fn topology_row(t: &Topology, with_namespace: bool) -> Vec<String> {
    let mut row = Vec::new();
    if with_namespace {
        row.push(t.metadata.namespace.clone());
    }
    row.push(t.metadata.name.clone());
    row.push(t.spec.operators.len().to_string());
    row.push(instances(t));
    row.push(t.metadata.generation.unwrap_or(0).to_string());
    row.push(
        t.status
            .as_ref()
            .map_or(0, |s| s.observed_generation)
            .to_string(),
    );
    row.push(phase(t));
    row.push(age(t.metadata.creation_timestamp));
    row
}

/// Column headers matching [`topology_row`].
pub fn topology_headers(with_namespace: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if with_namespace {
        h.push("NAMESPACE");
    }
    h.extend([
        "NAME",
        "OPERATORS",
        "READY",
        "GENERATION",
        "OBSERVED",
        "STATUS",
        "AGE",
    ]);
    h
}
