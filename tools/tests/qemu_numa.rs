//! NUMA tests in QEMU: the kernel reads the SRAT QEMU builds for `Options::numa(n)` (the same
//! machine as `run-qemu.sh --numa N`) and `numa --json` reports the nodes QEMU was given: each
//! node's memory size and place, each core on the node of its socket, and `--probe-alloc`
//! frames that lie inside the node they were asked from. Without `--numa` there is no SRAT
//! and the machine is one node.
//!
//! Run alone with `cargo test -p tools --release --test qemu_numa -- --test-threads 2`.

use tools::qemu::numa::NumaLayout;
use tools::qemu::{Checks, Json, Machine, Options};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const SIZE_4K: u64 = 4 * KIB;
const SIZE_2M: u64 = 2 * MIB;
/// QEMU leaves the legacy VGA/BIOS hole [640 KiB, 1 MiB) out of node 0's SRAT entries.
const LOW_HOLE_BYTES: u64 = 384 * KIB;

fn array<'a>(j: &'a Json, key: &str) -> &'a [Json] {
    j.get(key)
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn u64s(j: &Json, key: &str) -> Vec<u64> {
    array(j, key).iter().filter_map(Json::as_u64).collect()
}

/// A node's ranges as `(start, end)` pairs.
fn ranges(node: &Json) -> Vec<(u64, u64)> {
    array(node, "ranges")
        .iter()
        .map(|r| {
            let get = |k| r.get(k).and_then(Json::as_u64).unwrap_or(0);
            (get("start"), get("end"))
        })
        .collect()
}

fn inside(ranges: &[(u64, u64)], frame: u64, bytes: u64) -> bool {
    ranges
        .iter()
        .any(|&(s, e)| s <= frame && frame.saturating_add(bytes) <= e)
}

/// Free frames per `mem --json`.
fn frames_free(c: &mut Checks, m: &mut Machine) -> u64 {
    let out = m.command("mem --json");
    let j = c.json("mem --json", &out);
    c.u64("mem --json", &j, "frames_free")
}

/// Checks `numa --probe-alloc --json`: for each node a 4 KiB and a 2 MiB frame, aligned,
/// inside that node's reported ranges and placed on it by `node_of_addr`; nothing from the
/// node number past the last; and every probe frame freed again.
fn check_probes(c: &mut Checks, m: &mut Machine, nodes: &[Json]) {
    let before = frames_free(c, m);
    let cmd = "numa --probe-alloc --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    let after = frames_free(c, m);
    c.check(before == after, || {
        format!("`{cmd}` must free its frames: {before} free before, {after} after")
    });
    let probes = array(&j, "probes");
    c.check(probes.len() == 2 * (nodes.len() + 1), || {
        format!("`{cmd}`: two probes per node and two past the last expected: {out}")
    });
    for p in probes {
        let node = p.get("node").and_then(Json::as_u64).unwrap_or(u64::MAX);
        let size = p.get("size_bytes").and_then(Json::as_u64).unwrap_or(0);
        let frame = p.get("frame").and_then(Json::as_u64);
        let Some(reported) = nodes.get(node as usize) else {
            c.check(frame.is_none(), || {
                format!("`{cmd}`: node {node} does not exist, yet a frame came from it: {p}")
            });
            continue;
        };
        let Some(frame) = frame else {
            c.fail(format!(
                "`{cmd}`: no {size}-byte frame from node {node}: {out}"
            ));
            continue;
        };
        c.check(size == SIZE_4K || size == SIZE_2M, || {
            format!("`{cmd}`: unexpected probe size {size}")
        });
        c.check(frame % size.max(1) == 0, || {
            format!("`{cmd}`: frame {frame:#x} is not aligned to {size}")
        });
        let node_ranges = ranges(reported);
        c.check(inside(&node_ranges, frame, size), || {
            format!(
                "`{cmd}`: the {size}-byte frame {frame:#x} from node {node} lies outside its \
                 ranges {node_ranges:x?}"
            )
        });
        c.check(
            p.get("node_of_frame").and_then(Json::as_u64) == Some(node),
            || format!("`{cmd}`: node_of_addr should put {frame:#x} on node {node}: {p}"),
        );
    }
}

/// The APIC id of each core, per `cpus --json` (index = core id).
fn apic_ids(c: &mut Checks, m: &mut Machine) -> Vec<u64> {
    let out = m.command("cpus --json");
    let j = c.json("cpus --json", &out);
    array(&j, "cpus")
        .iter()
        .filter_map(|cpu| cpu.get("apic_id").and_then(Json::as_u64))
        .collect()
}

