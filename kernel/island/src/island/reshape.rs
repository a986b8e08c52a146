//! Merging and splitting islands through the same live relocation as a move.
//!
//! A *merge* copies two islands of one module into one new contiguous place (the first one's
//! functions, then the second's) and makes them one island; a *split* copies one island's
//! functions before a function boundary to one new place and the rest to another, and makes
//! the second part an island of its own. Either way the code is re-encoded by the same block
//! encoder as a move, with every source instruction keeping its old address as its identity,
//! so a branch or call from one part to another is re-targeted to where that instruction lands
//! (`iced`'s block encoder resolves targets across every block it encodes), and branches that
//! leave every part keep their absolute target.
//!
//! A [`PreparedReshape`] is, for the pause, a move of several old ranges ([`Part`]s) at once:
//! [`Relocation::translate`] maps an old address in any part to the same instruction in its new
//! place, so the stack walk, the call-site patches and the code-pointer rewrite are those of a
//! move. [`IslandSet::commit_reshape`] allocates nothing: the island a split creates is reserved
//! (an island a merge retired in the module, or a new retired placeholder, and an address-index
//! slot) when the split is prepared.

use alloc::vec::Vec;

use atoll_pae::CallTarget;
use iced_x86::{BlockEncoder, BlockEncoderOptions, Decoder, DecoderOptions, InstructionBlock};

use super::{Island, IslandError, IslandId, IslandSet, Relocation, Span, SpanKind, Translation};
use crate::copy::{BoundaryMap, CopyError};
use crate::env::{Environment, History, MoveRecord};
use crate::island::MoveStats;
use crate::layout::{CallLayout, FuncLayout, IslandLayout, LayoutError};
use crate::patch::{self, CALL_REL32_LEN, CallPatch, PatchError};
use crate::profile::{Dependencies, Profile};

/// One old range of code and where its instructions go.
#[derive(Debug, Clone)]
pub struct Part {
    /// The island it belongs to now.
    pub island: IslandId,
    /// Its first byte now.
    pub old_base: u64,
    /// Its length now.
    pub old_len: u32,
    /// Address of its first instruction after the reshape.
    pub new_base: u64,
    /// Its old offsets to offsets from `new_base` (every instruction start and the end).
    pub map: BoundaryMap,
}

/// What a reshape makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReshapeKind {
    /// `absorbed` joins `into` (which keeps its id); `absorbed` is retired.
    Merge {
        /// The island that holds both afterwards.
        into: IslandId,
        /// The island that ceases to exist.
        absorbed: IslandId,
    },
    /// `from` keeps its functions before the split point; `new` gets the rest.
    Split {
        /// The island split.
        from: IslandId,
        /// The island made of its second part.
        new: IslandId,
    },
}

/// One new island's code, prepared.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// The island it becomes.
    pub island: IslandId,
    /// Its environment (`to.address` is its first byte).
    pub to: Environment,
    /// Its bytes, encoded for `to.address`.
    pub code: Vec<u8>,
    /// Its layout there (after commit: the island's old layout, to drop outside the pause).
    pub layout: IslandLayout,
}

/// Everything a merge or split needs inside the pause, computed before it.
#[derive(Debug, Clone)]
pub struct PreparedReshape {
    /// Merge or split, and of which islands.
    pub kind: ReshapeKind,
    generation: u64,
    /// The old ranges, each with its instructions' new place.
    pub parts: Vec<Part>,
    /// The resulting islands' code (one for a merge, two for a split: `from`'s, then `new`'s).
    pub results: Vec<NewCode>,
    /// `call rel32` sites in islands that do not move, to re-target.
    pub calls: Vec<CallPatch>,
}

