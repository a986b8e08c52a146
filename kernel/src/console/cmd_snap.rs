//! `snap`: predictive snapshots (`docs/snapshots.md`): list, take, drop, stats, refresh, the
//! restore-versus-re-run measurement, and `run ... --snapshots on|off`.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;
use atoll_snapshot::analyzer::RefreshPolicy;

use super::commands::{CmdError, CmdResult};
use crate::println;
use crate::snap::{self, SnapError};

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
            super::cmd_snap_run::bench(&task, &words, rounds, json)?;
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
