//! `abtest-bench`: the cases of `scripts/bench`, each against a baseline measured in the
//! same run on the same machine (see README "Benchmarks" and `bench/RESULTS.md`).
//!
//! Usage (normally through `scripts/bench`, which sets the environment):
//!   abtest-bench [--quick] [--only case,case] [--out FILE]
//!   abtest-bench bare-server ADDR      (the bare axum baseline of "ingest single")

mod cases;
mod load;
mod stack;

use std::{fmt::Write as _, path::PathBuf, time::Instant};

use anyhow::Context;

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Line {
    pub case: String,
    pub measured: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
}

impl Line {
    pub fn new(case: impl Into<String>, measured: impl Into<String>) -> Self {
        Self {
            case: case.into(),
            measured: measured.into(),
            baseline: "-".into(),
            ratio: None,
            target: "-".into(),
            met: None,
        }
    }

    pub fn baseline(mut self, b: impl Into<String>) -> Self {
        self.baseline = b.into();
        self
    }

    pub fn ratio(mut self, r: f64) -> Self {
        self.ratio = Some(r);
        self
    }

    pub fn target(mut self, t: impl Into<String>, met: Option<bool>) -> Self {
        self.target = t.into();
        self.met = met;
        self
    }
}

/// What the run found: table lines and notes on how each figure was obtained.
#[derive(Default)]
pub struct Report {
    pub lines: Vec<Line>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn line(&mut self, l: Line) {
        eprintln!("  => {} | {} | {} | {} | {}", l.case, l.measured, l.baseline, fmt_ratio(l.ratio), met(l.met));
        self.lines.push(l);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| case | measured | baseline (same run) | ratio | target | met |");
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        for l in &self.lines {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                l.case,
                l.measured,
                l.baseline,
                fmt_ratio(l.ratio),
                l.target,
                met(l.met)
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\nHow each figure was obtained in this run:\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "-",
    }
}

pub struct Options {
    pub quick: bool,
    pub only: Option<Vec<String>>,
    pub out: Option<PathBuf>,
}

impl Options {
    pub fn wants(&self, case: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|c| c == case))
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bare-server") {
        let addr = args.get(1).context("bare-server ADDR")?.parse()?;
        return tokio::runtime::Runtime::new()?.block_on(cases::bare_server(addr));
    }
    let mut opts = Options { quick: false, only: None, out: None };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--only" => {
                opts.only = Some(it.next().context("--only case,case")?.split(',').map(str::to_owned).collect())
            }
            "--out" => opts.out = Some(it.next().context("--out FILE")?.into()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(async {
        let started = Instant::now();
        let report = cases::run_all(&opts).await?;
        eprintln!("==> bench finished in {:.0} s", started.elapsed().as_secs_f64());
        anyhow::Ok(report)
    })?;
    let md = report.markdown();
    if let Some(out) = &opts.out {
        std::fs::write(out, &md).with_context(|| format!("write {}", out.display()))?;
    }
    println!("{md}");
    Ok(())
}
