//! Predictive assembly commands: `profile`, `predict`, `cache`, `replay`, `trace`, `traces`.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::Args;
use atoll_kcore::json::Json;
use atoll_kcore::stats::Distribution;
use atoll_predict::cache::Policy;

use super::commands::{CmdError, CmdResult};
use crate::pae::cache;
use crate::predict::{self, replay};
use crate::{println, time};

fn failed(e: impl core::fmt::Display) -> CmdError {
    CmdError::Failed(alloc::format!("{e}"))
}

/// `profile [--json] | profile export`.
pub fn profile(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let sub = args.positional();
    args.finish()?;
    match sub.as_deref() {
        Some("export") => {
            let text = predict::with_profiler(|p| p.export().to_text());
            crate::print!("{text}");
            return Ok(());
        }
        Some(other) => {
            return Err(failed(alloc::format!(
                "unknown profile subcommand `{other}`"
            )));
        }
        None => {}
    }
    let (tasks, transitions) = predict::with_profiler(|p| {
        (
            p.tasks()
                .map(|(n, s)| (String::from(n), s.clone()))
                .collect::<Vec<_>>(),
            p.transitions()
                .map(|(f, t, s)| (String::from(f), String::from(t), s))
                .collect::<Vec<_>>(),
        )
    });
    if json {
        let mut j = Json::new();
        j.begin_object().array("tasks");
        for (name, s) in &tasks {
            j.begin_object()
                .str("task", name)
                .u64("seeded", s.seeded)
                .u64("runs", s.runs)
                .u64("failed", s.failed)
                .u64("mean_cycles", s.mean_cycles())
                .u64("min_cycles", s.min_cycles)
                .u64("max_cycles", s.max_cycles)
                .u64("estimate_cycles", s.estimate)
                .end_object();
        }
        j.end_array().array("transitions");
        for (from, to, s) in &transitions {
            j.begin_object()
                .str("from", from)
                .str("to", to)
                .u64("seeded", s.seeded)
                .u64("seen", s.seen)
                .end_object();
        }
        j.end_array().array("blocks");
        for a in crate::pae::assembled() {
            let Some((counts, slots)) = crate::island::block_counts(&a.chunk) else {
                continue;
            };
            let mut order: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
            order.sort_by(|&x, &y| counts[y].cmp(&counts[x]).then(x.cmp(&y)));
            j.begin_object()
                .str("chunk", &a.chunk)
                .u64("counters", counts.len() as u64)
                .u64("executed", order.len() as u64)
                .u64("total", counts.iter().fold(0u64, |s, c| s.wrapping_add(*c)))
                .array("hottest");
            for &i in order.iter().take(5) {
                let slot = slots.get(i);
                j.begin_object()
                    .u64("func", slot.map_or(0, |s| u64::from(s.func)))
                    .u64("wasm_offset", slot.map_or(0, |s| u64::from(s.wasm_offset)))
                    .u64("count", counts[i])
                    .end_object();
            }
            j.end_array().end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "{:<34} {:>7} {:>6} {:>12} {:>12} {:>12}",
        "task", "seeded", "runs", "mean cyc", "estimate", "min..max"
    );
    for (name, s) in tasks.iter().filter(|(_, s)| s.seeded > 0 || s.runs > 0) {
        println!(
            "{:<34} {:>7} {:>6} {:>12} {:>12} {}..{}",
            name,
            s.seeded,
            s.runs,
            s.mean_cycles(),
            s.estimate,
            s.min_cycles,
            s.max_cycles
        );
    }
    for (from, to, s) in &transitions {
        println!("  {from} -> {to}: seeded {}, seen {}", s.seeded, s.seen);
    }
    Ok(())
}

/// `predict [--json] | predict on|off | predict order K | predict thresholds HIGH LOW`.
pub fn predict(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let sub = args.positional();
    match sub.as_deref() {
        Some("on") | Some("off") => {
            args.finish()?;
            predict::set_acting(sub.as_deref() == Some("on"));
            return Ok(());
        }
        Some("specialize") => {
            let v = args.required("on or off")?;
            args.finish()?;
            match v.as_str() {
                "on" => crate::pae::specialize::set_enabled(true),
                "off" => crate::pae::specialize::set_enabled(false),
                _ => return Err(failed("predict specialize takes on or off")),
            }
            return Ok(());
        }
        Some("order") => {
            let k = args.required("order (1-8)")?;
            args.finish()?;
            match k.parse::<usize>() {
                Ok(k @ 1..=8) => predict::set_order(k),
                _ => return Err(failed("the order must be 1-8")),
            }
            return Ok(());
        }
        Some("thresholds") => {
            let high = args.required("high confidence (permille)")?;
            let low = args.required("low confidence (permille)")?;
            args.finish()?;
            let (Ok(h), Ok(l)) = (high.parse::<u32>(), low.parse::<u32>()) else {
                return Err(failed("thresholds are permille (0-1000)"));
            };
            if h > 1000 || l > h {
                return Err(failed("need 0 <= LOW <= HIGH <= 1000 (permille)"));
            }
            predict::set_thresholds(h, l);
            return Ok(());
        }
        Some(other) => {
            return Err(failed(alloc::format!(
                "unknown predict subcommand `{other}`"
            )));
        }
        None => {}
    }
    args.finish()?;
    let (p, history, settings, order) = predict::current();
    let acc = predict::accuracy();
    let w = predict::worker_figures();
    let action = |c: u32| {
        if !settings.acting {
            "none (off)"
        } else if c >= settings.high {
            "pre-assemble"
        } else if c >= settings.low {
            "validate"
        } else {
            "none"
        }
    };
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("order", order as u64)
            .bool("acting", settings.acting)
            .bool("specialize", crate::pae::specialize::enabled())
            .u64("high_permille", u64::from(settings.high))
            .u64("low_permille", u64::from(settings.low))
            .array("history");
        for h in &history {
            j.str_value(h);
        }
        j.end_array();
        match p.order {
            Some(o) => j.u64("context_order", o as u64),
            None => j.null("context_order"),
        };
        j.u64("support", p.support)
            .u64("confidence_permille", u64::from(p.confidence))
            .array("candidates");
        for (i, c) in p.candidates.iter().enumerate() {
            let conf = p.confidence_of(i);
            j.begin_object()
                .str("task", &c.task)
                .u64("permille", u64::from(c.permille))
                .u64("confidence_permille", u64::from(conf))
                .str(
                    "action",
                    if i < predict::ACT_ON {
                        action(conf)
                    } else {
                        "none"
                    },
                )
                .end_object();
        }
        j.end_array()
            .object("accuracy")
            .u64("scored", acc.scored)
            .u64("top1", acc.top1)
            .u64("top3", acc.top3)
            .end_object()
            .object("worker")
            .u64("assembled", w.assembled)
            .u64("already", w.already)
            .u64("validated", w.validated)
            .u64("failed", w.failed)
            .u64("deferred_ms", w.deferred_ms)
            .u64("moved", w.moved)
            .u64("busy_cycles", w.busy_cycles)
            .end_object()
            .end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "order {order}, acting {}, thresholds: pre-assemble >= {} permille, validate >= {}",
        if settings.acting { "on" } else { "off" },
        settings.high,
        settings.low
    );
    println!("history: {}", history.join(" "));
    match p.order {
        Some(o) => println!(
            "context order {o}, {} observations, confidence {} permille",
            p.support, p.confidence
        ),
        None => println!("no prediction yet"),
    }
    for (i, c) in p.candidates.iter().take(8).enumerate() {
        let conf = p.confidence_of(i);
        println!(
            "  {:<34} {:>4} permille  confidence {:>4}  {}",
            c.task,
            c.permille,
            conf,
            if i < predict::ACT_ON {
                action(conf)
            } else {
                "none"
            }
        );
    }
    println!(
        "accuracy: top-1 {}/{}, top-3 {}/{}; worker: {} assembled, {} validated, {} failed",
        acc.top1, acc.scored, acc.top3, acc.scored, w.assembled, w.validated, w.failed
    );
    Ok(())
}

