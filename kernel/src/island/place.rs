//! Where a relocated island's code goes: the target environments `relocate` accepts, and the
//! memory each one means (fresh 4 KiB pages of the island's own, or a slot in a shared 2 MiB
//! page; frames from one NUMA node when a node is asked for or implied by a core).

use atoll_island::{Environment, PageSize};
use atoll_kcore::addr::PhysAddr;

use super::KernelIslands;
use super::memory::{CodeRegion, KeptRegion, LargePage};
use super::reloc::RelocError;
use crate::mem::vm::VmError;
use crate::mem::{frames, numa};
use crate::smp;

/// What a move asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Fresh 4 KiB pages of the island's own (home core and node kept).
    Small,
    /// A slot in a 2 MiB page shared with other hot islands (home core and node kept).
    Large,
    /// Memory of core `n`'s node, same page size; the island's threads move to core `n`.
    Core(u32),
    /// Memory of NUMA node `n`, same page size and home core.
    Node(u32),
}

impl Target {
    /// Parses `small`, `large`, `core N` or `node N` (the words after the island id).
    pub fn parse(kind: &str, n: Option<u32>) -> Option<Self> {
        match (kind, n) {
            ("small", None) => Some(Self::Small),
            ("large", None) => Some(Self::Large),
            ("core", Some(n)) => Some(Self::Core(n)),
            ("node", Some(n)) => Some(Self::Node(n)),
            _ => None,
        }
    }
}

/// A target made concrete for one island.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// Page size of the new copy.
    pub page: PageSize,
    /// Home core afterwards.
    pub core: Option<u32>,
    /// Node whose memory holds the copy (`None`: any memory).
    pub node: Option<u32>,
    /// Whether the island's threads move to `core`.
    pub migrate: bool,
}

/// Resolves `target` for an island now in `env`.
pub fn resolve(target: Target, env: &Environment) -> Result<Resolved, RelocError> {
    let keep = Resolved {
        page: env.page_size,
        core: env.core,
        node: env.numa_node,
        migrate: false,
    };
    Ok(match target {
        Target::Small => Resolved {
            page: PageSize::Size4K,
            ..keep
        },
        Target::Large => Resolved {
            page: PageSize::Size2M,
            ..keep
        },
        Target::Core(n) => {
            if !smp::is_online(n as usize) {
                return Err(RelocError::NoSuchCore(n));
            }
            Resolved {
                core: Some(n),
                node: numa_node_of_core(n as usize),
                migrate: true,
                ..keep
            }
        }
        Target::Node(n) => {
            if n >= numa_nodes() {
                return Err(RelocError::NoSuchNode(n));
            }
            Resolved {
                node: Some(n),
                ..keep
            }
        }
    })
}

/// NUMA nodes the machine has (1 when its ACPI tables say nothing about them).
pub fn numa_nodes() -> u32 {
    numa::node_count()
}

/// The node of `core`, when the machine says (no SRAT: none, any memory will do).
pub fn numa_node_of_core(core: usize) -> Option<u32> {
    numa::topology().and(numa::node_of_core(core))
}

/// Frames from `node`'s memory (any memory for `None`).
pub fn frame_source(node: Option<u32>) -> impl Fn(PageSize) -> Option<PhysAddr> {
    move |size| match node {
        Some(n) => numa::alloc_on_node(n, size),
        None => frames::alloc(size),
    }
}

/// Where an island that has left its module's pages lives.
#[derive(Debug)]
pub enum Place {
    /// 4 KiB pages of its own.
    Small(CodeRegion),
    /// A slot in `KernelIslands::large[index]`.
    Large(usize),
}

/// Copies kept for moves back, over all islands (the oldest is freed beyond).
pub const MAX_KEPT_COPIES: usize = 32;

/// Key of a kept copy: the island and the NUMA node of its memory (the environment of a 4 KiB
/// copy as far as memory goes; the home core does not change where the code is).
pub type KeptKey = (u32, Option<u32>);

