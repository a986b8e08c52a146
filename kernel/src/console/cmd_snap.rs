//! `snap`: predictive snapshots (`docs/snapshots.md`): list, take, drop, stats, refresh, the
//! restore-versus-re-run measurement, and `run ... --snapshots on|off`.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;
use atoll_pae::runtime::InvokeError;
use atoll_snapshot::analyzer::RefreshPolicy;

use super::commands::{CmdError, CmdResult};
use crate::island::reloc::instructions;
use crate::println;
use crate::snap::{self, RunReport, SnapError};

impl From<SnapError> for CmdError {
    fn from(e: SnapError) -> Self {
        CmdError::Failed(alloc::format!("{e}"))
    }
}

pub fn snap(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let word =
        args.required("subcommand (list, take, drop, stats, refresh, auto, bench, verify)")?;
    match word.as_str() {
        "list" => {
            args.finish()?;
            list(json);
        }
        "take" => {
            let on = args.flag_u64("--on")?.map(|v| v as u32);
            let core = args.flag_u64("--core")?.map(|c| c as usize);
            let background = args.flag("--background");
            let client = args.flag_str("--client")?;
            let mut words = alloc::vec![args.required("SEGMENT (CHUNK.EXPORT)")?];
            words.extend(args.rest());
            args.finish()?;
            let segment = words.join(" ");
            if background {
                if on.is_some() || core.is_some() || client.is_some() || words.len() > 1 {
                    return Err(CmdError::Failed(
                        "--background takes a segment on the base, on the least-loaded core".into(),
                    ));
                }
                let thread = snap::generate_in_background(alloc::vec![segment])?;
                println!("generator thread {} started", thread.unwrap_or(0));
                return Ok(());
            }
            take(&segment, on, core, client.as_deref(), json)?;
        }
        "drop" => {
            let id = parse_u64(&args.required("ID")?, "snapshot id")?;
            args.finish()?;
            let gone = snap::drop_snapshot(id as u32)?;
            let ids: Vec<String> = gone.iter().map(|i| alloc::format!("{i}")).collect();
            println!("dropped {}", ids.join(" "));
        }
        "stats" => {
            args.finish()?;
            stats(json);
        }
        "auto" => {
            let defaults = RefreshPolicy::default();
            let every = args.flag_u64("--every")?.unwrap_or(10);
            let policy = RefreshPolicy {
                take_permille: args
                    .flag_u64("--take")?
                    .map_or(defaults.take_permille, |v| v.min(1000) as u32),
                drop_permille: args
                    .flag_u64("--drop")?
                    .map_or(defaults.drop_permille, |v| v.min(1001) as u32),
                budget_bytes: args.flag_u64("--budget")?.unwrap_or(defaults.budget_bytes),
            };
            let word = args.positional();
            args.finish()?;
            match word.as_deref() {
                Some("on") => snap::set_auto(Some((policy, every))),
                Some("off") => snap::set_auto(None),
                None => {}
                Some(other) => {
                    return Err(CmdError::Args(ArgError::Invalid {
                        what: "snap auto (on, off)",
                        value: other.into(),
                    }));
                }
            }
            match snap::auto() {
                Some((p, every)) => println!(
                    "automatic refresh on: every {every} requests, take at {}‰, drop below {}‰, budget {} bytes",
                    p.take_permille, p.drop_permille, p.budget_bytes
                ),
                None => println!("automatic refresh off"),
            }
        }
        "refresh" => {
            let defaults = RefreshPolicy::default();
            let policy = RefreshPolicy {
                take_permille: args
                    .flag_u64("--take")?
                    .map_or(defaults.take_permille, |v| v.min(1000) as u32),
                drop_permille: args
                    .flag_u64("--drop")?
                    .map_or(defaults.drop_permille, |v| v.min(1001) as u32),
                budget_bytes: args.flag_u64("--budget")?.unwrap_or(defaults.budget_bytes),
            };
            args.finish()?;
            let plan = snap::refresh(policy);
            let thread = snap::generate_in_background(plan.take.clone())?;
            if json {
                let mut j = Json::new();
                j.begin_object().array("dropped");
                for id in &plan.drop {
                    j.u64_value(u64::from(*id));
                }
                j.end_array().array("taking");
                for s in &plan.take {
                    j.str_value(s);
                }
                j.end_array();
                j.u64("generator_thread", thread.unwrap_or(0) as u64)
                    .end_object();
                println!("{}", j.finish());
            } else {
                println!(
                    "dropped: {:?}, taking in the background: {:?}",
                    plan.drop, plan.take
                );
            }
        }
        "verify" => {
            let task = args.required("CHUNK.EXPORT")?;
            args.finish()?;
            let v = snap::verify::verify(&task)?;
            let layers: Vec<String> = v.layers.iter().map(|i| alloc::format!("{i}")).collect();
            if json {
                let mut j = Json::new();
                j.begin_object().str("task", &task).array("path");
                for s in &v.path {
                    j.str_value(s);
                }
                j.end_array().array("layers");
                for id in &v.layers {
                    j.u64_value(u64::from(*id));
                }
                j.end_array()
                    .u64("bytes", v.bytes)
                    .u64("globals", v.globals)
                    .u64("table_entries", v.table_entries)
                    .bool("equal", v.difference.is_none())
                    .end_object();
                println!("{}", j.finish());
            } else {
                println!(
                    "{task}: path [{}], layers [{}]: {} bytes, {} globals, {} table entries compared",
                    v.path.join(", "),
                    layers.join(", "),
                    v.bytes,
                    v.globals,
                    v.table_entries
                );
            }
            if let Some(d) = v.difference {
                return Err(CmdError::Failed(alloc::format!(
                    "restored and ran instances differ: {d}"
                )));
            }
        }
        "bench" => {
            let rounds = args.flag_u64("--rounds")?.unwrap_or(3).clamp(1, 50) as usize;
            let task = args.required("CHUNK.EXPORT")?;
            let words = args.rest();
            args.finish()?;
            bench(&task, &words, rounds, json)?;
        }
        other => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: "snap subcommand (list, take, drop, stats, refresh, auto, bench, verify)",
                value: other.into(),
            }));
        }
    }
    Ok(())
}