/// `cache [--json] | cache policy lru|lfu | cache limit BYTES | cache clear`.
pub fn cache_cmd(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let sub = args.positional();
    match sub.as_deref() {
        Some("policy") => {
            let p = args.required("policy (lru or lfu)")?;
            args.finish()?;
            let policy = Policy::parse(&p).ok_or_else(|| failed("the policy is lru or lfu"))?;
            cache::set_policy(policy);
            return Ok(());
        }
        Some("limit") => {
            let b = args.required("limit in bytes")?;
            args.finish()?;
            let limit = b
                .parse::<u64>()
                .map_err(|_| failed(alloc::format!("`{b}` is not a byte count")))?;
            return cache::set_limit(limit).map_err(failed);
        }
        Some("clear") => {
            args.finish()?;
            let stayed = cache::clear();
            println!("cache cleared ({stayed} pinned chunks stay)");
            return Ok(());
        }
        Some(other) => return Err(failed(alloc::format!("unknown cache subcommand `{other}`"))),
        None => {}
    }
    args.finish()?;
    let s = cache::snapshot();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("policy", s.policy.name())
            .u64("limit_bytes", s.limit)
            .u64("used_bytes", s.used)
            .u64("peak_bytes", s.figures.peak_bytes)
            .u64("hits", s.figures.hits)
            .u64("misses", s.figures.misses)
            .u64("evictions", s.figures.evictions)
            .u64("inserts", s.figures.inserts)
            .u64("refused", s.figures.refused)
            .u64("overdrawn", s.figures.overdrawn)
            .u64("waited", s.waited)
            .u64("uncached", s.uncached)
            .u64("prefetched", s.prefetched)
            .array("chunks");
        for e in &s.entries {
            j.begin_object()
                .str("chunk", &e.name)
                .u64("bytes", e.bytes)
                .u64("uses", e.uses)
                .u64("last_use", e.last_use)
                .u64("pins", u64::from(e.pins))
                .bool("prefetched", e.prefetched)
                .array("specialized");
            for sp in crate::pae::specialize::assembled_with(&e.name) {
                j.begin_object()
                    .u64("func", u64::from(sp.func))
                    .u64("param", u64::from(sp.param))
                    .u64("bits", sp.bits)
                    .end_object();
            }
            j.end_array().end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "cache {}: {} of {} bytes used (peak {}); {} hits, {} misses, {} evictions, {} refused",
        s.policy.name(),
        s.used,
        s.limit,
        s.figures.peak_bytes,
        s.figures.hits,
        s.figures.misses,
        s.figures.evictions,
        s.figures.refused
    );
    for e in &s.entries {
        println!(
            "  {:<12} {:>8} bytes  uses {:>4}  pins {}{}",
            e.name,
            e.bytes,
            e.uses,
            e.pins,
            if e.prefetched { "  (predicted)" } else { "" }
        );
    }
    Ok(())
}

