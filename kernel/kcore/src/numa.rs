//! The machine's NUMA topology as the kernel uses it: nodes numbered 0..n, each with its
//! physical memory ranges and the APIC ids of its processors, built from a decoded SRAT.
//!
//! Nodes are the proximity domains that have at least one enabled processor or memory entry,
//! numbered in increasing domain order (on QEMU and most firmware, node i is domain i).
//! Disabled entries are ignored, as the ACPI spec requires. A node's ranges are sorted and do
//! not overlap another node's; hot-pluggable ranges are kept (the frame allocator only hands
//! out frames that the boot memory map also calls usable).

use alloc::vec::Vec;

use crate::addr::{PhysAddr, PhysRange};
use crate::srat::{Slit, Srat};

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The SRAT proximity domain it stands for.
    pub domain: u32,
    /// Its memory, sorted by address.
    pub ranges: Vec<PhysRange>,
    /// APIC ids of its processors, in SRAT order.
    pub apic_ids: Vec<u32>,
}

impl Node {
    /// Bytes of memory the SRAT gives it.
    pub fn memory_bytes(&self) -> u64 {
        self.ranges.iter().map(PhysRange::bytes).sum()
    }
}

/// The topology: nodes and, when a SLIT was present, their distances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    nodes: Vec<Node>,
    slit: Option<Slit>,
}

impl Topology {
    /// Builds the topology from a decoded SRAT and, if the firmware has one, its SLIT.
    pub fn from_srat(srat: &Srat, slit: Option<Slit>) -> Self {
        let mut domains: Vec<u32> = srat
            .cpus
            .iter()
            .filter(|c| c.enabled)
            .map(|c| c.domain)
            .chain(
                srat.memory
                    .iter()
                    .filter(|m| m.enabled && m.length_bytes > 0)
                    .map(|m| m.domain),
            )
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let nodes = domains
            .iter()
            .map(|&domain| {
                let mut ranges: Vec<PhysRange> = srat
                    .memory
                    .iter()
                    .filter(|m| m.enabled && m.length_bytes > 0 && m.domain == domain)
                    .map(|m| PhysRange {
                        start: PhysAddr(m.base),
                        end: PhysAddr(m.end()),
                    })
                    .collect();
                ranges.sort_unstable_by_key(|r| r.start.0);
                let apic_ids = srat
                    .cpus
                    .iter()
                    .filter(|c| c.enabled && c.domain == domain)
                    .map(|c| c.apic_id)
                    .collect();
                Node {
                    domain,
                    ranges,
                    apic_ids,
                }
            })
            .collect();
        Self { nodes, slit }
    }

    /// The nodes, in node-number order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `node`, if it exists.
    pub fn node(&self, node: u32) -> Option<&Node> {
        self.nodes.get(node as usize)
    }

    /// The node whose processors include APIC id `apic`.
    pub fn node_of_apic(&self, apic: u32) -> Option<u32> {
        self.position(|n| n.apic_ids.contains(&apic))
    }

    /// The node whose memory holds `pa`.
    pub fn node_of_addr(&self, pa: PhysAddr) -> Option<u32> {
        self.position(|n| n.ranges.iter().any(|r| r.contains(pa)))
    }