fn take(
    segment: &str,
    on: Option<u32>,
    core: Option<usize>,
    client: Option<&str>,
    json: bool,
) -> CmdResult {
    let t = snap::take(segment, on, core, client)?;
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("id", u64::from(t.id))
            .str("segment", &t.segment);
        match t.parent {
            Some(p) => j.u64("parent", u64::from(p)),
            None => j.null("parent"),
        };
        j.u64("pages", t.pages)
            .u64("bytes", t.bytes)
            .u64("run_cycles", t.run_cycles)
            .u64("capture_cycles", t.capture_cycles)
            .u64("core", u64::from(t.core))
            .end_object();
        println!("{}", j.finish());
    } else {
        println!(
            "snapshot {} of {}{}: {} pages ({} bytes); the segment ran {} cycles on core {}, capture {} cycles",
            t.id,
            t.segment,
            t.parent
                .map(|p| alloc::format!(" on {p}"))
                .unwrap_or_default(),
            t.pages,
            t.bytes,
            t.run_cycles,
            t.core,
            t.capture_cycles
        );
    }
    Ok(())
}

fn list(json: bool) {
    let all = snap::list();
    if json {
        let mut j = Json::new();
        j.begin_object().array("snapshots");
        for l in &all {
            j.begin_object()
                .u64("id", u64::from(l.id))
                .str("segment", &l.segment);
            match l.parent {
                Some(p) => j.u64("parent", u64::from(p)),
                None => j.null("parent"),
            };
            match &l.client {
                Some(c) => j.str("client", c),
                None => j.null("client"),
            };
            j.u64("pages", l.pages)
                .u64("bytes", l.bytes)
                .u64("memory_pages", l.memory_pages)
                .u64("globals", l.globals)
                .u64("table_entries", l.table_entries)
                .u64("weight_permille", u64::from(l.weight_permille))
                .u64("run_cycles", l.run_cycles)
                .str("checksum", &alloc::format!("{:016x}", l.checksum))
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return;
    }
    println!(
        "  {:<4} {:<24} {:<8} {:<6} {:>6} {:>10} {:>7} {:>14}  checksum",
        "id", "segment", "client", "on", "pages", "bytes", "weight", "run cycles"
    );
    for l in &all {
        println!(
            "  {:<4} {:<24} {:<8} {:<6} {:>6} {:>10} {:>6}‰ {:>14}  {:016x}",
            l.id,
            l.segment,
            l.client.as_deref().unwrap_or("shared"),
            l.parent
                .map(|p| alloc::format!("{p}"))
                .unwrap_or_else(|| "base".into()),
            l.pages,
            l.bytes,
            l.weight_permille,
            l.run_cycles,
            l.checksum
        );
    }
}

fn stats(json: bool) {
    let s = snap::stats();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("snapshots", s.snapshots)
            .u64("bytes", s.bytes)
            .u64("taken", s.takes)
            .u64("restores", s.restores)
            .u64("path_runs", s.path_runs)
            .u64("pages_shared", s.pages_shared)
            .u64("pages_copied_on_write", s.pages_copied)
            .array("weights");
        for (seg, w) in &s.weights {
            j.begin_object()
                .str("segment", seg)
                .u64("weight_permille", u64::from(*w))
                .end_object();
        }
        j.end_array().array("paths");
        for (task, runs, path) in &s.paths {
            j.begin_object()
                .str("task", task)
                .u64("runs", *runs)
                .array("path");
            for seg in path {
                j.str_value(seg);
            }
            j.end_array().end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return;
    }
    println!(
        "snapshots: {} ({} bytes); taken {}, restores {}, requests that ran path segments {}",
        s.snapshots, s.bytes, s.takes, s.restores, s.path_runs
    );
    println!(
        "pages mapped shared {}, copied on write {}",
        s.pages_shared, s.pages_copied
    );
    for (seg, w) in &s.weights {
        println!("  segment {seg}: weight {w}‰");
    }
    for (task, runs, path) in &s.paths {
        println!("  task {task}: {runs} runs, path [{}]", path.join(", "));
    }
}

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
fn bench(task: &str, words: &[String], rounds: usize, json: bool) -> CmdResult {
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
