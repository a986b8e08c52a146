//! NUMA: which node each core and each physical address belongs to, and frames from one
//! node's memory, from the ACPI SRAT (and distances from the SLIT).
//!
//! Without a SRAT (or with one that could not be decoded) the whole machine is node 0: every
//! known core and every tracked address is on it, and `alloc_on_node(0, ..)` is a plain
//! allocation. Frames from `alloc_on_node` are freed with `crate::mem::frames::free`.

use atoll_kcore::addr::{PageSize, PhysAddr, PhysRange};
use atoll_kcore::numa::{Node, Topology};
use spin::Once;

use super::frames;
use crate::smp;

static TOPOLOGY: Once<Option<Topology>> = Once::new();

/// Builds the topology from the SRAT that `acpi::init` read, if any. Call after `acpi::init`;
/// before it (or without ACPI) the machine counts as one node.
pub fn init() -> Option<&'static Topology> {
    TOPOLOGY
        .call_once(|| {
            let info = crate::acpi::info()?;
            let srat = info.srat.as_ref()?;
            let topology = Topology::from_srat(srat, info.slit.clone());
            // A SRAT that names no node at all says nothing: treat it as absent.
            (!topology.nodes().is_empty()).then_some(topology)
        })
        .as_ref()
}

/// The topology from the SRAT, or `None` when the machine is one node.
pub fn topology() -> Option<&'static Topology> {
    TOPOLOGY.get().and_then(Option::as_ref)
}

/// Number of NUMA nodes (1 without a SRAT).
pub fn node_count() -> u32 {
    topology().map_or(1, |t| t.nodes().len() as u32)
}

/// The node of `core` (a `crate::smp` core id), if the core exists and the SRAT places it.
pub fn node_of_core(core: usize) -> Option<u32> {
    if core >= smp::known_cores() {
        return None;
    }
    match topology() {
        Some(t) => t.node_of_apic(smp::apic_id(core)),
        None => Some(0),
    }
}

/// The node whose memory holds `pa`, if any (without a SRAT: node 0 for every address the frame
/// allocator tracks).
pub fn node_of_addr(pa: PhysAddr) -> Option<u32> {
    match topology() {
        Some(t) => t.node_of_addr(pa),
        None => (pa.0 < frames::limit().0).then_some(0),
    }
}

/// A frame of `size` from `node`'s memory only; `None` when the node does not exist or has no
/// such frame free. Free it with `crate::mem::frames::free`.
pub fn alloc_on_node(node: u32, size: PageSize) -> Option<PhysAddr> {
    match topology() {
        Some(t) => frames::alloc_in(size, &t.node(node)?.ranges),
        None if node == 0 => frames::alloc(size),
        None => None,
    }
}

/// What `numa` reports about one node.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The node number.
    pub node: u32,
    /// Its SRAT proximity domain (`None` without a SRAT).
    pub domain: Option<u32>,
    /// Its memory ranges (without a SRAT: the whole tracked range).
    pub ranges: alloc::vec::Vec<PhysRange>,
    /// Core ids on it.
    pub cores: alloc::vec::Vec<usize>,
    /// Free 4 KiB frames in its memory.
    pub free_frames: u64,
}

/// A view of every node for reports.
pub fn nodes() -> alloc::vec::Vec<NodeView> {
    let cores_of = |node: u32| {
        (0..smp::known_cores())
            .filter(|c| node_of_core(*c) == Some(node))
            .collect()
    };
    match topology() {
        Some(t) => t
            .nodes()
            .iter()
            .zip(0u32..)
            .map(|(n, node): (&Node, u32)| NodeView {
                node,
                domain: Some(n.domain),
                ranges: n.ranges.clone(),
                cores: cores_of(node),
                free_frames: frames::free_in(&n.ranges),
            })
            .collect(),
        None => alloc::vec![NodeView {
            node: 0,
            domain: None,
            ranges: alloc::vec![PhysRange {
                start: PhysAddr(0),
                end: frames::limit(),
            }],
            cores: cores_of(0),
            free_frames: frames::stats().free,
        }],
    }
}
