//! `numa`: the NUMA nodes from the SRAT (memory ranges, cores, free frames, SLIT distances),
//! and `--probe-alloc`, which takes a 4 KiB and a 2 MiB frame from each node through
//! `mem::numa::alloc_on_node`, reports where they are, and frees them.

use alloc::vec::Vec;

use atoll_kcore::addr::{PageSize, PhysAddr};
use atoll_kcore::args::Args;
use atoll_kcore::json::Json;

use super::commands::{CmdError, CmdResult};
use crate::mem::{frames, numa};
use crate::println;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// One probe allocation: the frame `alloc_on_node` returned (freed again) and the node that
/// `node_of_addr` says holds it.
struct Probe {
    node: u32,
    size: PageSize,
    frame: Option<PhysAddr>,
    node_of_frame: Option<u32>,
}

fn probe(node: u32, size: PageSize) -> Result<Probe, CmdError> {
    let frame = numa::alloc_on_node(node, size);
    let node_of_frame = frame.and_then(numa::node_of_addr);
    if let Some(f) = frame {
        frames::free(f, size).map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
    }
    Ok(Probe {
        node,
        size,
        frame,
        node_of_frame,
    })
}

/// Probes every node, plus the first node number past the last (which must give nothing).
fn probes() -> Result<Vec<Probe>, CmdError> {
    let mut out = Vec::new();
    for node in 0..=numa::node_count() {
        for size in [PageSize::Size4K, PageSize::Size2M] {
            out.push(probe(node, size)?);
        }
    }
    Ok(out)
}

pub fn numa(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let probe_alloc = args.flag("--probe-alloc");
    args.finish()?;
    let srat = numa::topology().is_some();
    let nodes = numa::nodes();
    let probes = if probe_alloc { probes()? } else { Vec::new() };
    let count = numa::node_count();
    let distance = |a: u32, b: u32| numa::topology().and_then(|t| t.distance(a, b));
    let has_distances = numa::topology().is_some_and(|t| t.has_distances());
    if json {
        let mut j = Json::new();
        j.begin_object()
            .bool("srat", srat)
            .bool("slit", has_distances)
            .u64("node_count", u64::from(count))
            .array("nodes");
        for n in &nodes {
            j.begin_object().u64("node", u64::from(n.node));
            match n.domain {
                Some(d) => j.u64("domain", u64::from(d)),
                None => j.null("domain"),
            };
            j.u64(
                "memory_bytes",
                n.ranges.iter().map(|r| r.bytes()).sum::<u64>(),
            )
            .array("ranges");
            for r in &n.ranges {
                j.begin_object()
                    .u64("start", r.start.0)
                    .u64("end", r.end.0)
                    .u64("bytes", r.bytes())
                    .end_object();
            }
            j.end_array().array("cores");
            for c in &n.cores {
                j.u64_value(*c as u64);
            }
            j.end_array()
                .u64("free_frames", n.free_frames)
                .u64("free_bytes", n.free_frames * 4 * KIB);
            if has_distances {
                j.array("distances");
                for to in 0..count {
                    j.u64_value(distance(n.node, to).map_or(0, u64::from));
                }
                j.end_array();
            }
            j.end_object();
        }
        j.end_array();
        if probe_alloc {
            j.array("probes");
            for p in &probes {
                j.begin_object()
                    .u64("node", u64::from(p.node))
                    .u64("size_bytes", p.size.bytes());
                match p.frame {
                    Some(f) => j.u64("frame", f.0),
                    None => j.null("frame"),
                };
                match p.node_of_frame {
                    Some(n) => j.u64("node_of_frame", u64::from(n)),
                    None => j.null("node_of_frame"),
                };
                j.end_object();
            }
            j.end_array();
        }
        j.end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    if srat {
        println!(
            "{count} NUMA nodes from the SRAT{}",
            if has_distances {
                " (distances from the SLIT)"
            } else {
                ""
            }
        );
    } else {
        println!("no SRAT: one NUMA node (the whole machine is node 0)");
    }
    for n in &nodes {
        let bytes: u64 = n.ranges.iter().map(|r| r.bytes()).sum();
        let domain = n.domain.map_or_else(alloc::string::String::new, |d| {
            alloc::format!(" (domain {d})")
        });
        println!(
            "node {}{domain}: {} MiB in {} ranges, cores {:?}, {} frames free ({} MiB)",
            n.node,
            bytes / MIB,
            n.ranges.len(),
            n.cores,
            n.free_frames,
            n.free_frames * 4 * KIB / MIB
        );
        for r in &n.ranges {
            println!(
                "  [{:#x}, {:#x}) {} KiB",
                r.start.0,
                r.end.0,
                r.bytes() / KIB
            );
        }
        if has_distances {
            let d: Vec<u64> = (0..count)
                .map(|to| distance(n.node, to).map_or(0, u64::from))
                .collect();
            println!("  distances to nodes 0..{count}: {d:?}");
        }
    }
    for p in &probes {
        match p.frame {
            Some(f) => println!(
                "probe: node {} {} frame at {:#x} (node_of_addr: {:?}), freed",
                p.node,
                p.size.name(),
                f.0,
                p.node_of_frame
            ),
            None => println!("probe: node {} {} frame: none", p.node, p.size.name()),
        }
    }
    Ok(())
}
