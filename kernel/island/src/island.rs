//! Islands and the set of all of them: built from assembled modules, looked up by address
//! (sorted spans, binary search), moved by a [`PreparedMove`] prepared outside the pause and
//! committed inside it without allocating.

use alloc::vec::Vec;
use core::ops::Range;

use atoll_pae::{CompiledModule, FunctionMeta};

use crate::copy::{self, BoundaryMap, CopyError};
use crate::env::{Environment, History, MoveRecord};
use crate::layout::{FuncLayout, IslandLayout, LayoutError};
use crate::patch::{self, CallPatch, PatchError};
use crate::profile::{Dependencies, Profile};

/// Index of an island in its [`IslandSet`] (stable for the set's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IslandId(pub u32);

/// Index of a module in its [`IslandSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleId(pub u32);

/// How a module's functions are grouped into islands.
#[derive(Debug, Clone, Copy)]
pub enum Grouping<'a> {
    /// One island per function (the default).
    PerFunction,
    /// One island holding every function of the module.
    WholeModule,
    /// These ranges of function indices form one island each (each range's functions are
    /// contiguous in the code); every other function is an island of its own.
    Groups(&'a [Range<u32>]),
}

/// Why a module or a move was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IslandError {
    /// The code does not have the shape the stack walk needs.
    Layout(LayoutError),
    /// The copy could not be encoded.
    Copy(CopyError),
    /// A call site could not be re-targeted.
    Patch(PatchError),
    /// Functions of a group are not contiguous, a group is empty or out of range, or groups
    /// overlap.
    BadGroup,
    /// The module's function code ranges are not contiguous.
    NotContiguous,
    /// The code range overlaps code already in the set.
    Overlap,
    /// No island with this id.
    NoSuchIsland,
    /// The bytes given for the island do not have its length.
    WrongLength,
    /// The set changed (another move committed) since the move was prepared.
    Stale,
}

impl From<LayoutError> for IslandError {
    fn from(e: LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<CopyError> for IslandError {
    fn from(e: CopyError) -> Self {
        Self::Copy(e)
    }
}

impl From<PatchError> for IslandError {
    fn from(e: PatchError) -> Self {
        Self::Patch(e)
    }
}

/// A contiguous run of generated code moved as one unit, with its metadata.
#[derive(Debug, Clone)]
pub struct Island {
    /// Its id.
    pub id: IslandId,
    /// The module it belongs to.
    pub module: ModuleId,
    /// Functions, call sites and frame windows at its current address.
    pub layout: IslandLayout,
    /// Where it runs now (`env.address` is its first byte).
    pub env: Environment,
    /// Calls, blocks, sampled cycles and rates.
    pub profile: Profile,
    /// Islands it calls and is called by, libcalls and imports it uses.
    pub deps: Dependencies,
    /// Its last moves.
    pub history: History,
    /// Its module was dropped (its chunk evicted from the cache), or it was merged into another
    /// island (its id may then be reused by a split): the island has no code, no span, and
    /// [`IslandSet::island`] no longer returns it.
    pub retired: bool,
}

impl Island {
    /// Address of its first byte.
    pub fn base(&self) -> u64 {
        self.env.address
    }

    /// Its current code range.
    pub fn range(&self) -> Range<u64> {
        self.base()..self.base() + u64::from(self.layout.len)
    }

    /// Function indices it holds.
    pub fn func_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.layout.funcs.iter().map(|f| f.index)
    }
}

/// A module's code as the set knows it.
#[derive(Debug, Clone)]
pub(crate) struct ModuleEntry {
    pub base: u64,
    pub len: u32,
    /// Island of each function, by function index.
    pub func_island: Vec<IslandId>,
}

/// What a span of code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// An island.
    Island(IslandId),
    /// A module's code that never moves: the entry trampoline (before the first function) or
    /// the trap stubs (after the last).
    Anchor(ModuleId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
    kind: SpanKind,
}

/// What lies at a code address.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// An island function; `offset` is island-relative.
    Island {
        /// The island.
        island: &'a Island,
        /// The function.
        func: &'a FuncLayout,
        /// Island offset of the address.
        offset: u32,
    },
    /// A module's trampoline or trap stubs.
    Anchor(ModuleId),
    /// Not generated code known to the set (kernel code, a host function, a libcall).
    Foreign,
}

/// Every island of every registered module, with a sorted address index.
#[derive(Debug, Clone, Default)]
pub struct IslandSet {
    pub(crate) modules: Vec<ModuleEntry>,
    pub(crate) islands: Vec<Island>,
    spans: Vec<Span>,
    generation: u64,
}