impl Relocation for PreparedReshape {
    fn translate(&self, old_addr: u64) -> Translation {
        let Some(p) = self
            .parts
            .iter()
            .find(|p| old_addr >= p.old_base && old_addr - p.old_base < u64::from(p.old_len))
        else {
            return Translation::Outside;
        };
        match p.map.new_offset((old_addr - p.old_base) as u32) {
            Some(n) => Translation::Moved(p.new_base + u64::from(n)),
            None => Translation::OffBoundary,
        }
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

impl PreparedReshape {
    /// Every island whose code moves.
    pub fn sources(&self) -> impl Iterator<Item = IslandId> + '_ {
        let mut last = None;
        self.parts.iter().filter_map(move |p| {
            let new = last != Some(p.island);
            last = Some(p.island);
            new.then_some(p.island)
        })
    }
}

/// Decoded instructions of one source range, with their old offsets.
fn decode(code: &[u8], base: u64) -> Result<(Vec<iced_x86::Instruction>, Vec<u32>), CopyError> {
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let (mut ins, mut offs) = (Vec::new(), Vec::new());
    while decoder.can_decode() {
        let offset = decoder.position() as u32;
        let i = decoder.decode();
        if i.is_invalid() {
            return Err(CopyError::Undecodable { offset });
        }
        offs.push(offset);
        ins.push(i);
    }
    Ok((ins, offs))
}

/// The boundary map of old offsets `offs` (a range `old_len` long) whose instructions landed at
/// `new` (block-relative), starting at block offset `start` and ending at `end`.
fn part_map(
    offs: &[u32],
    new: &[u32],
    old_len: u32,
    start: u32,
    end: u32,
) -> Result<BoundaryMap, CopyError> {
    let mut pairs = Vec::with_capacity(offs.len() + 1);
    for (&o, &n) in offs.iter().zip(new) {
        if n == u32::MAX {
            return Err(CopyError::Rewritten { offset: o });
        }
        pairs.push((o, n - start));
    }
    pairs.push((old_len, end - start));
    Ok(BoundaryMap::from_pairs(pairs))
}

/// `layout` with every offset moved by `delta` (a part placed after another in one island).
fn shifted(layout: &IslandLayout, delta: i64) -> IslandLayout {
    let s = |o: u32| (i64::from(o) + delta) as u32;
    IslandLayout {
        funcs: layout
            .funcs
            .iter()
            .map(|f| FuncLayout {
                index: f.index,
                range: s(f.range.start)..s(f.range.end),
                mov_rbp_at: s(f.mov_rbp_at),
                rets: f.rets.iter().map(|&r| s(r)).collect(),
                calls: f
                    .calls
                    .iter()
                    .map(|c| CallLayout {
                        offset: s(c.offset),
                        return_offset: s(c.return_offset),
                        target: c.target,
                    })
                    .collect(),
                frame: f.frame,
                counter_slots: f.counter_slots.clone(),
                dispatch: f.dispatch.iter().map(|&(a, b)| (s(a), s(b))).collect(),
            })
            .collect(),
        insn_starts: layout.insn_starts.iter().map(|&o| s(o)).collect(),
        len: layout.len,
    }
}

/// The functions `funcs` of `layout` (a contiguous run `at..end` of it) as a layout of their
/// own, offsets from `at`.
fn slice(layout: &IslandLayout, funcs: core::ops::Range<usize>, at: u32, end: u32) -> IslandLayout {
    let part = IslandLayout {
        funcs: layout.funcs[funcs].to_vec(),
        insn_starts: layout
            .insn_starts
            .iter()
            .copied()
            .filter(|&o| o >= at && o < end)
            .collect(),
        len: end,
    };
    let mut out = shifted(&part, -i64::from(at));
    out.len = end - at;
    out
}

fn translated(layout: &IslandLayout, map: &BoundaryMap) -> Result<IslandLayout, IslandError> {
    layout
        .translated(map)
        .ok_or(IslandError::Layout(LayoutError::MetadataOffBoundary {
            func: layout.funcs.first().map_or(0, |f| f.index),
        }))
}

impl IslandSet {
    /// Prepares merging island `b` into island `a` (same module): `a`'s code, then `b`'s, in one
    /// new place at `to.address`. `a_code` and `b_code` are their bytes as they are now.
    pub fn prepare_merge(
        &self,
        a: IslandId,
        a_code: &[u8],
        b: IslandId,
        b_code: &[u8],
        to: Environment,
    ) -> Result<PreparedReshape, IslandError> {
        let ia = self.island(a).ok_or(IslandError::NoSuchIsland)?;
        let ib = self.island(b).ok_or(IslandError::NoSuchIsland)?;
        if a == b || ia.module != ib.module {
            return Err(IslandError::BadGroup);
        }
        if a_code.len() != ia.layout.len as usize || b_code.len() != ib.layout.len as usize {
            return Err(IslandError::WrongLength);
        }
        let (mut ins, a_offs) = decode(a_code, ia.base())?;
        let (b_ins, b_offs) = decode(b_code, ib.base())?;
        ins.extend(b_ins);
        let result = BlockEncoder::encode(
            64,
            InstructionBlock::new(&ins, to.address),
            BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .map_err(|_| CopyError::Encode)?;
        let new = &result.new_instruction_offsets;
        let total = u32::try_from(result.code_buffer.len()).map_err(|_| CopyError::TooLarge)?;
        let b_start = new.get(a_offs.len()).copied().unwrap_or(total);
        let map_a = part_map(&a_offs, &new[..a_offs.len()], ia.layout.len, 0, b_start)?;
        let map_b = part_map(&b_offs, &new[a_offs.len()..], ib.layout.len, b_start, total)?;
        let la = translated(&ia.layout, &map_a)?;
        let lb = shifted(&translated(&ib.layout, &map_b)?, i64::from(b_start));
        let mut funcs = la.funcs;
        funcs.extend(lb.funcs);
        let mut insn_starts = la.insn_starts;
        insn_starts.extend(lb.insn_starts);
        let layout = IslandLayout {
            funcs,
            insn_starts,
            len: total,
        };
        if self.overlaps(to.address..to.address + u64::from(total), None) {
            return Err(IslandError::Overlap);
        }
        let parts = alloc::vec![
            Part {
                island: a,
                old_base: ia.base(),
                old_len: ia.layout.len,
                new_base: to.address,
                map: map_a,
            },
            Part {
                island: b,
                old_base: ib.base(),
                old_len: ib.layout.len,
                new_base: to.address + u64::from(b_start),
                map: map_b,
            },
        ];
        let calls = self.plan_part_patches(&parts)?;
        Ok(PreparedReshape {
            kind: ReshapeKind::Merge {
                into: a,
                absorbed: b,
            },
            generation: self.generation,
            parts,
            results: alloc::vec![NewCode {
                island: a,
                to,
                code: result.code_buffer,
                layout,
            }],
            calls,
        })
    }

    /// Prepares splitting island `id` before its `at`-th function (`0 < at < functions`): the
    /// functions before it go to `head_to`, the rest to `tail_to` as a new island. `code` is its
    /// bytes as they are now. Reserves the new island's id (a retired placeholder until the
    /// commit; it stays one if the split does not happen) and its address-index slot.
    pub fn prepare_split(
        &mut self,
        id: IslandId,
        code: &[u8],
        at: usize,
        head_to: Environment,
        tail_to: Environment,
    ) -> Result<PreparedReshape, IslandError> {
        let island = self.island(id).ok_or(IslandError::NoSuchIsland)?;
        if at == 0 || at >= island.layout.funcs.len() {
            return Err(IslandError::BadGroup);
        }
        if code.len() != island.layout.len as usize {
            return Err(IslandError::WrongLength);
        }
        let s = island.layout.funcs[at].range.start;
        let len = island.layout.len;
        let (ins, offs) = decode(code, island.base())?;
        let k = offs.partition_point(|&o| o < s);
        let blocks = [
            InstructionBlock::new(&ins[..k], head_to.address),
            InstructionBlock::new(&ins[k..], tail_to.address),
        ];
        let results = BlockEncoder::encode_slice(
            64,
            &blocks,
            BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .map_err(|_| CopyError::Encode)?;
        // The encoder returns the blocks in address order, not in the order given.
        let at_rip = |rip: u64| results.iter().find(|r| r.rip == rip);
        let (Some(head), Some(tail)) = (at_rip(head_to.address), at_rip(tail_to.address)) else {
            return Err(IslandError::Copy(CopyError::Encode));
        };
        let head_len = u32::try_from(head.code_buffer.len()).map_err(|_| CopyError::TooLarge)?;
        let tail_len = u32::try_from(tail.code_buffer.len()).map_err(|_| CopyError::TooLarge)?;
        let map_head = part_map(&offs[..k], &head.new_instruction_offsets, s, 0, head_len)?;
        let tail_offs: Vec<u32> = offs[k..].iter().map(|&o| o - s).collect();
        let map_tail = part_map(
            &tail_offs,
            &tail.new_instruction_offsets,
            len - s,
            0,
            tail_len,
        )?;
        let nf = island.layout.funcs.len();
        let lh = translated(&slice(&island.layout, 0..at, 0, s), &map_head)?;
        let lt = translated(&slice(&island.layout, at..nf, s, len), &map_tail)?;
        for (to, n) in [(head_to, head_len), (tail_to, tail_len)] {
            if self.overlaps(to.address..to.address + u64::from(n), None) {
                return Err(IslandError::Overlap);
            }
        }
        let (a, b) = (head_to.address, tail_to.address);
        if a < b + u64::from(tail_len) && b < a + u64::from(head_len) {
            return Err(IslandError::Overlap);
        }
        let base = island.base();
        let module = island.module;
        let (head_code, tail_code) = (head.code_buffer.clone(), tail.code_buffer.clone());
        let parts = alloc::vec![
            Part {
                island: id,
                old_base: base,
                old_len: s,
                new_base: head_to.address,
                map: map_head,
            },
            Part {
                island: id,
                old_base: base + u64::from(s),
                old_len: len - s,
                new_base: tail_to.address,
                map: map_tail,
            },
        ];
        let calls = self.plan_part_patches(&parts)?;
        // The new island's id: one a merge retired in this module (nothing maps to it any
        // more), else a new one, so repeated merges and splits do not grow the set.
        let mapped = |id: IslandId| self.modules[module.0 as usize].func_island.contains(&id);
        let reusable = self
            .islands
            .iter()
            .find(|i| i.retired && i.module == module && !mapped(i.id))
            .map(|i| i.id);
        let new = match reusable {
            Some(id) => id,
            None => {
                let id = IslandId(self.islands.len() as u32);
                self.islands.push(Island {
                    id,
                    module,
                    layout: IslandLayout::default(),
                    env: tail_to,
                    profile: Profile::default(),
                    deps: Dependencies::default(),
                    history: History::default(),
                    retired: true,
                });
                id
            }
        };
        self.spans.reserve(1);
        Ok(PreparedReshape {
            kind: ReshapeKind::Split { from: id, new },
            generation: self.generation,
            parts,
            results: alloc::vec![
                NewCode {
                    island: id,
                    to: head_to,
                    code: head_code,
                    layout: lh,
                },
                NewCode {
                    island: new,
                    to: tail_to,
                    code: tail_code,
                    layout: lt,
                },
            ],
            calls,
        })
    }

    /// Every direct call from an island that does not move into a function of one that does,
    /// with the displacement that reaches that function's new place.
    fn plan_part_patches(&self, parts: &[Part]) -> Result<Vec<CallPatch>, PatchError> {
        let Some(first) = parts.first().and_then(|p| self.island(p.island)) else {
            return Ok(Vec::new());
        };
        let module = &self.modules[first.module.0 as usize];
        let moving = |id: IslandId| parts.iter().any(|p| p.island == id);
        let reshape = PreparedReshape {
            kind: ReshapeKind::Merge {
                into: first.id,
                absorbed: first.id,
            },
            generation: self.generation,
            parts: parts.to_vec(),
            results: Vec::new(),
            calls: Vec::new(),
        };
        let mut out = Vec::new();
        for caller in self.live_islands() {
            if moving(caller.id) || caller.module != first.module {
                continue;
            }
            for f in &caller.layout.funcs {
                for c in &f.calls {
                    let CallTarget::Func(j) = c.target else {
                        continue;
                    };
                    let Some(&callee_island) = module.func_island.get(j as usize) else {
                        continue;
                    };
                    if !moving(callee_island) {
                        continue;
                    }
                    let call_addr = caller.base() + u64::from(c.offset);
                    if c.return_offset - c.offset != CALL_REL32_LEN {
                        return Err(PatchError::NotRel32Call { call_addr });
                    }
                    let callee = &self.islands[callee_island.0 as usize];
                    let start = callee
                        .layout
                        .funcs
                        .iter()
                        .find(|g| g.index == j)
                        .ok_or(PatchError::OffBoundary { addr: call_addr })?
                        .range
                        .start;
                    let old_target = callee.base() + u64::from(start);
                    let Translation::Moved(new_target) = reshape.translate(old_target) else {
                        return Err(PatchError::OffBoundary { addr: old_target });
                    };
                    out.push(CallPatch {
                        caller: caller.id,
                        call_addr,
                        disp_addr: call_addr + 1,
                        old_rel32: patch::rel32(call_addr, old_target)?,
                        new_rel32: patch::rel32(call_addr, new_target)?,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Makes the reshaped islands live: swaps in their layouts and environments, moves their
    /// functions' island of record, merges or divides their profiles, records the move in
    /// their histories and re-places their address-index spans. Allocates nothing and frees
    /// nothing (old layouts are left in `prep.results`), so it may run inside the pause.
    /// Dependencies are stale until [`IslandSet::refresh_dependencies`] (outside the pause).
    pub fn commit_reshape(
        &mut self,
        prep: &mut PreparedReshape,
        stats: MoveStats,
    ) -> Result<(), IslandError> {
        if prep.generation != self.generation {
            return Err(IslandError::Stale);
        }
        match prep.kind {
            ReshapeKind::Merge { into, absorbed } => {
                let r = prep.results.first_mut().ok_or(IslandError::NoSuchIsland)?;
                // The absorbed island keeps its old layout (freeing it here is not allowed; its
                // span goes, so nothing locates it) and its history (the merged island's
                // records its old range too, for the fault report).
                let b = &mut self.islands[absorbed.0 as usize];
                let (b_env, b_len, b_profile) = (b.env, b.layout.len, b.profile);
                b.retired = true;
                let a = &mut self.islands[into.0 as usize];
                let a_env = a.env;
                // `r.layout` gets the merged island's old layout, dropped with `prep`.
                core::mem::swap(&mut a.layout, &mut r.layout);
                a.env = r.to;
                a.profile.absorb(&b_profile);
                a.profile.note_move();
                for (from, bytes) in [(a_env, r.layout.len), (b_env, b_len)] {
                    a.history.record(MoveRecord {
                        from,
                        to: r.to,
                        bytes,
                        rips_rewritten: stats.rips_rewritten,
                        return_addresses_rewritten: stats.return_addresses_rewritten,
                        pause_cycles: stats.pause_cycles,
                    });
                }
                let module = self.islands[into.0 as usize].module;
                for f in self.modules[module.0 as usize].func_island.iter_mut() {
                    if *f == absorbed {
                        *f = into;
                    }
                }
                if let Some(i) = self
                    .spans
                    .iter()
                    .position(|s| s.kind == SpanKind::Island(absorbed))
                {
                    self.spans.remove(i);
                }
                self.replace_span(into);
            }
            ReshapeKind::Split { from, new } => {
                let [head, tail] = &mut prep.results[..] else {
                    return Err(IslandError::NoSuchIsland);
                };
                let f = &mut self.islands[from.0 as usize];
                let from_env = f.env;
                core::mem::swap(&mut f.layout, &mut head.layout);
                f.env = head.to;
                f.profile.note_move();
                let tail_profile = f.profile.split_off();
                f.history.record(MoveRecord {
                    from: from_env,
                    to: head.to,
                    bytes: f.layout.len,
                    rips_rewritten: stats.rips_rewritten,
                    return_addresses_rewritten: stats.return_addresses_rewritten,
                    pause_cycles: stats.pause_cycles,
                });
                let history = f.history.clone();
                let module = f.module;
                let n = &mut self.islands[new.0 as usize];
                core::mem::swap(&mut n.layout, &mut tail.layout);
                n.env = tail.to;
                n.profile = tail_profile;
                n.history = history;
                n.retired = false;
                for func in &n.layout.funcs {
                    if let Some(slot) = self.modules[module.0 as usize]
                        .func_island
                        .get_mut(func.index as usize)
                    {
                        *slot = new;
                    }
                }
                let (start, end) = (tail.to.address, tail.to.address + u64::from(n.layout.len));
                self.replace_span(from);
                // The slot was reserved when the split was prepared.
                let j = self.spans.partition_point(|s| s.start < start);
                self.spans.insert(
                    j,
                    Span {
                        start,
                        end,
                        kind: SpanKind::Island(new),
                    },
                );
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// Takes island `id`'s span out of the sorted index and puts it back where its range is now.
    fn replace_span(&mut self, id: IslandId) {
        let range = self.islands[id.0 as usize].range();
        let (start, end) = (range.start, range.end);
        if let Some(i) = self
            .spans
            .iter()
            .position(|s| s.kind == SpanKind::Island(id))
        {
            let mut span = self.spans.remove(i);
            span.start = start;
            span.end = end;
            let j = self.spans.partition_point(|s| s.start < start);
            self.spans.insert(j, span);
        }
    }

    /// Starts island `id`'s rate window over from its figures now (after a split, once the
    /// counters gave each part its calls).
    pub fn restart_window(&mut self, id: IslandId) {
        if let Some(i) = self.islands.get_mut(id.0 as usize) {
            i.profile.restart_window();
        }
    }

    /// Recomputes `module`'s dependencies (after a reshape; allocates).
    pub fn refresh_dependencies(&mut self, module: super::ModuleId) {
        self.rebuild_dependencies(module);
    }
}

#[cfg(test)]
mod tests;