    fn position(&self, f: impl Fn(&Node) -> bool) -> Option<u32> {
        self.nodes
            .iter()
            .position(f)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The SLIT distance from node `from` to node `to` (10 = local), if the SLIT covers both.
    pub fn distance(&self, from: u32, to: u32) -> Option<u8> {
        let slit = self.slit.as_ref()?;
        slit.distance(self.node(from)?.domain, self.node(to)?.domain)
    }

    /// Whether the firmware gave a SLIT.
    pub fn has_distances(&self) -> bool {
        self.slit.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srat::{CpuAffinity, MemoryAffinity};

    const MIB: u64 = 1 << 20;

    fn cpu(apic_id: u32, domain: u32, enabled: bool) -> CpuAffinity {
        CpuAffinity {
            apic_id,
            domain,
            enabled,
            x2apic: false,
        }
    }

    fn mem(base: u64, length_bytes: u64, domain: u32, enabled: bool) -> MemoryAffinity {
        MemoryAffinity {
            base,
            length_bytes,
            domain,
            enabled,
            hot_pluggable: false,
            non_volatile: false,
        }
    }

    /// QEMU's SRAT for `-m 1G` over two nodes and four cores (the 640 KiB-1 MiB hole cut out,
    /// disabled filler entries at the end).
    fn two_nodes() -> Srat {
        Srat {
            cpus: vec![
                cpu(0, 0, true),
                cpu(1, 0, true),
                cpu(2, 1, true),
                cpu(3, 1, true),
                cpu(4, 5, false),
            ],
            memory: vec![
                mem(0, 640 * 1024, 0, true),
                mem(MIB, 511 * MIB, 0, true),
                mem(512 * MIB, 512 * MIB, 1, true),
                mem(0, 0, 0, false),
                mem(2048 * MIB, MIB, 9, false),
            ],
            other_entries: 0,
        }
    }

    #[test]
    fn nodes_from_a_qemu_like_srat() {
        let t = Topology::from_srat(&two_nodes(), None);
        assert_eq!(t.nodes().len(), 2);
        let n0 = t.node(0).unwrap();
        assert_eq!(n0.ranges.len(), 2);
        assert_eq!(n0.memory_bytes(), 512 * MIB - 384 * 1024);
        assert_eq!(n0.apic_ids, vec![0, 1]);
        assert_eq!(t.node(1).unwrap().memory_bytes(), 512 * MIB);
        assert_eq!(t.node_of_apic(3), Some(1));
        assert_eq!(t.node_of_apic(4), None, "disabled entries are ignored");
        assert_eq!(t.node_of_addr(PhysAddr(0x1000)), Some(0));
        assert_eq!(t.node_of_addr(PhysAddr(700 * 1024)), None, "the hole");
        assert_eq!(t.node_of_addr(PhysAddr(512 * MIB - 1)), Some(0));
        assert_eq!(t.node_of_addr(PhysAddr(512 * MIB)), Some(1));
        assert_eq!(t.node_of_addr(PhysAddr(1024 * MIB)), None);
        assert_eq!(t.node(2), None);
        assert!(!t.has_distances());
        assert_eq!(t.distance(0, 1), None);
    }

    #[test]
    fn nodes_are_numbered_by_domain_and_slit_is_by_domain() {
        let srat = Srat {
            cpus: vec![cpu(0, 7, true), cpu(1, 3, true)],
            memory: vec![mem(0, MIB, 7, true), mem(MIB, MIB, 3, true)],
            other_entries: 0,
        };
        // Localities 0..8; domain 3 <-> 7 is 30, and 7 -> 3 is 31 (asymmetric on purpose).
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"SLIT");
        bytes.extend_from_slice(&(36u32 + 8 + 64).to_le_bytes());
        bytes.extend_from_slice(&[0; 28]);
        bytes.extend_from_slice(&8u64.to_le_bytes());
        let mut m = [10u8; 64];
        m[3 * 8 + 7] = 30;
        m[7 * 8 + 3] = 31;
        bytes.extend_from_slice(&m);
        let sum = bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        bytes[9] = 0u8.wrapping_sub(sum);
        let slit = crate::srat::parse_slit(&bytes).unwrap();
        let t = Topology::from_srat(&srat, Some(slit));
        assert_eq!(t.node(0).unwrap().domain, 3);
        assert_eq!(t.node_of_apic(0), Some(1));
        assert_eq!(t.distance(0, 1), Some(30));
        assert_eq!(t.distance(1, 0), Some(31));
        assert_eq!(t.distance(1, 1), Some(10));
        assert_eq!(t.distance(0, 2), None);
    }
}