/// `trace add NAME STEPS...`: a trace sent over the console (steps separated by `;`).
pub fn trace(args: &mut Args) -> CmdResult {
    let sub = args.required("`add`")?;
    if sub != "add" {
        return Err(failed(alloc::format!("unknown trace subcommand `{sub}`")));
    }
    let name = args.required("trace name")?;
    let mut words = Vec::new();
    while let Some(w) = args.positional() {
        words.push(w);
    }
    args.finish()?;
    if !chunk_image::workload::is_trace_name(&name) {
        return Err(failed("a trace name is a word (letters, digits, _ and -)"));
    }
    let n = replay::add(&name, &words.join(" ")).map_err(failed)?;
    println!("trace {name}: {n} steps");
    Ok(())
}

/// `traces [--json]`.
pub fn traces(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let list = replay::list();
    if json {
        let mut j = Json::new();
        j.begin_object().array("traces");
        for (name, from, text) in &list {
            let steps = atoll_predict::trace::parse(text).map_or(0, |s| s.len());
            j.begin_object()
                .str("name", name)
                .str("from", from)
                .u64("steps", steps as u64)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    for (name, from, text) in &list {
        let steps = atoll_predict::trace::parse(text).map_or(0, |s| s.len());
        println!("{name:<16} {steps:>6} steps  ({from})");
    }
    Ok(())
}

fn dist_json(j: &mut Json, key: &str, d: &Distribution) {
    j.object(key)
        .u64("count", d.count as u64)
        .u64("min", d.min)
        .u64("median", d.median)
        .u64("p99", d.p99)
        .u64("max", d.max)
        .end_object();
}

fn permille(n: u64, d: u64) -> u64 {
    (n * 1000).checked_div(d).unwrap_or(0)
}

/// `replay NAME [--predict on|off|both] [--limit BYTES] [--policy lru|lfu] [--results] [--json]`.
pub fn replay_cmd(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let with_results = args.flag("--results");
    let mode = args.flag_str("--predict")?;
    let limit = args.flag_u64("--limit")?;
    let policy = match args.flag_str("--policy")? {
        Some(p) => Some(Policy::parse(&p).ok_or_else(|| failed("the policy is lru or lfu"))?),
        None => None,
    };
    let snapshots = args.flag_str("--snapshots")?;
    let name = args.required("trace name")?;
    args.finish()?;
    if let Some(s) = snapshots {
        return super::cmd_snap_run::replay(&name, &s, json);
    }
    let modes: &[bool] = match mode.as_deref() {
        None | Some("both") => &[false, true],
        Some("on") => &[true],
        Some("off") => &[false],
        Some(m) => return Err(failed(alloc::format!("--predict {m}: on, off or both"))),
    };
    // A bound or policy given for the replay holds for it alone.
    let before = cache::snapshot();
    if let Some(p) = policy {
        cache::set_policy(p);
    }
    if let Some(l) = limit {
        cache::set_limit(l).map_err(failed)?;
    }
    let passes = replay::replay(&name, modes);
    cache::set_policy(before.policy);
    let _ = cache::set_limit(before.limit);
    let passes = passes.map_err(failed)?;
    let icount = time::icount();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("trace", &name)
            .bool("icount", icount)
            .array("passes");
        for p in &passes {
            let n = p.steps.len() as u64;
            let hits = p.steps.iter().filter(|s| s.hit).count() as u64;
            j.begin_object()
                .str("predict", if p.predict { "on" } else { "off" })
                .u64("steps", n);
            dist_json(&mut j, "start_cycles", &p.start);
            dist_json(&mut j, "start_cycles_hits", &p.start_hits);
            dist_json(&mut j, "start_cycles_misses", &p.start_misses);
            if icount {
                let d = Distribution::of_mapped(
                    &p.steps.iter().map(|s| s.start_cycles).collect::<Vec<_>>(),
                    time::cycles_to_instructions,
                );
                dist_json(&mut j, "start_instructions", &d);
            }
            j.u64("scored", p.accuracy.scored)
                .u64(
                    "top1_permille",
                    permille(p.accuracy.top1, p.accuracy.scored),
                )
                .u64(
                    "top3_permille",
                    permille(p.accuracy.top3, p.accuracy.scored),
                )
                .u64("hit_permille", permille(hits, n))
                .str("policy", p.cache.policy.name())
                .u64("limit_bytes", p.cache.limit)
                .u64("peak_bytes", p.cache.figures.peak_bytes)
                .u64("evictions", p.cache.figures.evictions)
                .u64("refused", p.cache.figures.refused)
                .u64("waited", p.cache.waited)
                .u64("preassembled", p.worker.assembled)
                .u64("validated", p.worker.validated)
                .u64("worker_deferred_ms", p.worker.deferred_ms);
            if with_results {
                j.array("results");
                for s in &p.steps {
                    j.str_value(&s.outcome);
                }
                j.end_array();
            }
            j.end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    for p in &passes {
        let n = p.steps.len() as u64;
        let hits = p.steps.iter().filter(|s| s.hit).count() as u64;
        println!(
            "predict {:<3}: {} steps, start median {} cycles, p99 {}; top-1 {}/{}, top-3 {}/{}, hits {}/{}, evictions {}, peak {} of {} bytes",
            if p.predict { "on" } else { "off" },
            n,
            p.start.median,
            p.start.p99,
            p.accuracy.top1,
            p.accuracy.scored,
            p.accuracy.top3,
            p.accuracy.scored,
            hits,
            n,
            p.cache.figures.evictions,
            p.cache.figures.peak_bytes,
            p.cache.limit
        );
    }
    if let [off, on] = passes.as_slice()
        && on.start.median > 0
    {
        let x100 = off.start.median * 100 / on.start.median;
        println!(
            "median start latency: {}.{:02}x lower with prediction",
            x100 / 100,
            x100 % 100
        );
    }
    Ok(())
}
