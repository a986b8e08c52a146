//! Island commands: `islands`, `relocate`, `reloc-stats`, `reloc-stress`.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;
use atoll_kcore::stats::Distribution;

use super::commands::{CmdError, CmdResult};
use crate::island::place::{OldCopy, Target};
use crate::island::reloc::{self, RETRY_REASONS, RelocError};
use crate::island::stress::{self, StressSpec};
use crate::{island, println, time};

impl From<RelocError> for CmdError {
    fn from(e: RelocError) -> Self {
        CmdError::Failed(alloc::format!("{e}"))
    }
}

pub fn islands(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let chunk = args.positional();
    match chunk.as_deref() {
        Some("merge") => return super::cmd_regroup::merge(args, json),
        Some("split") => return super::cmd_regroup::split(args, json),
        _ => {}
    }
    args.finish()?;
    let views = island::views(chunk.as_deref());
    if json {
        let mut j = Json::new();
        j.begin_object().array("islands");
        for v in &views {
            j.begin_object()
                .u64("id", u64::from(v.id))
                .str("chunk", &v.chunk)
                .str("function", &v.function)
                .u64("address", v.address)
                .u64("size_bytes", u64::from(v.size_bytes))
                .u64("page_bytes", v.page_bytes);
            match v.core {
                Some(c) => j.u64("core", u64::from(c)),
                None => j.null("core"),
            };
            j.u64("calls", v.calls)
                .u64("blocks", v.blocks)
                .u64("sampled_cycles", v.sampled_cycles)
                .u64("moves", v.moves)
                .u64("env_page_bytes", v.env_page_bytes);
            opt_u32(&mut j, "node", v.node);
            opt_u32(&mut j, "memory_node", v.memory_node);
            j.u64("calls_per_second", v.calls_per_second)
                .u64("cycles_per_second", v.cycles_per_second);
            match v.cycles_per_call {
                Some(c) => j.u64("cycles_per_call", c),
                None => j.null("cycles_per_call"),
            };
            j.u64("priority", v.priority).object("dependencies");
            for (key, list) in [
                ("calls", &v.calls_islands),
                ("called_by", &v.called_by),
                ("imports", &v.imports),
            ] {
                j.array(key);
                for id in list {
                    j.u64_value(u64::from(*id));
                }
                j.end_array();
            }
            j.u64("libcalls", u64::from(v.libcalls))
                .bool("indirect_calls", v.indirect_calls)
                .end_object()
                .array("history");
            for &(from, to, page, core, pause) in &v.history {
                j.begin_object()
                    .u64("from", from)
                    .u64("to", to)
                    .u64("page_bytes", page);
                opt_u32(&mut j, "core", core);
                j.u64("pause_cycles", pause).end_object();
            }
            j.end_array().end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "  {:<4} {:<28} {:<18} {:>6} {:>5} {:<4} {:>10} {:>12} {:>5}",
        "id", "chunk.function", "address", "bytes", "page", "core", "calls", "cycles", "moves"
    );
    for v in &views {
        let core = v.core.map_or_else(|| "-".into(), |c| alloc::format!("{c}"));
        println!(
            "  {:<4} {:<28} {:#018x} {:>6} {:>4}K {:<4} {:>10} {:>12} {:>5}",
            v.id,
            alloc::format!("{}.{}", v.chunk, v.function),
            v.address,
            v.size_bytes,
            v.page_bytes / 1024,
            core,
            v.calls,
            v.sampled_cycles,
            v.moves,
        );
    }
    if views.is_empty() {
        println!("  (no islands: nothing assembled yet)");
    }
    Ok(())
}

pub fn relocate(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let probe = args.flag("--probe-old");
    let id = args.required("island id")?;
    let id = u32::try_from(parse_u64(&id, "island id")?)
        .map_err(|_| CmdError::Failed(alloc::format!("no island {id}")))?;
    if probe {
        args.finish()?;
        island::probe_old(id)?;
        return Ok(());
    }
    let kind = args.required("target (small, large, core N or node N)")?;
    let n = match kind.as_str() {
        "core" | "node" => {
            let n = args.required("core or node number")?;
            Some(
                u32::try_from(parse_u64(&n, "core or node number")?).map_err(|_| {
                    CmdError::Args(ArgError::Invalid {
                        what: "core or node number",
                        value: n,
                    })
                })?,
            )
        }
        _ => None,
    };
    args.finish()?;
    let target = Target::parse(&kind, n).ok_or(CmdError::Args(ArgError::Invalid {
        what: "target (small, large, core N or node N)",
        value: kind,
    }))?;
    let r = reloc::relocate(id, target)?;
    let old = match r.old_copy {
        OldCopy::Int3 => "int3",
        OldCopy::Unmapped => "unmapped",
        OldCopy::UnmappedKept => "unmapped, frames kept for a move back",
        OldCopy::LargePageFreed => "int3, 2 MiB page freed",
    };
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("island", u64::from(r.island))
            .u64("from", r.from)
            .u64("to", r.to)
            .u64("bytes", u64::from(r.bytes))
            .u64("bytes_written", u64::from(r.bytes_written))
            .bool("reused_copy", r.reused_copy)
            .u64("page_bytes", r.page_bytes);
        opt_u32(&mut j, "core", r.core);
        opt_u32(&mut j, "node", r.node);
        j.u64("threads_migrated", u64::from(r.threads_migrated))
            .u64("threads_walked", u64::from(r.threads_walked))
            .u64("frames_walked", u64::from(r.frames_walked))
            .u64("rips_rewritten", u64::from(r.rips_rewritten))
            .u64(
                "return_addresses_rewritten",
                u64::from(r.return_addresses_rewritten),
            )
            .u64("call_sites_patched", u64::from(r.call_sites_patched))
            .u64("cells_retargeted", u64::from(r.cells_retargeted))
            .u64(
                "code_pointers_retargeted",
                u64::from(r.code_pointers_retargeted),
            )
            .u64("retries", u64::from(r.retries))
            .u64("pause_cycles", r.pause_cycles)
            .u64("rendezvous_cycles", r.rendezvous_cycles)
            .u64("callback_cycles", r.callback_cycles)
            .u64("walk_cycles", r.walk_cycles)
            .str("old_copy", old);
        if let Some(n) = reloc::instructions(r.pause_cycles) {
            j.u64("pause_instructions", n)
                .u64(
                    "rendezvous_instructions",
                    reloc::instructions(r.rendezvous_cycles).unwrap_or(0),
                )
                .u64(
                    "callback_instructions",
                    reloc::instructions(r.callback_cycles).unwrap_or(0),
                )
                .u64(
                    "walk_instructions",
                    reloc::instructions(r.walk_cycles).unwrap_or(0),
                );
        }
        if let Some(why) = r.first_retry {
            j.str("first_retry", &alloc::format!("{why:?}"));
        }
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    let home = r
        .core
        .map_or_else(String::new, |c| alloc::format!("; home core {c}"));
    println!(
        "island {}: {} bytes ({} written{}) {:#x} -> {:#x} ({} KiB pages{home}); old copy {old}",
        r.island,
        r.bytes,
        r.bytes_written,
        if r.reused_copy {
            ", its kept copy reused"
        } else {
            ""
        },
        r.from,
        r.to,
        r.page_bytes / 1024
    );
    if r.threads_migrated > 0 {
        println!(
            "moved {} threads to core {}",
            r.threads_migrated,
            r.core.unwrap_or(0)
        );
    }
    println!(
        "rewrote {} RIPs and {} return addresses over {} threads; {} call sites, {} entry cells, {} code addresses in instances; {} retries",
        r.rips_rewritten,
        r.return_addresses_rewritten,
        r.threads_walked,
        r.call_sites_patched,
        r.cells_retargeted,
        r.code_pointers_retargeted,
        r.retries
    );
    match reloc::instructions(r.pause_cycles) {
        Some(n) => println!(
            "pause: {} cycles ({n} guest instructions; rendezvous {}, callback {})",
            r.pause_cycles,
            reloc::instructions(r.rendezvous_cycles).unwrap_or(0),
            reloc::instructions(r.callback_cycles).unwrap_or(0)
        ),
        None => println!(
            "pause: {} cycles (rendezvous {}, callback {})",
            r.pause_cycles, r.rendezvous_cycles, r.callback_cycles
        ),
    }
    Ok(())
}

fn opt_u32(j: &mut Json, key: &str, v: Option<u32>) {
    match v {
        Some(v) => j.u64(key, u64::from(v)),
        None => j.null(key),
    };
}

fn pause_json(j: &mut Json, cycles: &[u64]) {
    let mut sorted = cycles.to_vec();
    let p = Distribution::of(&mut sorted);
    j.object("pause_cycles")
        .u64("min", p.min)
        .u64("median", p.median)
        .u64("p99", p.p99)
        .u64("max", p.max)
        .end_object();
    if time::icount() {
        let q = Distribution::of_mapped(cycles, time::cycles_to_instructions);
        j.object("pause_instructions")
            .u64("min", q.min)
            .u64("median", q.median)
            .u64("p99", q.p99)
            .u64("max", q.max)
            .end_object();
    }
}

pub fn reloc_stress(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let count = args.flag_u64("--count")?.unwrap_or(100);
    let cores = match args.flag_str("--cores")? {
        Some(list) => list
            .split(',')
            .map(|c| {
                parse_u64(c, "core")
                    .ok()
                    .and_then(|c| u32::try_from(c).ok())
                    .ok_or(CmdError::Args(ArgError::Invalid {
                        what: "core list (e.g. 1,2,3)",
                        value: list.clone(),
                    }))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => crate::smp::online_cores()
            .filter(|c| *c != crate::arch::percpu::core_id() as usize)
            .map(|c| c as u32)
            .collect(),
    };
    let islands_of = args.flag_str("--islands")?;
    let task = args.required("task (CHUNK.EXPORT)")?;
    let mut words = Vec::new();
    while let Some(w) = args.positional() {
        words.push(w);
    }
    args.finish()?;
    let spec = StressSpec {
        task,
        words,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        cores,
        islands_of,
    };
    let r = stress::run(&spec).map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("task", &spec.task)
            .u64("moves", u64::from(r.moves))
            .u64("failures", u64::from(r.failures))
            .u64("to_large", u64::from(r.to_large))
            .u64("to_small", u64::from(r.to_small))
            .u64("core_moves", u64::from(r.core_moves))
            .u64("retries", u64::from(r.retries))
            .u64("rips_rewritten", r.rips_rewritten)
            .u64("return_addresses_rewritten", r.return_addresses_rewritten)
            .u64("call_sites_patched", r.call_sites_patched)
            .u64("code_pointers_retargeted", r.code_pointers_retargeted)
            .u64("threads_migrated", r.threads_migrated)
            .u64(
                "moves_with_threads_inside",
                u64::from(r.moves_with_threads_inside),
            )
            .u64("runs", u64::from(r.runs))
            .u64("lost", u64::from(r.lost));
        j.array("islands");
        for id in &r.islands {
            j.u64_value(u64::from(*id));
        }
        j.end_array().array("results");
        for (value, n) in &r.results {
            j.begin_object()
                .str("value", value)
                .u64("runs", u64::from(*n))
                .end_object();
        }
        j.end_array();
        match &r.first_failure {
            Some(f) => j.str("first_failure", f),
            None => j.null("first_failure"),
        };
        pause_json(&mut j, &r.pause_cycles);
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "{} moves ({} to 2 MiB, {} to 4 KiB, {} to another core), {} failed, {} retried rounds",
        r.moves, r.to_large, r.to_small, r.core_moves, r.failures, r.retries
    );
    println!(
        "rewritten: {} RIPs, {} return addresses, {} call sites; {} threads moved with their island",
        r.rips_rewritten, r.return_addresses_rewritten, r.call_sites_patched, r.threads_migrated
    );
    for (value, n) in &r.results {
        println!("result {value}: {n} runs");
    }
    if r.lost > 0 {
        println!("{} runs lost or trapped", r.lost);
    }
    if let Some(f) = &r.first_failure {
        println!("first failure: {f}");
    }
    Ok(())
}

pub fn reloc_stats(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let (s, instances) = reloc::stats();
    let g = crate::island::regroup::stats();
    let mut pauses = s.pause_cycles.clone();
    let p = Distribution::of(&mut pauses);
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("count", s.count)
            .u64("failures", s.failures)
            .u64("merges", g.merges)
            .u64("splits", g.splits)
            .u64("regroup_failures", g.failures)
            .u64("retries", s.retries)
            .u64("rips_rewritten", s.rips_rewritten)
            .u64("return_addresses_rewritten", s.return_addresses_rewritten)
            .u64("call_sites_patched", s.call_sites_patched)
            .u64("code_pointers_retargeted", s.code_pointers_retargeted)
            .u64("threads_migrated", s.threads_migrated)
            .u64("to_large", s.to_large)
            .u64("to_small", s.to_small)
            .u64("bytes_moved", s.bytes_moved)
            .u64("bytes_written", s.bytes_written)
            .u64("reused_copies", s.reused_copies)
            .u64("instances_registered", instances as u64);
        j.object("retries_by_reason");
        for (name, n) in RETRY_REASONS.iter().zip(s.retries_by_reason) {
            j.u64(name, n);
        }
        j.end_object();
        pause_json(&mut j, &s.pause_cycles);
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "relocations: {} done, {} failed, {} retried rounds, {} bytes moved, {} written ({} moves reused a kept copy)",
        s.count, s.failures, s.retries, s.bytes_moved, s.bytes_written, s.reused_copies
    );
    println!(
        "merges: {}, splits: {}, {} refused or failed",
        g.merges, g.splits, g.failures
    );
    println!(
        "rewritten: {} RIPs, {} return addresses, {} call sites; {} threads moved with their island",
        s.rips_rewritten, s.return_addresses_rewritten, s.call_sites_patched, s.threads_migrated
    );
    println!(
        "moves to 2 MiB pages {}, to 4 KiB pages {}; retried rounds by reason: {}",
        s.to_large,
        s.to_small,
        RETRY_REASONS
            .iter()
            .zip(s.retries_by_reason)
            .map(|(n, c)| alloc::format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "pause cycles: min {} / median {} / p99 {} / max {}",
        p.min, p.median, p.p99, p.max
    );
    Ok(())
}