impl IslandSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `module`, whose code is mapped at `base`, split into islands by `grouping`.
    pub fn add_module(
        &mut self,
        module: &CompiledModule,
        base: u64,
        grouping: Grouping<'_>,
    ) -> Result<ModuleId, IslandError> {
        let metas = &module.funcs;
        let nfuncs = metas.len() as u32;
        for w in metas.windows(2) {
            if w[0].code_range.end != w[1].code_range.start {
                return Err(IslandError::NotContiguous);
            }
        }
        let groups = group_ranges(nfuncs, grouping)?;
        let id = ModuleId(self.modules.len() as u32);
        let len = module.code.len() as u32;
        let mut spans = Vec::new();
        let mut islands = Vec::new();
        let mut func_island = alloc::vec![IslandId(0); metas.len()];
        for g in groups {
            let members: Vec<&FunctionMeta> =
                metas[g.start as usize..g.end as usize].iter().collect();
            let start = members[0].code_range.start;
            let end = members[members.len() - 1].code_range.end;
            let at = base + u64::from(start);
            let code = &module.code[start as usize..end as usize];
            let layout = IslandLayout::build(code, at, start, &members)?;
            let iid = IslandId((self.islands.len() + islands.len()) as u32);
            for f in g.clone() {
                func_island[f as usize] = iid;
            }
            spans.push(Span {
                start: at,
                end: at + u64::from(end - start),
                kind: SpanKind::Island(iid),
            });
            islands.push(Island {
                id: iid,
                module: id,
                layout,
                env: Environment::at(at),
                profile: Profile::default(),
                deps: Dependencies::default(),
                history: History::default(),
                retired: false,
            });
        }
        let (funcs_start, funcs_end) = match (metas.first(), metas.last()) {
            (Some(f), Some(l)) => (f.code_range.start, l.code_range.end),
            _ => (len, len),
        };
        for r in [0..funcs_start, funcs_end..len] {
            if !r.is_empty() {
                spans.push(Span {
                    start: base + u64::from(r.start),
                    end: base + u64::from(r.end),
                    kind: SpanKind::Anchor(id),
                });
            }
        }
        for s in &spans {
            if self.overlaps(s.start..s.end, None) {
                return Err(IslandError::Overlap);
            }
        }
        self.modules.push(ModuleEntry {
            base,
            len,
            func_island,
        });
        self.islands.extend(islands);
        self.spans.extend(spans);
        self.spans.sort_unstable_by_key(|s| s.start);
        self.generation += 1;
        self.rebuild_dependencies(id);
        Ok(id)
    }

    fn overlaps(&self, r: Range<u64>, except: Option<IslandId>) -> bool {
        self.spans.iter().any(|s| {
            s.start < r.end && r.start < s.end && Some(s.kind) != except.map(SpanKind::Island)
        })
    }

    /// The island with this id (`None` once retired).
    pub fn island(&self, id: IslandId) -> Option<&Island> {
        self.islands.get(id.0 as usize).filter(|i| !i.retired)
    }

    /// Every island, retired ones included (check [`Island::retired`]; ids are indices).
    pub fn islands(&self) -> &[Island] {
        &self.islands
    }

    /// Every island that is not retired.
    pub fn live_islands(&self) -> impl Iterator<Item = &Island> {
        self.islands.iter().filter(|i| !i.retired)
    }

    /// Drops `module` from the set: its islands are retired (layout freed, no longer located,
    /// moved or patched) and its anchors forgotten. Returns each retired island's id and its
    /// last code range (base, length), so the caller can free copies that live outside the
    /// module's pages. Nothing of other modules changes: islands of one module never call
    /// another's directly (imports go through their import entries).
    pub fn retire_module(&mut self, module: ModuleId) -> Vec<(IslandId, u64, u32)> {
        let mut gone = Vec::new();
        for island in self
            .islands
            .iter_mut()
            .filter(|i| i.module == module && !i.retired)
        {
            gone.push((island.id, island.base(), island.layout.len));
            island.retired = true;
            island.layout = IslandLayout::default();
            island.deps = Dependencies::default();
            island.history = History::default();
        }
        self.spans.retain(|s| match s.kind {
            SpanKind::Anchor(m) => m != module,
            SpanKind::Island(id) => !gone.iter().any(|g| g.0 == id),
        });
        if let Some(m) = self.modules.get_mut(module.0 as usize) {
            m.func_island.clear();
            m.len = 0;
        }
        self.generation += 1;
        gone
    }

    /// The island holding function `func` of `module`.
    pub fn island_of(&self, module: ModuleId, func: u32) -> Option<IslandId> {
        self.modules
            .get(module.0 as usize)?
            .func_island
            .get(func as usize)
            .copied()
    }

    /// Base address and length of a module's original code (its anchors live there).
    pub fn module_code(&self, module: ModuleId) -> Option<(u64, u32)> {
        self.modules.get(module.0 as usize).map(|m| (m.base, m.len))
    }

    /// Changes on every add and every committed move.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What lies at `addr`: binary search over the sorted spans, no allocation.
    pub fn locate(&self, addr: u64) -> Location<'_> {
        let i = self.spans.partition_point(|s| s.end <= addr);
        let Some(span) = self.spans.get(i).filter(|s| s.start <= addr) else {
            return Location::Foreign;
        };
        match span.kind {
            SpanKind::Anchor(m) => Location::Anchor(m),
            SpanKind::Island(id) => {
                let island = &self.islands[id.0 as usize];
                let offset = (addr - island.base()) as u32;
                match island.layout.func_at(offset) {
                    Some(func) => Location::Island {
                        island,
                        func,
                        offset,
                    },
                    None => Location::Foreign,
                }
            }
        }
    }

    /// The island containing `addr`.
    pub fn island_at(&self, addr: u64) -> Option<IslandId> {
        match self.locate(addr) {
            Location::Island { island, .. } => Some(island.id),
            _ => None,
        }
    }

    /// The island that used to be at `addr` (a range it left in one of its remembered moves):
    /// for the fault report of a stale jump. Linear; for the fault path only.
    pub fn vacated_by(&self, addr: u64) -> Option<IslandId> {
        self.live_islands()
            .find(|i| {
                i.history
                    .iter()
                    .any(|m| addr >= m.from.address && addr - m.from.address < u64::from(m.bytes))
            })
            .map(|i| i.id)
    }

    /// Prepares moving island `id` to `to.address`: re-encodes `current_code` (its bytes as
    /// they are at its current address), translates its layout, and plans the call-site
    /// patches in other islands. Allocates: call it before the pause. The caller writes
    /// [`PreparedMove::code`] at the new address and maps it executable before stopping the
    /// world.
    pub fn prepare_move(
        &self,
        id: IslandId,
        current_code: &[u8],
        to: Environment,
    ) -> Result<PreparedMove, IslandError> {
        let island = self.island(id).ok_or(IslandError::NoSuchIsland)?;
        if current_code.len() != island.layout.len as usize {
            return Err(IslandError::WrongLength);
        }
        let relocated = copy::relocate(current_code, island.base(), to.address)?;
        let layout = island
            .layout
            .translated(&relocated.map)
            .ok_or(IslandError::Layout(LayoutError::MetadataOffBoundary {
                func: island.layout.funcs[0].index,
            }))?;
        let new_range = to.address..to.address + relocated.bytes.len() as u64;
        if self.overlaps(new_range, None) {
            return Err(IslandError::Overlap);
        }
        let calls = patch::plan_call_patches(self, id, to.address, &relocated.map)?;
        Ok(PreparedMove {
            island: id,
            generation: self.generation,
            old_base: island.base(),
            old_len: island.layout.len,
            to,
            code: relocated.bytes,
            map: relocated.map,
            layout,
            calls,
        })
    }

    /// Makes island `prep.island` live at its new address: swaps in the translated layout,
    /// sets the environment, records the move, re-sorts the address index. Allocates nothing
    /// and frees nothing (the old layout is left in `prep`; drop it after the world resumes),
    /// so it may run inside the pause, after every reference was rewritten.
    pub fn commit_move(
        &mut self,
        prep: &mut PreparedMove,
        stats: MoveStats,
    ) -> Result<(), IslandError> {
        if prep.generation != self.generation {
            return Err(IslandError::Stale);
        }
        let island = self
            .islands
            .get_mut(prep.island.0 as usize)
            .ok_or(IslandError::NoSuchIsland)?;
        core::mem::swap(&mut island.layout, &mut prep.layout);
        let from = island.env;
        island.env = prep.to;
        island.profile.note_move();
        island.history.record(MoveRecord {
            from,
            to: prep.to,
            bytes: island.layout.len,
            rips_rewritten: stats.rips_rewritten,
            return_addresses_rewritten: stats.return_addresses_rewritten,
            pause_cycles: stats.pause_cycles,
        });
        let (start, end) = (island.base(), island.range().end);
        // Only this island's span moved: take it out and put it back at its sorted place
        // (the others stay sorted; the vector keeps its capacity, so nothing is allocated).
        if let Some(i) = self
            .spans
            .iter()
            .position(|s| s.kind == SpanKind::Island(prep.island))
        {
            let mut span = self.spans.remove(i);
            span.start = start;
            span.end = end;
            let j = self.spans.partition_point(|s| s.start < start);
            self.spans.insert(j, span);
        }
        self.generation += 1;
        Ok(())
    }
}

