//! Memory: peak RSS (VmHWM) of the stack's processes and of the bench's own instances.
//!
//! Reported without a baseline: VmHWM of the stack's processes (`.run/<svc>.pid`; since they
//! started, which may include earlier runs) and of the instances the bench started for the
//! ingest, consumer and assignment cases, read before they stop.

use super::Peaks;
use crate::{
    stack::{self, Stack},
    Line, Report,
};

pub(super) fn memory(s: &Stack, peaks: &Peaks, report: &mut Report) {
    let mut parts: Vec<String> = Vec::new();
    for svc in ["ingest", "consumer", "api", "kafka"] {
        if let Some(kib) = s.pid(svc).and_then(stack::peak_rss_kib) {
            parts.push(format!("{svc} {} MiB", kib / 1024));
        }
    }
    for (name, kib) in peaks {
        parts.push(format!("{name} {} MiB", kib / 1024));
    }
    report.line(Line::new("memory (peak RSS, VmHWM)", parts.join("; ")).target("reported", None));
    report.note(
        "memory: VmHWM of the stack's processes (.run/<svc>.pid; since they started, which may include earlier \
         runs) and of the instances the bench started for the ingest and consumer cases, read before they stop.",
    );
}
