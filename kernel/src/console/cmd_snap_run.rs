//! `run ... --snapshots on|off`, `replay TRACE --snapshots ...` and `snap bench`: requests
//! restored from snapshots or re-running their path, and the figures side by side.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::ArgError;
use atoll_kcore::json::Json;
use atoll_pae::runtime::InvokeError;

use super::commands::{CmdError, CmdResult};
use crate::island::reloc::instructions;
use crate::println;
use crate::snap::{self, RunReport};

fn results_text(r: &Result<Vec<chunk_image::Value>, InvokeError>) -> String {
    match r {
        Ok(v) => crate::pae::format_results(v),
        Err(InvokeError::Trap(t)) => alloc::format!("trap: {}", t.message()),
        Err(e) => alloc::format!("{e}"),
    }
}

fn mode(mode: &str) -> Result<bool, CmdError> {
    match mode {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(CmdError::Args(ArgError::Invalid {
            what: "--snapshots (on, off)",
            value: other.into(),
        })),
    }
}

/// `run CHUNK.EXPORT ARGS... --snapshots on|off --background`: prepared (and restored) here,
/// started on its chunk thread; `tasks` shows the outcome.
pub fn start_task(
    task: &str,
    words: &[String],
    mode_word: &str,
    core: Option<usize>,
    client: Option<&str>,
) -> Result<crate::pae::Started, CmdError> {
    Ok(snap::start(task, words, mode(mode_word)?, core, client)?)
}

/// `run CHUNK.EXPORT ARGS... --snapshots on|off`.
pub fn run_task(
    task: &str,
    words: &[String],
    mode_word: &str,
    core: Option<usize>,
    client: Option<&str>,
    json: bool,
) -> CmdResult {
    let on = mode(mode_word)?;
    let r = snap::run(task, words, on, core, client)?;
    if json {
        let mut j = Json::new();
        j.begin_object().str("task", task);
        match &r.result {
            Ok(values) => {
                j.array("results");
                for v in values {
                    j.str_value(&alloc::format!("{v}"));
                }
                j.end_array();
            }
            Err(e) => {
                j.str("trap", &alloc::format!("{e}"));
            }
        }
        report_json(&mut j, &r);
        j.end_object();
        println!("{}", j.finish());
    } else {
        if let Ok(v) = &r.result {
            println!("{}", crate::pae::format_results(v));
        }
        println!(
            "snapshots {}: path [{}] ({}), restored {} layer(s) covering {} segment(s) in {} cycles, ran {} segment(s) in {} cycles; request {} cycles; pages shared {}, copied on write {}",
            if r.snapshots { "on" } else { "off" },
            r.path.join(", "),
            r.source.name(),
            r.restored.layers.len(),
            r.restored.covered,
            r.restored.cycles,
            r.ran_segments,
            r.path_cycles,
            r.request_cycles,
            r.restored.pages_shared,
            r.pages_copied
        );
    }
    if let Err(e) = &r.result {
        return Err(CmdError::Failed(alloc::format!("trap: {e}")));
    }
    Ok(())
}

fn report_json(j: &mut Json, r: &RunReport) {
    j.str("snapshots", if r.snapshots { "on" } else { "off" })
        .array("path");
    for s in &r.path {
        j.str_value(s);
    }
    j.end_array()
        .str("path_source", r.source.name())
        .array("layers");
    for id in &r.restored.layers {
        j.u64_value(u64::from(*id));
    }
    j.end_array()
        .u64("covered", r.restored.covered as u64)
        .u64("ran_segments", r.ran_segments as u64)
        .u64("restore_cycles", r.restored.cycles)
        .u64("path_cycles", r.path_cycles)
        .u64("request_cycles", r.request_cycles)
        .u64("total_cycles", r.total_cycles)
        .u64("pages_shared", r.restored.pages_shared)
        .u64("pages_copied", r.pages_copied)
        .u64("pages_still_shared", r.pages_still_shared)
        .u64("core", u64::from(r.core))
        .u64("thread", r.thread);
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Ratio with two decimals, as text.
fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        return "n/a".into();
    }
    let r = u128::from(a) * 100 / u128::from(b);
    alloc::format!("{}.{:02}", r / 100, r % 100)
}

