//! `guard`: sandboxing linear memory through the page tables (`crate::guard`): the switch,
//! the traps delivered through page faults, the bounds checks left in each chunk's code, and
//! `guard bench`, a task run with explicit checks and with guard pages in one run.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;
use atoll_pae::runtime::InvokeError;

use super::commands::{CmdError, CmdResult};
use crate::island::reloc::instructions;
use crate::pae::{self, cache};
use crate::{guard, println};

pub fn guard(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let rounds = args.flag_u64("--rounds")?.unwrap_or(3).max(1);
    match args.positional().as_deref() {
        Some(word @ ("on" | "off")) => {
            args.finish()?;
            set_mode(word == "on");
        }
        Some("bench") => {
            let task = args.required("CHUNK.EXPORT")?;
            let words = args.rest();
            return bench(&task, &words, rounds as usize, json);
        }
        Some(other) => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: "guard subcommand (on, off, bench)",
                value: other.into(),
            }));
        }
        None => args.finish()?,
    }
    show(json);
    Ok(())
}

/// Switches the mode and drops the cached chunks, so the next tasks are assembled in it.
fn set_mode(on: bool) {
    guard::set_enabled(on);
    cache::clear();
}

/// The mode, the trap counts and, per assembled chunk, its mode and bounds checks.
fn show(json: bool) {
    let (traps, refused) = guard::counts();
    let all = pae::assembled();
    let rows: Vec<(String, bool, u64, u64)> = all
        .iter()
        .map(|a| {
            let m = &a.module;
            let checks = guard::bounds_checks(&m.code);
            (
                a.chunk.clone(),
                m.options.guard_pages,
                m.code.len() as u64,
                checks,
            )
        })
        .collect();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .bool("guard_pages", guard::enabled())
            .u64("guard_traps", traps)
            .u64("refused_faults", refused)
            .u64("reserve_bytes", atoll_pae::runtime::GUARD_RESERVE_BYTES)
            .array("chunks");
        for (chunk, on, bytes, checks) in &rows {
            j.begin_object()
                .str("chunk", chunk)
                .bool("guard_pages", *on)
                .u64("code_bytes", *bytes)
                .u64("bounds_checks", *checks)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return;
    }
    println!(
        "guard pages: {} (each memory reserves {} bytes; out-of-bounds traps through page faults: {traps}, refused faults: {refused})",
        if guard::enabled() {
            "on"
        } else {
            "off (explicit bounds checks)"
        },
        atoll_pae::runtime::GUARD_RESERVE_BYTES
    );
    println!(
        "  {:<12} {:<8} {:>10} {:>13}",
        "chunk", "mode", "code B", "bounds checks"
    );
    for (chunk, on, bytes, checks) in &rows {
        println!(
            "  {:<12} {:<8} {:>10} {:>13}",
            chunk,
            if *on { "guard" } else { "explicit" },
            bytes,
            checks
        );
    }
}

/// One run of a task in one mode.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Cycles in generated code (page faults of first touches included).
    run: u64,
    /// Cycles from the request to the result: assembly, instantiation and the run.
    total: u64,
    /// Code bytes of the task's chunk.
    code: u64,
    /// Bounds checks in it.
    checks: u64,
}

