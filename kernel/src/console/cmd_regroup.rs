//! `islands merge A B` and `islands split ID AT [small|large|core N]`: merge two islands of one
//! module into one contiguous island, or split one in two, while they run (the relocation
//! protocol; `docs/relocation-engine.md`, *Merge and split*).

use atoll_kcore::args::{ArgError, Args, parse_u64};
use atoll_kcore::json::Json;

use super::commands::{CmdError, CmdResult};
use crate::island::place::Target;
use crate::island::regroup::{self, RegroupReport};
use crate::{island, println};

fn island_id(args: &mut Args, what: &'static str) -> Result<u32, CmdError> {
    let v = args.required(what)?;
    u32::try_from(parse_u64(&v, what)?)
        .map_err(|_| CmdError::Failed(alloc::format!("no island {v}")))
}

/// `islands merge INTO ABSORBED [--json]`.
pub fn merge(args: &mut Args, json: bool) -> CmdResult {
    let into = island_id(args, "island id (the one that stays)")?;
    let absorbed = island_id(args, "island id (the one merged into it)")?;
    args.finish()?;
    let r = regroup::merge(into, absorbed, None)?;
    print(&r, json);
    Ok(())
}

/// `islands split ID AT [small|large|core N] [--json]`: the functions from the `AT`-th on
/// become a new island at the target (default: fresh 4 KiB pages); the first part stays in
/// its page size.
pub fn split(args: &mut Args, json: bool) -> CmdResult {
    let id = island_id(args, "island id")?;
    let at = args.required("split point (index of the first function of the second part)")?;
    let at = usize::try_from(parse_u64(&at, "split point")?)
        .map_err(|_| CmdError::Failed(alloc::format!("bad split point {at}")))?;
    let tail = match args.positional() {
        None => Target::Small,
        Some(kind) => {
            let n = match kind.as_str() {
                "core" => {
                    let n = args.required("core number")?;
                    Some(u32::try_from(parse_u64(&n, "core number")?).map_err(|_| {
                        CmdError::Args(ArgError::Invalid {
                            what: "core number",
                            value: n,
                        })
                    })?)
                }
                _ => None,
            };
            Target::parse(&kind, n).ok_or(CmdError::Args(ArgError::Invalid {
                what: "target (small, large or core N)",
                value: kind,
            }))?
        }
    };
    args.finish()?;
    let head = if island::page_bytes_of(id) == atoll_island::PageSize::Size2M.bytes() {
        Target::Large
    } else {
        Target::Small
    };
    let r = regroup::split(id, at, head, tail)?;
    print(&r, json);
    Ok(())
}

fn print(r: &RegroupReport, json: bool) {
    let what = if r.merge { "merge" } else { "split" };
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("action", what)
            .u64("island", u64::from(r.island))
            .u64("other", u64::from(r.other))
            .array("results");
        for &(id, base, len, page) in &r.results {
            j.begin_object()
                .u64("island", u64::from(id))
                .u64("address", base)
                .u64("size_bytes", u64::from(len))
                .u64("page_bytes", page)
                .end_object();
        }
        j.end_array().array("sources");
        for &(id, base, len) in &r.sources {
            j.begin_object()
                .u64("island", u64::from(id))
                .u64("address", base)
                .u64("size_bytes", u64::from(len))
                .end_object();
        }
        j.end_array()
            .u64("rips_rewritten", u64::from(r.rips_rewritten))
            .u64(
                "return_addresses_rewritten",
                u64::from(r.return_addresses_rewritten),
            )
            .u64("call_sites_patched", u64::from(r.call_sites_patched))
            .u64("cells_retargeted", u64::from(r.cells_retargeted))
            .u64("threads_walked", u64::from(r.threads_walked))
            .u64("threads_migrated", u64::from(r.threads_migrated))
            .u64("retries", u64::from(r.retries))
            .u64("pause_cycles", r.pause_cycles)
            .end_object();
        println!("{}", j.finish());
        return;
    }
    match r.merge {
        true => println!("merged island {} into island {}", r.other, r.island),
        false => println!(
            "split island {}: its second part is island {}",
            r.island, r.other
        ),
    }
    for &(id, base, len) in &r.sources {
        println!("  from: island {id} at {base:#x}, {len} bytes");
    }
    for &(id, base, len, page) in &r.results {
        println!(
            "  now:  island {id} at {base:#x}, {len} bytes, {} KiB pages",
            page / 1024
        );
    }
    println!(
        "  rewritten: {} RIPs, {} return addresses, {} call sites, {} entry cells; {} threads walked, {} retries, pause {} cycles",
        r.rips_rewritten,
        r.return_addresses_rewritten,
        r.call_sites_patched,
        r.cells_retargeted,
        r.threads_walked,
        r.retries,
        r.pause_cycles
    );
}
