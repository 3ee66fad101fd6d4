//! The ratio report printed at the end of each criterion benchmark binary: for every pair
//! (subject, anchor) measured in this run, both medians and subject/anchor. Criterion writes
//! its estimates to `<target>/criterion/<group>/<function>/<parameter>/new/estimates.json`;
//! only files written by this process are read, so a filtered run never mixes in old numbers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One line of the report: a label and the criterion ids (`group/function/parameter`) of the
/// measured subject and of its anchor.
#[derive(Clone, Debug)]
pub struct Pair {
    pub label: String,
    pub subject: String,
    pub anchor: String,
}

impl Pair {
    pub fn new(label: impl Into<String>, subject: impl Into<String>, anchor: impl Into<String>) -> Self {
        Self { label: label.into(), subject: subject.into(), anchor: anchor.into() }
    }
}

/// Where criterion writes, found by criterion's own rule: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else (under cargo) the target directory `cargo metadata`
/// reports, else `./target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::var_os("CARGO")
        .and_then(|cargo| {
            let output = std::process::Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .output()
                .ok()?;
            let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
            metadata.get("target_directory")?.as_str().map(|t| Path::new(t).join("criterion"))
        })
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Criterion's directory name for a benchmark id: the characters it replaces become `_`.
fn id_dir(id: &str) -> PathBuf {
    id.split('/')
        .map(|part| {
            part.chars()
                .map(|c| match c {
                    '?' | '"' | '<' | '>' | '|' | '*' | ':' | '\\' | '.' => '_',
                    c => c,
                })
                .collect::<String>()
        })
        .collect()
}

/// Median (ns) of benchmark `id`, if this run measured it (file newer than `since`).
pub fn median_ns(id: &str, since: SystemTime) -> Option<f64> {
    let file = criterion_dir().join(id_dir(id)).join("new").join("estimates.json");
    let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}

/// Formats nanoseconds with a readable unit.
pub fn human_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A markdown table of the pairs measured since `since`; `None` when none was (e.g. a filter
/// excluded them, or `--list`).
pub fn ratio_table(title: &str, subject: &str, anchor: &str, pairs: &[Pair], since: SystemTime) -> Option<String> {
    let mut out = format!(
        "\n### {title}\n\n| case | {subject} (median) | {anchor} (median) | {subject} / {anchor} |\n|---|---:|---:|---:|\n"
    );
    let mut any = false;
    for pair in pairs {
        let (Some(s), Some(a)) = (median_ns(&pair.subject, since), median_ns(&pair.anchor, since)) else {
            continue;
        };
        any = true;
        writeln!(out, "| {} | {} | {} | {:.3} |", pair.label, human_ns(s), human_ns(a), s / a)
            .expect("write to String");
    }
    any.then_some(out)
}

/// Prints [`ratio_table`] to stdout, or a note when nothing was measured.
pub fn print_ratio_table(title: &str, subject: &str, anchor: &str, pairs: &[Pair], since: SystemTime) {
    match ratio_table(title, subject, anchor, pairs, since) {
        Some(table) => println!("{table}"),
        None => {
            println!("\n({title}: no subject/anchor pair measured in this run; nothing to compare)")
        }
    }
}