/// `snap bench`: the request re-running its path and restored from snapshots, alternating,
/// in one run; every result must be the same.
pub(super) fn bench(task: &str, words: &[String], rounds: usize, json: bool) -> CmdResult {
    let mut off_path = Vec::new();
    let mut off_total = Vec::new();
    let mut on_restore = Vec::new();
    let mut on_total = Vec::new();
    let mut copied = Vec::new();
    let mut shared = Vec::new();
    let mut results: Option<String> = None;
    let mut path = Vec::new();
    let mut covered = 0;
    for _ in 0..rounds {
        for on in [false, true] {
            let r = snap::run(task, words, on, None, None)?;
            let text = results_text(&r.result);
            match &results {
                None => results = Some(text),
                Some(first) if *first != text => {
                    return Err(CmdError::Failed(alloc::format!(
                        "results differ: `{first}` and `{text}` (snapshots {})",
                        if on { "on" } else { "off" }
                    )));
                }
                Some(_) => {}
            }
            if on {
                on_restore.push(r.restored.cycles + r.path_cycles);
                on_total.push(r.total_cycles);
                copied.push(r.pages_copied);
                shared.push(r.restored.pages_shared);
                covered = r.restored.covered;
            } else {
                off_path.push(r.path_cycles);
                off_total.push(r.total_cycles);
                path = r.path.clone();
            }
        }
    }
    let (op, ot, rp, rt) = (
        median(off_path),
        median(off_total),
        median(on_restore),
        median(on_total),
    );
    let (pc, ps) = (median(copied), median(shared));
    let results = results.unwrap_or_default();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("task", task)
            .str("results", &results)
            .u64("rounds", rounds as u64)
            .array("path");
        for s in &path {
            j.str_value(s);
        }
        j.end_array()
            .u64("covered", covered as u64)
            .u64("rerun_path_cycles", op)
            .u64("restore_cycles", rp)
            .str("path_speedup", &ratio(op, rp))
            .u64("rerun_total_cycles", ot)
            .u64("restore_total_cycles", rt)
            .str("total_speedup", &ratio(ot, rt))
            .u64("pages_shared", ps)
            .u64("pages_copied", pc);
        if let (Some(a), Some(b)) = (instructions(op), instructions(rp)) {
            j.u64("rerun_path_instructions", a)
                .u64("restore_instructions", b);
        }
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "{task} {}: results `{results}` both ways ({rounds} rounds, medians)",
        words.join(" ")
    );
    println!(
        "  path [{}], {covered} segment(s) restored",
        path.join(", ")
    );
    println!(
        "  re-run path {op} cycles, restore {rp} cycles: {}x; whole request {ot} vs {rt} cycles: {}x",
        ratio(op, rp),
        ratio(ot, rt)
    );
    if let (Some(a), Some(b)) = (instructions(op), instructions(rp)) {
        println!("  guest instructions: re-run path {a}, restore {b}");
    }
    println!("  pages mapped shared {ps}, copied on write {pc}");
    Ok(())
}

/// `replay TRACE --snapshots on|off|both`: the trace's requests with snapshots off and on,
/// side by side; every outcome the same both ways.
pub fn replay(name: &str, mode_word: &str, json: bool) -> CmdResult {
    let modes: &[bool] = match mode_word {
        "both" => &[false, true],
        "on" => &[true],
        "off" => &[false],
        other => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: "--snapshots (on, off, both)",
                value: other.into(),
            }));
        }
    };
    let passes = snap::replay::replay(name, modes)?;
    let ratio_text = match (passes.first(), passes.get(1)) {
        (Some(a), Some(b)) => ratio(a.total_cycles(), b.total_cycles()),
        _ => "n/a".into(),
    };
    if json {
        let mut j = Json::new();
        j.begin_object().str("trace", name).array("passes");
        for p in &passes {
            j.begin_object()
                .str("snapshots", if p.snapshots { "on" } else { "off" })
                .u64("requests", p.outcomes.len() as u64)
                .u64("total_cycles", p.total_cycles())
                .u64("median_cycles", p.median_cycles())
                .u64("restored_requests", p.restored_steps)
                .u64("segments_run", p.segments_run)
                .u64("path_cycles", p.path_cycles)
                .u64("restore_cycles", p.restore_cycles)
                .u64("pages_shared", p.pages_shared)
                .u64("pages_copied", p.pages_copied);
            if let Some(i) = instructions(p.total_cycles()) {
                j.u64("total_instructions", i);
            }
            j.end_object();
        }
        j.end_array().str("speedup", &ratio_text).end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    for p in &passes {
        println!(
            "snapshots {}: {} requests, {} cycles in all (median {}), {} restored, {} path segments run ({} cycles), restore {} cycles, pages shared {}, copied on write {}",
            if p.snapshots { "on " } else { "off" },
            p.outcomes.len(),
            p.total_cycles(),
            p.median_cycles(),
            p.restored_steps,
            p.segments_run,
            p.path_cycles,
            p.restore_cycles,
            p.pages_shared,
            p.pages_copied
        );
    }
    if passes.len() == 2 {
        println!("same outcomes both ways; off / on: {ratio_text}x");
    }
    Ok(())
}
