//! Island commands: `islands`, `relocate`, `reloc-stats`.

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;
use atoll_kcore::stats::Distribution;

use super::commands::{CmdError, CmdResult};
use crate::island::reloc::{self, OldCopy, RelocError};
use crate::{island, println, time};

impl From<RelocError> for CmdError {
    fn from(e: RelocError) -> Self {
        CmdError::Failed(alloc::format!("{e}"))
    }
}

pub fn islands(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let chunk = args.positional();
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
                .bool("movable", v.unmovable.is_none())
                .end_object();
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
            "  {:<4} {:<28} {:#018x} {:>6} {:>4}K {:<4} {:>10} {:>12} {:>5}{}",
            v.id,
            alloc::format!("{}.{}", v.chunk, v.function),
            v.address,
            v.size_bytes,
            v.page_bytes / 1024,
            core,
            v.calls,
            v.sampled_cycles,
            v.moves,
            v.unmovable.map_or("", |_| "  (pinned)")
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
    let target = args.required("target environment (small)")?;
    args.finish()?;
    if target != "small" {
        return Err(CmdError::Args(ArgError::Invalid {
            what: "target (only `small`, fresh 4 KiB pages, exists)",
            value: target,
        }));
    }
    let r = reloc::relocate_small(id)?;
    let old = match r.old_copy {
        OldCopy::Int3 => "int3",
        OldCopy::Unmapped => "unmapped",
    };
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("island", u64::from(r.island))
            .u64("from", r.from)
            .u64("to", r.to)
            .u64("bytes", u64::from(r.bytes))
            .u64("page_bytes", island::SMALL_PAGE_BYTES)
            .u64("threads_walked", u64::from(r.threads_walked))
            .u64("rips_rewritten", u64::from(r.rips_rewritten))
            .u64(
                "return_addresses_rewritten",
                u64::from(r.return_addresses_rewritten),
            )
            .u64("call_sites_patched", u64::from(r.call_sites_patched))
            .u64("cells_retargeted", u64::from(r.cells_retargeted))
            .u64("retries", u64::from(r.retries))
            .u64("pause_cycles", r.pause_cycles)
            .u64("rendezvous_cycles", r.rendezvous_cycles)
            .u64("callback_cycles", r.callback_cycles)
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
                );
        }
        if let Some(why) = r.first_retry {
            j.str("first_retry", &alloc::format!("{why:?}"));
        }
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "island {}: {} bytes {:#x} -> {:#x} (4 KiB pages); old copy {old}",
        r.island, r.bytes, r.from, r.to
    );
    println!(
        "rewrote {} RIPs and {} return addresses over {} threads; {} call sites, {} entry cells; {} retries",
        r.rips_rewritten,
        r.return_addresses_rewritten,
        r.threads_walked,
        r.call_sites_patched,
        r.cells_retargeted,
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

pub fn reloc_stats(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    let s = reloc::stats();
    let mut pauses = s.pause_cycles.clone();
    let p = Distribution::of(&mut pauses);
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("count", s.count)
            .u64("failures", s.failures)
            .u64("retries", s.retries)
            .u64("rips_rewritten", s.rips_rewritten)
            .u64("return_addresses_rewritten", s.return_addresses_rewritten)
            .u64("call_sites_patched", s.call_sites_patched)
            .u64("bytes_moved", s.bytes_moved);
        j.object("pause_cycles")
            .u64("min", p.min)
            .u64("median", p.median)
            .u64("p99", p.p99)
            .u64("max", p.max)
            .end_object();
        if time::icount() {
            let q = Distribution::of_mapped(&s.pause_cycles, time::cycles_to_instructions);
            j.object("pause_instructions")
                .u64("min", q.min)
                .u64("median", q.median)
                .u64("p99", q.p99)
                .u64("max", q.max)
                .end_object();
        }
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "relocations: {} done, {} failed, {} retried rounds, {} bytes moved",
        s.count, s.failures, s.retries, s.bytes_moved
    );
    println!(
        "rewritten: {} RIPs, {} return addresses, {} call sites",
        s.rips_rewritten, s.return_addresses_rewritten, s.call_sites_patched
    );
    println!(
        "pause cycles: min {} / median {} / p99 {} / max {}",
        p.min, p.median, p.p99, p.max
    );
    Ok(())
}