/// The new copy's memory while a move is prepared.
#[derive(Debug)]
pub enum Dest {
    /// Reserved 4 KiB pages (mapped by `install`).
    Small(CodeRegion),
    /// The island's previous copy at this environment, kept: `install` writes only the bytes
    /// that differ and maps it again (then it is a `Small`).
    Reused {
        /// Where it was kept.
        key: KeptKey,
        /// Its first address.
        base: u64,
        /// The kept copy (taken by `install`; gone if that failed, its frames given back).
        kept: Option<KeptRegion>,
    },
    /// A slot at `addr` in large page `index`; `taken` once the code is written.
    Large {
        /// The page.
        index: usize,
        /// The slot.
        addr: u64,
        /// Bytes written there, once installed.
        taken: Option<u64>,
    },
}

impl Dest {
    /// Room for up to `max_bytes` of code as `r` asks, for island `island`: its kept copy at
    /// that environment when it has one with room enough.
    pub(super) fn reserve(
        k: &mut KernelIslands,
        r: &Resolved,
        max_bytes: u64,
        island: u32,
    ) -> Result<Self, VmError> {
        match r.page {
            PageSize::Size4K => {
                let key = (island, r.node);
                if let Some(kept) = take_kept(k, key) {
                    if kept.reserved_bytes() >= max_bytes {
                        return Ok(Self::Reused {
                            key,
                            base: kept.base(),
                            kept: Some(kept),
                        });
                    }
                    kept.free();
                }
                CodeRegion::reserve(max_bytes).map(Self::Small)
            }
            PageSize::Size2M => {
                let found = k.large.iter().enumerate().rev().find_map(|(i, p)| {
                    let (node, page) = p.as_ref()?;
                    (*node == r.node)
                        .then(|| page.next_slot(max_bytes))
                        .flatten()
                        .map(|addr| (i, addr))
                });
                let (index, addr) = match found {
                    Some(x) => x,
                    None => {
                        let page = LargePage::new(frame_source(r.node))?;
                        let addr = page
                            .next_slot(max_bytes)
                            .ok_or(VmError::OutOfVirtualSpace)?;
                        k.large.push(Some((r.node, page)));
                        (k.large.len() - 1, addr)
                    }
                };
                Ok(Self::Large {
                    index,
                    addr,
                    taken: None,
                })
            }
        }
    }

    /// The first byte of the new copy.
    pub fn address(&self) -> u64 {
        match self {
            Self::Small(r) => r.base(),
            Self::Reused { base, .. } => *base,
            Self::Large { addr, .. } => *addr,
        }
    }

    /// Writes the copy and makes it executable (not writable through that mapping); returns
    /// the bytes written (fewer than the code's when a kept copy is reused).
    pub(super) fn install(
        &mut self,
        k: &mut KernelIslands,
        node: Option<u32>,
        code: &[u8],
    ) -> Result<u64, VmError> {
        match self {
            Self::Small(r) => r
                .install(code, frame_source(node))
                .map(|()| code.len() as u64),
            Self::Reused { kept, .. } => {
                // On failure `restore` gave the frames back; the reservation (never handed out
                // again) is simply dropped.
                let kept = kept.take().ok_or(VmError::OutOfVirtualSpace)?;
                let (region, written) = kept.restore(code, frame_source(node))?;
                *self = Self::Small(region);
                Ok(written)
            }
            Self::Large { index, addr, taken } => {
                let page = k.large_page(*index).ok_or(VmError::OutOfVirtualSpace)?;
                if !page.install(*addr, code) {
                    return Err(VmError::OutOfVirtualSpace);
                }
                *taken = Some(code.len() as u64);
                Ok(code.len() as u64)
            }
        }
    }