/// What the pause needs of a prepared relocation (a move, or a merge or split): where each old
/// instruction is now, and the set generation it was prepared against.
pub trait Relocation {
    /// Where the instruction at `old_addr` is after it; binary search, never allocates.
    fn translate(&self, old_addr: u64) -> Translation;
    /// The set generation it was prepared against.
    fn generation(&self) -> u64;
}

impl Relocation for PreparedMove {
    fn translate(&self, old_addr: u64) -> Translation {
        PreparedMove::translate(self, old_addr)
    }

    fn generation(&self) -> u64 {
        PreparedMove::generation(self)
    }
}

/// Figures of a completed move, for the island's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveStats {
    /// Saved RIPs rewritten.
    pub rips_rewritten: u32,
    /// Return addresses rewritten.
    pub return_addresses_rewritten: u32,
    /// Pause length in cycles.
    pub pause_cycles: u64,
}

/// Everything a move needs inside the pause, computed before it.
#[derive(Debug, Clone)]
pub struct PreparedMove {
    /// The island being moved.
    pub island: IslandId,
    generation: u64,
    /// Its current address.
    pub old_base: u64,
    /// Its current length.
    pub old_len: u32,
    /// Its environment after the move (`to.address` is the new base).
    pub to: Environment,
    /// The re-encoded code for `to.address`.
    pub code: Vec<u8>,
    /// Old offset to new offset of every instruction.
    pub map: BoundaryMap,
    /// The island's layout at the new address (after commit: the old one).
    pub layout: IslandLayout,
    /// `call rel32` sites in other islands to re-target.
    pub calls: Vec<CallPatch>,
}

