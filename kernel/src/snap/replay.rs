//! A workload trace replayed with snapshots off and on (`replay TRACE --snapshots ...`): each
//! step is a request run as `run ... --snapshots on|off` runs it, from the same library; the
//! outcomes must be the same both ways.

use alloc::string::String;
use alloc::vec::Vec;

use super::{RunReport, SnapError, run};

/// One pass over a trace.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Snapshots on.
    pub snapshots: bool,
    /// Each step's outcome (results, or `trap: ...`).
    pub outcomes: Vec<String>,
    /// Each step's cycles from the request to its result.
    pub request_cycles: Vec<u64>,
    /// Steps restored from at least one layer.
    pub restored_steps: u64,
    /// Path segments run (not covered by snapshots).
    pub segments_run: u64,
    /// Cycles running path segments.
    pub path_cycles: u64,
    /// Cycles restoring.
    pub restore_cycles: u64,
    /// Pages mapped shared and copied on write.
    pub pages_shared: u64,
    /// Pages copied on write.
    pub pages_copied: u64,
}

impl Pass {
    fn add(&mut self, r: &RunReport) {
        self.outcomes.push(match &r.result {
            Ok(v) => crate::pae::format_results(v),
            Err(e) => alloc::format!("trap: {e}"),
        });
        self.request_cycles.push(r.total_cycles);
        if !r.restored.layers.is_empty() {
            self.restored_steps += 1;
        }
        self.segments_run += r.ran_segments as u64;
        self.path_cycles += r.path_cycles;
        self.restore_cycles += r.restored.cycles;
        self.pages_shared += r.restored.pages_shared;
        self.pages_copied += r.pages_copied;
    }

    /// Cycles of all requests.
    pub fn total_cycles(&self) -> u64 {
        self.request_cycles.iter().sum()
    }

    /// Median request cycles.
    pub fn median_cycles(&self) -> u64 {
        let mut v = self.request_cycles.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
}

/// Replays trace `name` once per mode in `modes` (`true` = snapshots on).
pub fn replay(name: &str, modes: &[bool]) -> Result<Vec<Pass>, SnapError> {
    let text = crate::predict::replay::list()
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|t| t.2)
        .ok_or_else(|| SnapError::Trace(alloc::format!("no trace `{name}`")))?;
    let steps =
        atoll_predict::trace::parse(&text).map_err(|e| SnapError::Trace(alloc::format!("{e}")))?;
    let mut passes = Vec::new();
    for &on in modes {
        let mut pass = Pass {
            snapshots: on,
            ..Pass::default()
        };
        for (i, step) in steps.iter().enumerate() {
            let r = run(&step.task, &step.args, on, None, None)
                .map_err(|e| SnapError::Trace(alloc::format!("step {}: {e}", i + 1)))?;
            pass.add(&r);
            if step.think_us > 0 {
                crate::sched::sleep_us(step.think_us);
            }
        }
        passes.push(pass);
    }
    if let (Some(a), Some(b)) = (passes.first(), passes.get(1))
        && let Some(i) = (0..a.outcomes.len()).find(|&i| a.outcomes[i] != b.outcomes[i])
    {
        return Err(SnapError::Trace(alloc::format!(
            "step {}: `{}` with snapshots {}, `{}` with them {}",
            i + 1,
            a.outcomes[i],
            if a.snapshots { "on" } else { "off" },
            b.outcomes[i],
            if b.snapshots { "on" } else { "off" }
        )));
    }
    Ok(passes)
}