    /// The move did not happen: give the memory back (nothing refers to it).
    pub(super) fn abandon(self, k: &mut KernelIslands) {
        match self {
            Self::Small(r) => r.free(),
            Self::Reused {
                key,
                kept: Some(kept),
                ..
            } => keep_copy(k, key, kept),
            Self::Reused { kept: None, .. } => {}
            Self::Large {
                index,
                addr,
                taken: Some(len),
            } => {
                if let Some(page) = k.large_page(index) {
                    page.vacate(addr, len);
                }
            }
            Self::Large { taken: None, .. } => {}
        }
    }

    /// The move happened: this is where the island lives now (`None` only for a kept copy
    /// that was never installed, which no completed move has; its frames go back).
    pub fn into_place(self) -> Option<Place> {
        match self {
            Self::Small(r) => Some(Place::Small(r)),
            Self::Reused { kept, .. } => {
                if let Some(kept) = kept {
                    kept.free();
                }
                None
            }
            Self::Large { index, .. } => Some(Place::Large(index)),
        }
    }
}

/// Takes island `key`'s kept copy, if any.
fn take_kept(k: &mut KernelIslands, key: KeptKey) -> Option<KeptRegion> {
    let kept = k.kept.remove(&key)?;
    k.kept_order.retain(|q| *q != key);
    Some(kept)
}

/// Keeps `kept` as `key`'s copy (replacing an older one), freeing the oldest copies beyond
/// [`MAX_KEPT_COPIES`].
fn keep_copy(k: &mut KernelIslands, key: KeptKey, kept: KeptRegion) {
    if let Some(old) = take_kept(k, key) {
        old.free();
    }
    k.kept.insert(key, kept);
    k.kept_order.push_back(key);
    while k.kept_order.len() > MAX_KEPT_COPIES {
        if let Some(oldest) = k.kept_order.pop_front()
            && let Some(r) = k.kept.remove(&oldest)
        {
            r.free();
        }
    }
}

/// Frees every kept copy of `island` (its module is gone).
pub(super) fn forget_kept(k: &mut KernelIslands, island: u32) {
    let keys: alloc::vec::Vec<KeptKey> = k
        .kept
        .keys()
        .filter(|key| key.0 == island)
        .copied()
        .collect();
    for key in keys {
        if let Some(r) = take_kept(k, key) {
            r.free();
        }
    }
}

/// What became of the copy an island left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldCopy {
    /// Filled with `int3` (it shares its pages with other code).
    Int3,
    /// Its own pages were unmapped and freed.
    Unmapped,
    /// Its own pages were unmapped; their frames are kept for a move back (differential copy).
    UnmappedKept,
    /// Filled with `int3`, and its 2 MiB page, left empty, was unmapped and freed.
    LargePageFreed,
}

/// Makes the copy an island left at `addr` (`len` bytes, living in `place`, or in its module's
/// pages for `None`) unusable: a missed reference traps instead of running stale code. With
/// `keep`, a copy in pages of its own keeps its frames under that key for a move back.
pub(super) fn retire(
    k: &mut KernelIslands,
    place: Option<Place>,
    addr: u64,
    len: usize,
    keep: Option<KeptKey>,
) -> OldCopy {
    match place {
        Some(Place::Small(region)) => match keep {
            Some(key) => {
                let kept = region.keep();
                keep_copy(k, key, kept);
                OldCopy::UnmappedKept
            }
            None => {
                region.free();
                OldCopy::Unmapped
            }
        },
        Some(Place::Large(index)) => {
            // An empty page other than the newest one is given back (the newest keeps
            // taking slots).
            let newest = index + 1 == k.large.len();
            let Some(page) = k.large_page(index) else {
                return OldCopy::Int3;
            };
            page.vacate(addr, len as u64);
            if page.live() == 0 && !newest {
                if let Some((_, page)) = k.large[index].take() {
                    page.free();
                }
                return OldCopy::LargePageFreed;
            }
            OldCopy::Int3
        }
        None => {
            if let Some(alias) = super::memory::CodeAlias::new(addr, len) {
                alias.write(0, &alloc::vec![0xCC; len]);
            }
            OldCopy::Int3
        }
    }
}