/// Boots with `options.numa(n)` and checks that `numa --json` shows the nodes QEMU was given.
fn numa_batch(options: Options, n: u32) {
    let layout = NumaLayout::new(n, options.smp, &options.mem).expect("a valid split");
    let mut m = Machine::boot(options.numa(n));
    let mut c = Checks::new();
    let cmd = "numa --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    c.check(j.get("srat").and_then(Json::as_bool) == Some(true), || {
        format!("`{cmd}`: QEMU gave a SRAT: {out}")
    });
    c.check(
        j.get("node_count").and_then(Json::as_u64) == Some(u64::from(n)),
        || format!("`{cmd}`: {n} nodes expected: {out}"),
    );
    let nodes = array(&j, "nodes").to_vec();
    c.check(nodes.len() == n as usize, || {
        format!("`{cmd}`: {n} node entries expected: {out}")
    });

    // Memory: node k is QEMU's k-th backend, [k*part, (k+1)*part), node 0 without the hole.
    let part = layout.node_mem_bytes;
    for (k, node) in nodes.iter().enumerate() {
        let k = k as u64;
        let rs = ranges(node);
        let bytes: u64 = rs.iter().map(|(s, e)| e.saturating_sub(*s)).sum();
        let want = if k == 0 { part - LOW_HOLE_BYTES } else { part };
        c.check(bytes == want, || {
            format!("`{cmd}`: node {k} should have {want} bytes, has {bytes}: {rs:x?}")
        });
        c.check(
            node.get("memory_bytes").and_then(Json::as_u64) == Some(bytes),
            || format!("`{cmd}`: node {k}'s memory_bytes should sum its ranges: {node}"),
        );
        c.check(
            rs.iter()
                .all(|&(s, e)| k * part <= s && s < e && e <= (k + 1) * part),
            || format!("`{cmd}`: node {k}'s ranges should lie in QEMU's backend {k}: {rs:x?}"),
        );
        let free = node.get("free_frames").and_then(Json::as_u64).unwrap_or(0);
        c.check(free > 0 && free * SIZE_4K <= bytes, || {
            format!(
                "`{cmd}`: node {k} should have some, but not more than all, frames free: {node}"
            )
        });
    }

    // Distances: QEMU's SLIT from the layout's `-numa dist` options (none for one node).
    c.check(j.get("slit").and_then(Json::as_bool) == Some(n > 1), || {
        format!("`{cmd}`: a SLIT is expected exactly when there are several nodes: {out}")
    });
    if n > 1 {
        for (k, node) in nodes.iter().enumerate() {
            let want: Vec<u64> = (0..n)
                .map(|to| u64::from(layout.distance(k as u32, to)))
                .collect();
            let got = u64s(node, "distances");
            c.check(got == want, || {
                format!("`{cmd}`: node {k}'s distances should be {want:?}, got {got:?}")
            });
        }
    }

    // Cores: QEMU put socket s on node s; a core's socket is its APIC id / cores per socket.
    let apics = apic_ids(&mut c, &mut m);
    c.check(apics.len() == options_smp(&layout), || {
        format!(
            "`cpus --json`: {} cores expected, got APIC ids {apics:?}",
            options_smp(&layout)
        )
    });
    let dense = apics.iter().copied().eq(0..apics.len() as u64);
    c.check(layout.cores_per_node.is_power_of_two() || !dense, || {
        format!(
            "with {} cores per socket QEMU should leave gaps in the APIC ids: {apics:?}",
            layout.cores_per_node
        )
    });
    let per = u64::from(layout.cores_per_node).next_power_of_two();
    for (k, node) in nodes.iter().enumerate() {
        let want: Vec<u64> = (0..apics.len() as u64)
            .filter(|core| apics[*core as usize] / per == k as u64)
            .collect();
        let got = u64s(node, "cores");
        c.check(
            got == want && got.len() == layout.cores_per_node as usize,
            || {
                format!(
                    "`{cmd}`: node {k} should hold cores {want:?} (APIC ids {apics:?}), got {got:?}"
                )
            },
        );
    }

    check_probes(&mut c, &mut m, &nodes);
    let plain = m.command("numa");
    c.check(
        plain.starts_with(&format!("{n} NUMA nodes from the SRAT")),
        || format!("`numa` should start `{n} NUMA nodes from the SRAT`: {plain:?}"),
    );
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}

fn options_smp(layout: &NumaLayout) -> usize {
    (layout.nodes * layout.cores_per_node) as usize
}

#[test]
fn two_nodes_bios_smp4() {
    numa_batch(Options::bios().smp(4), 2);
}

#[test]
fn two_nodes_uefi_smp4() {
    numa_batch(Options::uefi().smp(4), 2);
}

/// Three cores per socket: QEMU numbers APIC ids by socket in steps of 4 (0 1 2, 4 5 6), so
/// core 3 has APIC id 4; a kernel that confused core ids with APIC ids would misplace it.
#[test]
fn two_nodes_bios_smp6_sparse_apic_ids() {
    numa_batch(Options::bios().smp(6), 2);
}

#[test]
fn four_nodes_bios_smp4() {
    numa_batch(Options::bios().smp(4), 4);
}

/// Without `--numa` QEMU gives no SRAT: one node holding every core and all memory.
#[test]
fn no_srat_is_one_node() {
    let mut m = Machine::boot(Options::bios());
    let mut c = Checks::new();
    let cmd = "numa --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    c.check(j.get("srat").and_then(Json::as_bool) == Some(false), || {
        format!("`{cmd}`: no SRAT expected: {out}")
    });
    c.check(
        j.get("node_count").and_then(Json::as_u64) == Some(1),
        || format!("`{cmd}`: one node expected: {out}"),
    );
    let nodes = array(&j, "nodes").to_vec();
    c.check(nodes.len() == 1, || {
        format!("`{cmd}`: one node entry: {out}")
    });
    if let Some(node) = nodes.first() {
        c.check(u64s(node, "cores") == [0, 1], || {
            format!("`{cmd}`: both cores on node 0: {node}")
        });
        let bytes = node.get("memory_bytes").and_then(Json::as_u64).unwrap_or(0);
        c.check((1000 * MIB..=1024 * MIB).contains(&bytes), || {
            format!("`{cmd}`: node 0 should span the 1 GiB machine: {node}")
        });
    }
    check_probes(&mut c, &mut m, &nodes);
    let plain = m.command("numa");
    c.check(plain.starts_with("no SRAT: one NUMA node"), || {
        format!("`numa` should say there is no SRAT: {plain:?}")
    });
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}