impl PreparedMove {
    /// The set generation this move was prepared against.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// New base address.
    pub fn new_base(&self) -> u64 {
        self.to.address
    }

    /// Whether `addr` lies in the island's current (old) code.
    pub fn in_old(&self, addr: u64) -> bool {
        addr >= self.old_base && addr - self.old_base < u64::from(self.old_len)
    }

    /// Where the instruction at `old_addr` is in the copy. For saved RIPs, return addresses
    /// and code pointers in tables (exports, funcref entries, import bindings), by value;
    /// binary search, never allocates.
    pub fn translate(&self, old_addr: u64) -> Translation {
        if !self.in_old(old_addr) {
            return Translation::Outside;
        }
        let off = (old_addr - self.old_base) as u32;
        match self.map.new_offset(off) {
            Some(n) => Translation::Moved(self.to.address + u64::from(n)),
            None => Translation::OffBoundary,
        }
    }
}

/// An address seen through a [`PreparedMove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// Not in the moving island: leave it.
    Outside,
    /// The same instruction in the copy.
    Moved(u64),
    /// In the island but not at an instruction start: no code pointer can be there, so the
    /// value is not a code pointer at all or the metadata is wrong; the move must not go on.
    OffBoundary,
}

fn group_ranges(nfuncs: u32, grouping: Grouping<'_>) -> Result<Vec<Range<u32>>, IslandError> {
    let mut out: Vec<Range<u32>> = match grouping {
        Grouping::PerFunction => Vec::new(),
        Grouping::WholeModule if nfuncs > 0 => alloc::vec![0..nfuncs],
        Grouping::WholeModule => Vec::new(),
        Grouping::Groups(gs) => gs.to_vec(),
    };
    out.sort_unstable_by_key(|r| r.start);
    for (i, r) in out.iter().enumerate() {
        if r.is_empty() || r.end > nfuncs || out.get(i + 1).is_some_and(|n| n.start < r.end) {
            return Err(IslandError::BadGroup);
        }
    }
    let mut covered = alloc::vec![false; nfuncs as usize];
    for r in &out {
        for f in r.clone() {
            covered[f as usize] = true;
        }
    }
    for f in 0..nfuncs {
        if !covered[f as usize] {
            out.push(f..f + 1);
        }
    }
    out.sort_unstable_by_key(|r| r.start);
    Ok(out)
}

mod lazy;
pub mod reshape;
#[cfg(test)]
mod tests;
