//! Predictive relocation commands: `autoreloc`, `model`, `engine-log`, `phased`.

use alloc::string::String;

use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;
use atoll_relocmodel::decide::ChoiceKind;
use atoll_relocmodel::features::FEATURE_NAMES;
use atoll_relocmodel::fixed::to_milli;
use atoll_relocmodel::outcome::Baseline;

use super::commands::{CmdError, CmdResult};
use crate::autoreloc::log::{Action, Entry, Fate};
use crate::autoreloc::phased::{self, Report, Spec};
use crate::autoreloc::{self, ERROR_WINDOW_MOVES};
use crate::{println, time};

fn start() -> CmdResult {
    autoreloc::ensure_started().map_err(CmdError::Thread)
}

pub fn autoreloc(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let what = args.required("on, off or status")?;
    args.finish()?;
    match what.as_str() {
        "on" | "off" => {
            start()?;
            autoreloc::set_enabled(what == "on");
            println!("autoreloc {what}");
            return Ok(());
        }
        "status" => {}
        _ => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: "on, off or status",
                value: what,
            }));
        }
    }
    start()?;
    let (c, pending, budget, trained, mae, recent, phase, skips, chosen, cores, islands, priority) =
        autoreloc::with(|e| {
            (
                e.counters,
                e.pending(),
                e.decider.budget(),
                e.model.trained,
                e.errors.mae(),
                e.errors.mae_recent(),
                e.phase_now(),
                e.decider.skips,
                e.decider.chosen,
                e.last.cores.clone(),
                e.last
                    .islands
                    .iter()
                    .filter(|i| i.calls > 0)
                    .cloned()
                    .collect::<alloc::vec::Vec<_>>(),
                e.priority.clone(),
            )
        });
    if json {
        let mut j = Json::new();
        j.begin_object()
            .bool("enabled", autoreloc::enabled())
            .bool("running", autoreloc::started())
            .u64("window_us", autoreloc::WINDOW_US)
            .u64("windows", c.windows)
            .u64("candidates", c.candidates)
            .u64("decisions", c.decisions)
            .u64("moves", c.moves)
            .u64("failures", c.failures)
            .u64("measured", c.measured)
            .u64("unmeasured", c.unmeasured)
            .u64("pending", pending as u64)
            .u64("core_moves", c.core_moves)
            .u64("to_large", c.to_large)
            .u64("to_small", c.to_small)
            .u64("node_moves", c.node_moves)
            .u64("ahead_of_phase", c.ahead_of_phase)
            .u64("bytes", c.bytes)
            .u64("bytes_written", c.bytes_written)
            .u64("merges", c.merges)
            .u64("splits", c.splits)
            .u64("regroup_failures", c.regroup_failures)
            .u64("predicted_moves", chosen.0)
            .u64("explore_moves", chosen.1)
            .u64("skipped_below_threshold", skips.below_threshold)
            .u64("skipped_awaiting_measurement", skips.awaiting_measurement)
            .u64("skipped_over_budget", skips.over_budget)
            .i64("budget_moves", budget)
            .u64("trained", trained);
        opt_milli(&mut j, "mae_milli", mae);
        opt_milli(&mut j, "mae_recent_milli", recent);
        match phase {
            Some((p, w)) => j
                .u64("phase", u64::from(p))
                .u64("phase_windows", u64::from(w)),
            None => j.null("phase"),
        };
        j.array("cores");
        for core in &cores {
            j.begin_object()
                .u64("core", u64::from(core.core))
                .i64("load_milli", to_milli(core.load))
                .u64("task_threads", u64::from(core.task_threads))
                .end_object();
        }
        j.end_array().array("islands");
        for i in &islands {
            j.begin_object()
                .u64("id", u64::from(i.id))
                .str("label", &i.label)
                .bool("entry", i.entry)
                .u64("calls", i.calls)
                .u64("blocks", i.blocks)
                .u64("sampled_cycles", i.cycles)
                .u64("threads", u64::from(i.threads))
                .bool("large_page", i.large_page);
            match priority.get(&i.id) {
                Some(p) => j.i64("priority_milli", to_milli(*p)),
                None => j.null("priority_milli"),
            };
            for (key, v) in [("home", i.home), ("run_core", i.run_core)] {
                match v {
                    Some(c) => j.u64(key, u64::from(c)),
                    None => j.null(key),
                };
            }
            j.end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "autoreloc {}: {} windows of {} ms, {} candidates scored",
        if autoreloc::enabled() { "on" } else { "off" },
        c.windows,
        autoreloc::WINDOW_US / 1000,
        c.candidates
    );
    println!(
        "moves: {} done ({} to a core, {} to 2 MiB, {} to 4 KiB, {} to a node), {} failed, {} measured, {} unmeasured, {} pending; {} by prediction, {} exploring; {} ahead of their phase",
        c.moves,
        c.core_moves,
        c.to_large,
        c.to_small,
        c.node_moves,
        c.failures,
        c.measured,
        c.unmeasured,
        pending,
        chosen.0,
        chosen.1,
        c.ahead_of_phase
    );
    println!(
        "copies: {} bytes of code moved, {} written (kept copies reused for moves back)",
        c.bytes, c.bytes_written
    );
    println!(
        "regrouped: {} merges, {} splits, {} failed",
        c.merges, c.splits, c.regroup_failures
    );
    println!(
        "skipped: {} under the threshold, {} awaiting measurement, {} over budget; budget now {} moves",
        skips.below_threshold, skips.awaiting_measurement, skips.over_budget, budget
    );
    println!(
        "model: trained on {trained} outcomes; mean absolute error {} overall, {} over the last moves (benefit in thousandths)",
        milli_text(mae),
        milli_text(recent)
    );
    Ok(())
}