fn run_once(task: &str, words: &[String]) -> Result<(String, Sample), CmdError> {
    let start = crate::arch::cpu::rdtsc();
    let prepared = pae::prepare(task)?;
    if prepared.group().is_some() {
        return Err(CmdError::Failed(alloc::format!(
            "`{task}` runs in a linked group: measure a task of its own"
        )));
    }
    let args = prepared.parse_args(words)?;
    let chunk = task.split('.').next().unwrap_or("");
    let (code, checks) = pae::assembled()
        .iter()
        .find(|a| a.chunk == chunk)
        .map_or((0, 0), |a| {
            (
                a.module.code.len() as u64,
                guard::bounds_checks(&a.module.code),
            )
        });
    let outcome = pae::run_on_thread(prepared, args, None)?;
    let total = crate::arch::cpu::rdtsc() - start;
    let text = match &outcome.result {
        Ok(v) => pae::format_results(v),
        Err(InvokeError::Trap(t)) => alloc::format!("trap: {}", t.message()),
        Err(e) => alloc::format!("{e}"),
    };
    Ok((
        text,
        Sample {
            run: outcome.run_cycles,
            total,
            code,
            checks,
        },
    ))
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// `a / b` with three decimals, as thousandths.
fn ratio_milli(a: u64, b: u64) -> u64 {
    if b == 0 {
        return 0;
    }
    (u128::from(a) * 1000 / u128::from(b)) as u64
}

fn milli_text(m: u64) -> String {
    alloc::format!("{}.{:03}", m / 1000, m % 1000)
}

/// `guard bench TASK ARGS...`: the task assembled and run fresh with explicit checks and with
/// guard pages, alternating, `rounds` times each; medians. Results must agree. The mode is put
/// back as it was.
fn bench(task: &str, words: &[String], rounds: usize, json: bool) -> CmdResult {
    let was = guard::enabled();
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let mut results: Option<String> = None;
    let mut failure = None;
    'rounds: for _ in 0..rounds {
        for on in [false, true] {
            set_mode(on);
            match run_once(task, words) {
                Ok((text, s)) => {
                    if results.as_ref().is_some_and(|r| *r != text) {
                        failure = Some(CmdError::Failed(alloc::format!(
                            "results differ between modes: `{}` and `{text}`",
                            results.clone().unwrap_or_default()
                        )));
                        break 'rounds;
                    }
                    results = Some(text);
                    samples[usize::from(on)].push(s);
                }
                Err(e) => {
                    failure = Some(e);
                    break 'rounds;
                }
            }
        }
    }
    set_mode(was);
    if let Some(e) = failure {
        return Err(e);
    }
    let med = |v: &Vec<Sample>, f: fn(&Sample) -> u64| median(v.iter().map(f).collect());
    let [explicit, guarded] = &samples;
    let (er, gr) = (med(explicit, |s| s.run), med(guarded, |s| s.run));
    let (et, gt) = (med(explicit, |s| s.total), med(guarded, |s| s.total));
    let (ec, gc) = (explicit[0].code, guarded[0].code);
    let (ek, gk) = (explicit[0].checks, guarded[0].checks);
    let results = results.unwrap_or_default();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("task", task)
            .str("results", &results)
            .u64("rounds", rounds as u64);
        for (name, run, total, code, checks) in
            [("explicit", er, et, ec, ek), ("guard", gr, gt, gc, gk)]
        {
            j.object(name)
                .u64("run_cycles", run)
                .u64("total_cycles", total)
                .u64("code_bytes", code)
                .u64("bounds_checks", checks);
            if let (Some(ri), Some(ti)) = (instructions(run), instructions(total)) {
                j.u64("run_instructions", ri).u64("total_instructions", ti);
            }
            j.end_object();
        }
        j.u64("run_speedup_milli", ratio_milli(er, gr))
            .u64("total_speedup_milli", ratio_milli(et, gt))
            .end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "{task} {}: results `{results}` both ways ({rounds} rounds each, medians)",
        words.join(" ")
    );
    for (name, run, total, code, checks) in [
        ("explicit checks", er, et, ec, ek),
        ("guard pages", gr, gt, gc, gk),
    ] {
        let instr = match (instructions(run), instructions(total)) {
            (Some(a), Some(b)) => alloc::format!(" ({a} / {b} guest instructions)"),
            _ => String::new(),
        };
        println!(
            "  {name:<16} run {run} cycles, request {total} cycles{instr}; code {code} B, {checks} bounds checks"
        );
    }
    println!(
        "  explicit / guard: run {}x, request {}x",
        milli_text(ratio_milli(er, gr)),
        milli_text(ratio_milli(et, gt))
    );
    Ok(())
}