fn opt_milli(j: &mut Json, key: &str, v: Option<i64>) {
    match v {
        Some(v) => j.i64(key, to_milli(v)),
        None => j.null(key),
    };
}

fn milli_text(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| alloc::format!("{}", to_milli(v)))
}

pub fn model(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    start()?;
    let (m, windows, mae, recent, log) = autoreloc::with(|e| {
        let log: alloc::vec::Vec<Entry> = e
            .log
            .iter()
            .filter(|x| matches!(x.fate, Fate::Measured { .. }))
            .cloned()
            .collect();
        let n = log.len().saturating_sub(16);
        (
            e.model.clone(),
            e.errors.windows().to_vec(),
            e.errors.mae(),
            e.errors.mae_recent(),
            log[n..].to_vec(),
        )
    });
    if json {
        let mut j = Json::new();
        j.begin_object().u64("trained", m.trained).array("features");
        for (name, w) in FEATURE_NAMES.iter().zip(m.weights) {
            j.begin_object()
                .str("name", name)
                .i64("weight_milli", to_milli(w))
                .end_object();
        }
        j.end_array();
        opt_milli(&mut j, "mae_milli", mae);
        opt_milli(&mut j, "mae_recent_milli", recent);
        j.u64("error_window_moves", u64::from(ERROR_WINDOW_MOVES))
            .array("error_windows_milli");
        for w in &windows {
            j.u64_value(to_milli(*w).unsigned_abs());
        }
        j.end_array().array("recent");
        for e in &log {
            if let Fate::Measured { benefit, .. } = e.fate {
                j.begin_object()
                    .u64("seq", e.seq)
                    .u64("island", u64::from(e.island))
                    .str("to", &alloc::format!("{}", e.to))
                    .i64("predicted_milli", to_milli(e.predicted))
                    .i64("measured_milli", to_milli(benefit))
                    .end_object();
            }
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "online linear model (NLMS, Q16.16), trained on {} outcomes; weights in thousandths:",
        m.trained
    );
    for (name, w) in FEATURE_NAMES.iter().zip(m.weights) {
        println!("  {name:<22} {:>7}", to_milli(w));
    }
    println!(
        "mean absolute error: {} overall, {} recent; per window of {ERROR_WINDOW_MOVES} moves: {}",
        milli_text(mae),
        milli_text(recent),
        windows
            .iter()
            .map(|w| alloc::format!("{}", to_milli(*w)))
            .collect::<alloc::vec::Vec<_>>()
            .join(" ")
    );
    for e in &log {
        if let Fate::Measured { benefit, .. } = e.fate {
            println!(
                "  #{:<4} island {:<4} -> {:<8} predicted {:>5} measured {:>5}",
                e.seq,
                e.island,
                alloc::format!("{}", e.to),
                to_milli(e.predicted),
                to_milli(benefit)
            );
        }
    }
    Ok(())
}

fn fate_json(j: &mut Json, f: &Fate) {
    match f {
        Fate::Pending => {
            j.str("fate", "pending").null("measured_milli");
        }
        Fate::Unmeasured => {
            j.str("fate", "unmeasured").null("measured_milli");
        }
        Fate::Done => {
            j.str("fate", "done").null("measured_milli");
        }
        Fate::Failed(msg) => {
            j.str("fate", "failed")
                .null("measured_milli")
                .str("error", msg);
        }
        Fate::Measured {
            benefit,
            baseline,
            cps,
            cycles_per_call,
        } => {
            j.str("fate", "measured")
                .i64("measured_milli", to_milli(*benefit))
                .str(
                    "baseline",
                    match baseline {
                        Baseline::Before => "window_before",
                        Baseline::Seasonal => "same_phase_before",
                        Baseline::None => "none",
                    },
                )
                .u64("baseline_calls_per_second", cps.0)
                .u64("after_calls_per_second", cps.1);
            for (key, v) in [
                ("cycles_per_call_before", cycles_per_call.0),
                ("cycles_per_call_after", cycles_per_call.1),
            ] {
                match v {
                    Some(v) => j.u64(key, v),
                    None => j.null(key),
                };
            }
        }
    }
}

pub fn engine_log(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let last = args.flag_u64("--last")?;
    args.finish()?;
    start()?;
    let all = autoreloc::log_since(0);
    let skip = last.map_or(0, |n| all.len().saturating_sub(n as usize));
    let entries = &all[skip..];
    if json {
        let mut j = Json::new();
        j.begin_object().array("entries");
        for e in entries {
            j.begin_object()
                .u64("seq", e.seq)
                .u64("window", e.window)
                .u64("tsc", e.tsc)
                .u64("island", u64::from(e.island))
                .str("label", &e.label)
                .str("from", &e.from)
                .str("to", &alloc::format!("{}", e.to))
                .i64("predicted_milli", to_milli(e.predicted))
                .str("reason", &e.reason);
            match e.action {
                Action::Move => {
                    j.str("action", "move");
                }
                Action::Merge { absorbed } => {
                    j.str("action", "merge")
                        .u64("absorbed", u64::from(absorbed));
                }
                Action::Split { at, new } => {
                    j.str("action", "split").u64("at", u64::from(at));
                    match new {
                        Some(n) => j.u64("new", u64::from(n)),
                        None => j.null("new"),
                    };
                }
            }
            j.str(
                "kind",
                match e.kind {
                    ChoiceKind::Predicted => "predicted",
                    ChoiceKind::Explore => "explore",
                },
            )
            .bool("active_before", e.active_before)
            .u64("pause_cycles", e.pause_cycles)
            .u64("bytes", u64::from(e.bytes.0))
            .u64("bytes_written", u64::from(e.bytes.1));
            match e.phase {
                Some(p) => j.u64("phase", u64::from(p)),
                None => j.null("phase"),
            };
            fate_json(&mut j, &e.fate);
            j.end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    for e in entries {
        let measured = match &e.fate {
            Fate::Pending => "pending".into(),
            Fate::Unmeasured => "unmeasured".into(),
            Fate::Done => "done".into(),
            Fate::Failed(m) => alloc::format!("failed: {m}"),
            Fate::Measured { benefit, .. } => alloc::format!("measured {}", to_milli(*benefit)),
        };
        let action = match e.action {
            Action::Move => String::new(),
            Action::Merge { absorbed } => alloc::format!("merge island {absorbed} into it, "),
            Action::Split { at, new: Some(n) } => {
                alloc::format!("split at function {at} (second part: island {n}), ")
            }
            Action::Split { at, new: None } => alloc::format!("split at function {at}, "),
        };
        println!(
            "#{:<4} island {:<4} {:<30} {action}{} -> {}: predicted {}, {measured}; {}",
            e.seq,
            e.island,
            e.label,
            e.from,
            e.to,
            to_milli(e.predicted),
            e.reason
        );
    }
    if entries.is_empty() {
        println!("(no decisions yet)");
    }
    Ok(())
}

fn report_json(j: &mut Json, key: &str, r: &Report) {
    let median = r.median_latency();
    j.object(key)
        .bool("engine", r.engine)
        .u64("tasks", r.tasks)
        .u64("lost", r.lost)
        .u64("elapsed_cycles", r.elapsed_cycles)
        .u64("tasks_per_second_milli", r.tasks_per_second_milli())
        .u64("median_latency_cycles", median)
        .u64("median_latency_us", time::cycles_to_us(median));
    if time::icount() {
        j.u64(
            "elapsed_instructions",
            time::cycles_to_instructions(r.elapsed_cycles),
        )
        .u64(
            "median_latency_instructions",
            time::cycles_to_instructions(median),
        );
    }
    j.u64("moves", r.moves)
        .u64("phase_moves", r.phase_moves)
        .u64("ahead_of_phase", r.ahead)
        .u64("ahead_permille", r.ahead_permille())
        .u64("started_at_home", r.started_at_home)
        .array("results");
    for (task, args, value, runs) in &r.results {
        j.begin_object()
            .str("task", task)
            .str("args", args)
            .str("value", value)
            .u64("runs", u64::from(*runs))
            .end_object();
    }
    j.end_array().end_object();
}

fn report_text(r: &Report) {
    let median = r.median_latency();
    println!(
        "engine {}: {} tasks in {} us of guest time: {}.{:03} tasks/s; median latency {} us{}; {} lost",
        if r.engine { "on" } else { "off" },
        r.tasks,
        time::cycles_to_us(r.elapsed_cycles),
        r.tasks_per_second_milli() / 1000,
        r.tasks_per_second_milli() % 1000,
        time::cycles_to_us(median),
        if time::icount() {
            alloc::format!(
                " ({} guest instructions)",
                time::cycles_to_instructions(median)
            )
        } else {
            String::new()
        },
        r.lost
    );
    println!(
        "  {} engine moves, {} of a phase's hot task, {} ahead of the phase that needs them ({} per mille); {} tasks started on their island's home core",
        r.moves,
        r.phase_moves,
        r.ahead,
        r.ahead_permille(),
        r.started_at_home
    );
    for (task, args, value, runs) in &r.results {
        println!("  result {task} {args} = {value}: {runs} runs");
    }
}

fn phases_json(j: &mut Json) {
    let work = phased::work_cores();
    j.array("phases");
    for p in &phased::PHASES {
        j.begin_object().str("name", p.name).array("tasks");
        for (task, _) in p.tasks {
            j.str_value(task);
        }
        j.end_array()
            .u64(
                "core",
                u64::from(work.get(p.place % work.len().max(1)).copied().unwrap_or(0)),
            )
            .end_object();
    }
    j.end_array();
}

fn phases_text() {
    let work = phased::work_cores();
    for (i, p) in phased::PHASES.iter().enumerate() {
        println!(
            "phase {i} {}: {} + {}, placed on core {}",
            p.name,
            p.tasks[0].0,
            p.tasks[1].0,
            work.get(p.place % work.len().max(1)).copied().unwrap_or(0)
        );
    }
}

fn engine_flag(v: Option<String>) -> Result<Option<bool>, CmdError> {
    match v.as_deref() {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(_) => Err(CmdError::Args(ArgError::Invalid {
            what: "--engine (on or off)",
            value: v.unwrap_or_default(),
        })),
    }
}

fn ratio_milli(a: u64, b: u64) -> u64 {
    (u128::from(a) * 1000)
        .checked_div(u128::from(b))
        .unwrap_or(0) as u64
}

pub fn phased(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let compare = args.flag("--compare");
    let rounds = args.flag_u64("--rounds")?.unwrap_or(4);
    let per_phase = args.flag_u64("--per-phase")?.unwrap_or(8);
    let inflight = args.flag_u64("--inflight")?.unwrap_or(2);
    let engine = engine_flag(args.flag_str("--engine")?)?;
    args.finish()?;
    let bad = |what: &'static str, v: u64| {
        CmdError::Args(ArgError::Invalid {
            what,
            value: alloc::format!("{v}"),
        })
    };
    if !(1..=1000).contains(&rounds) {
        return Err(bad("--rounds (1 to 1000)", rounds));
    }
    if !(1..=1000).contains(&per_phase) {
        return Err(bad("--per-phase (1 to 1000)", per_phase));
    }
    if !(1..=8).contains(&inflight) {
        return Err(bad("--inflight (1 to 8)", inflight));
    }
    if compare && engine.is_some() {
        return Err(CmdError::Failed(
            "--compare runs engine off then on; leave out --engine".into(),
        ));
    }
    let spec = |engine| Spec {
        rounds: rounds as u32,
        per_phase: per_phase as u32,
        inflight: inflight as u32,
        engine,
    };
    let run = |s: &Spec| phased::run(s).map_err(|e| CmdError::Failed(alloc::format!("{e}")));
    if compare {
        let off = run(&spec(Some(false)))?;
        let on = run(&spec(Some(true)))?;
        let tput = ratio_milli(on.tasks_per_second_milli(), off.tasks_per_second_milli());
        let lat = ratio_milli(off.median_latency(), on.median_latency());
        if json {
            let mut j = Json::new();
            j.begin_object()
                .u64("rounds", rounds)
                .u64("per_phase", per_phase)
                .u64("inflight", inflight)
                .bool("icount", time::icount());
            phases_json(&mut j);
            report_json(&mut j, "off", &off);
            report_json(&mut j, "on", &on);
            j.u64("throughput_ratio_milli", tput)
                .u64("latency_ratio_milli", lat)
                .end_object();
            println!("{}", j.finish());
            return Ok(());
        }
        phases_text();
        report_text(&off);
        report_text(&on);
        println!(
            "engine on / off: throughput x{}.{:03}, median latency off / on x{}.{:03}",
            tput / 1000,
            tput % 1000,
            lat / 1000,
            lat % 1000
        );
        return Ok(());
    }
    let r = run(&spec(engine))?;
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("rounds", rounds)
            .u64("per_phase", per_phase)
            .u64("inflight", inflight)
            .bool("icount", time::icount());
        phases_json(&mut j);
        report_json(&mut j, "run", &r);
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    phases_text();
    report_text(&r);
    Ok(())
}
