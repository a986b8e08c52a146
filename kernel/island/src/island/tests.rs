//! Islands from real modules: lookup, grouping, layout checks, patch plans, profiles, commits.

use std::vec::Vec;

use atoll_pae::{CallSite, CallTarget, FrameLayout, FunctionMeta, Libcall, Options};

use super::*;
use crate::env::PageSize;
use crate::layout::{IslandLayout, LayoutError};
use crate::patch::{self, PatchError};
use crate::testutil::{FIB, LOOP, compile, compile_with, decode};

const BASE: u64 = 0x4000_0000;
const NEW: u64 = 0x5000_0000;

fn set_of(m: &CompiledModule, grouping: Grouping<'_>) -> (IslandSet, ModuleId) {
    let mut set = IslandSet::new();
    let id = set.add_module(m, BASE, grouping).unwrap();
    (set, id)
}

#[test]
fn every_address_is_located_exactly() {
    let m = compile(LOOP);
    let fib = compile(FIB);
    let (mut set, module) = set_of(&m, Grouping::PerFunction);
    let other = set
        .add_module(&fib, BASE + 0x10_0000, Grouping::PerFunction)
        .unwrap();
    for (mm, id, base) in [(&m, module, BASE), (&fib, other, BASE + 0x10_0000)] {
        for off in 0..mm.code.len() as u32 {
            let addr = base + u64::from(off);
            let owner = mm.funcs.iter().find(|f| f.code_range.contains(&off));
            match (set.locate(addr), owner) {
                (
                    Location::Island {
                        island,
                        func,
                        offset,
                    },
                    Some(f),
                ) => {
                    assert_eq!((island.module, func.index), (id, f.index));
                    assert_eq!(island.base() + u64::from(offset), addr);
                }
                (Location::Anchor(a), None) => assert_eq!(a, id),
                (l, o) => panic!("{addr:#x}: {l:?} vs {o:?}"),
            }
        }
        assert!(matches!(set.locate(base - 1), Location::Foreign));
    }
    assert!(matches!(
        set.locate(BASE + m.code.len() as u64),
        Location::Foreign
    ));
    assert!(matches!(set.locate(0), Location::Foreign));
    assert!(matches!(set.locate(u64::MAX), Location::Foreign));
}

#[test]
#[allow(clippy::single_range_in_vec_init)] // groups are slices of ranges
fn groupings() {
    let m = compile(LOOP);
    let (whole, _) = set_of(&m, Grouping::WholeModule);
    assert_eq!(whole.islands().len(), 1);
    assert_eq!(
        whole.islands()[0].func_indices().collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let start = m.funcs[0].code_range.start;
    assert_eq!(
        whole.islands()[0].range(),
        BASE + u64::from(start)..BASE + u64::from(m.funcs[3].code_range.end)
    );
    let (groups, module) = set_of(&m, Grouping::Groups(&[1..3]));
    let members: Vec<Vec<u32>> = groups
        .islands()
        .iter()
        .map(|i| i.func_indices().collect())
        .collect();
    assert_eq!(members, [vec![0], vec![1, 2], vec![3]]);
    assert_eq!(groups.island_of(module, 2), groups.island_of(module, 1));
    let mut set = IslandSet::new();
    for bad in [&[1..3, 2..4][..], &[2..2], &[3..9]] {
        assert_eq!(
            set.add_module(&m, BASE, Grouping::Groups(bad)),
            Err(IslandError::BadGroup)
        );
    }
    set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    assert_eq!(
        set.add_module(&m, BASE + 8, Grouping::PerFunction),
        Err(IslandError::Overlap)
    );
}

fn meta(len: u32, calls: Vec<CallSite>) -> FunctionMeta {
    FunctionMeta {
        code_range: 0..len,
        call_sites: calls,
        frame: FrameLayout::default(),
        ..FunctionMeta::default()
    }
}

#[test]
fn layout_refuses_frames_the_walk_cannot_read() {
    let build = |code: &[u8], calls: Vec<CallSite>| {
        IslandLayout::build(code, 0x1000, 0, &[&meta(code.len() as u32, calls)])
    };
    // push rbp; mov rbp, rsp; leave; ret
    let good = [0x55, 0x48, 0x89, 0xe5, 0xc9, 0xc3];
    let l = build(&good, Vec::new()).unwrap();
    assert_eq!(
        (l.funcs[0].mov_rbp_at, l.funcs[0].rets.clone()),
        (1, vec![5])
    );
    // No prologue.
    assert_eq!(
        build(&[0x48, 0x89, 0xe5, 0xc9, 0xc3], Vec::new()),
        Err(LayoutError::NoFramePrologue { func: 0 })
    );
    // pop rbp; ret (a window the walk does not know).
    assert_eq!(
        build(&[0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3], Vec::new()),
        Err(LayoutError::UnexpectedFrameCode { func: 0, offset: 4 })
    );
    // ret without leave; leave without ret; rbp used as a register.
    assert!(build(&[0x55, 0x48, 0x89, 0xe5, 0xc3], Vec::new()).is_err());
    assert!(build(&[0x55, 0x48, 0x89, 0xe5, 0xc9, 0x90, 0xc3], Vec::new()).is_err());
    assert!(
        build(
            &[0x55, 0x48, 0x89, 0xe5, 0x31, 0xed, 0xc9, 0xc3],
            Vec::new()
        )
        .is_err()
    );
    // A call site off an instruction boundary.
    let off = CallSite {
        offset: 2,
        return_offset: 4,
        target: CallTarget::Func(0),
    };
    assert_eq!(
        build(&good, vec![off]),
        Err(LayoutError::MetadataOffBoundary { func: 0 })
    );
}

#[test]
fn call_patches_reach_the_moved_callee_and_table_entries_follow() {
    let m = compile(LOOP);
    let (set, module) = set_of(&m, Grouping::PerFunction);
    let helper = set.island_of(module, 1).unwrap();
    let hr = set.island(helper).unwrap().range();
    let code = &m.code[(hr.start - BASE) as usize..(hr.end - BASE) as usize];
    let prep = set
        .prepare_move(helper, code, Environment::at(NEW))
        .unwrap();
    // twice calls helper twice, main once; helper's own calls are not patches.
    let mut callers: Vec<IslandId> = prep.calls.iter().map(|p| p.caller).collect();
    callers.sort();
    let (twice, main) = (
        set.island_of(module, 2).unwrap(),
        set.island_of(module, 3).unwrap(),
    );
    assert_eq!(callers, [twice, twice, main]);
    let mut patched = m.code.clone();
    for p in &prep.calls {
        let at = (p.disp_addr - BASE) as usize;
        let now = i32::from_le_bytes(patched[at..at + 4].try_into().unwrap());
        assert_eq!(now, p.old_rel32, "the plan knows what is there");
        patched[at..at + 4].copy_from_slice(&p.new_rel32.to_le_bytes());
    }
    for p in &prep.calls {
        let ins = decode(&patched[(p.call_addr - BASE) as usize..][..5], p.call_addr)[0];
        assert_eq!(
            ins.near_branch_target(),
            NEW,
            "the call reaches the copy of helper"
        );
        let before = decode(&m.code[(p.call_addr - BASE) as usize..][..5], p.call_addr)[0];
        assert_eq!(before.near_branch_target(), hr.start);
    }
    // Nothing else changed.
    let diff = m.code.iter().zip(&patched).filter(|(a, b)| a != b).count();
    assert!(diff <= 4 * prep.calls.len());
    // Code pointers by value: only those into helper change; a mid-instruction one refuses
    // the whole table.
    let mut table = [hr.start, BASE + u64::from(m.funcs[3].code_range.start), 0];
    assert_eq!(patch::retarget_code_pointers(&mut table, &prep), Ok(1));
    assert_eq!(table[0], NEW);
    let mut bad = [hr.start, hr.start + 2];
    assert_eq!(
        patch::retarget_code_pointers(&mut bad, &prep),
        Err(PatchError::OffBoundary { addr: hr.start + 2 })
    );
    assert_eq!(bad[0], hr.start, "unchanged when refused");
}

#[test]
fn commit_moves_the_island_and_remembers_where_it_was() {
    let m = compile(FIB);
    let (mut set, module) = set_of(&m, Grouping::PerFunction);
    let id = set.island_of(module, 0).unwrap();
    let old = set.island(id).unwrap().range();
    let code = m.code[(old.start - BASE) as usize..(old.end - BASE) as usize].to_vec();
    let to = Environment {
        core: Some(2),
        page_size: PageSize::Size2M,
        address: NEW,
        numa_node: Some(1),
    };
    let mut prep = set.prepare_move(id, &code, to).unwrap();
    assert_eq!(
        set.prepare_move(id, &code[1..], to).err(),
        Some(IslandError::WrongLength)
    );
    let overlapping = Environment::at(old.start + 4);
    assert_eq!(
        set.prepare_move(id, &code, overlapping).err(),
        Some(IslandError::Overlap)
    );
    let stats = MoveStats {
        rips_rewritten: 1,
        return_addresses_rewritten: 7,
        pause_cycles: 1234,
    };
    set.commit_move(&mut prep, stats).unwrap();
    let island = set.island(id).unwrap();
    assert_eq!(island.env, to);
    assert_eq!(island.range(), NEW..NEW + prep.code.len() as u64);
    assert!(matches!(set.locate(old.start), Location::Foreign));
    assert_eq!(set.island_at(NEW + 1).or(set.island_at(NEW)), Some(id));
    assert_eq!(set.vacated_by(old.start + 3), Some(id));
    assert_eq!(set.vacated_by(NEW), None);
    let h: Vec<_> = island.history.iter().collect();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (
            h[0].from.address,
            h[0].to.address,
            h[0].return_addresses_rewritten
        ),
        (old.start, NEW, 7)
    );
    // The layout now describes the copy: its prologue is where the copy has it.
    let f = &island.layout.funcs[0];
    let ins = decode(&prep.code, NEW);
    assert!(ins.iter().any(|i| i.ip() == NEW + u64::from(f.mov_rbp_at)));
    assert_eq!(
        prep.layout.len,
        old.end as u32 - old.start as u32,
        "old layout left to drop"
    );
}

#[test]
fn profile_counts_samples_rates_priority_and_dependencies() {
    let options = Options {
        block_counters: true,
        ..Options::default()
    };
    let m = compile_with(LOOP, &options);
    let (mut set, module) = set_of(&m, Grouping::PerFunction);
    let isl = |f| set.island_of(module, f).unwrap();
    let (thunk, helper, twice, main) = (isl(0), isl(1), isl(2), isl(3));
    // Dependencies from call sites.
    let d = &set.island(main).unwrap().deps;
    assert_eq!(d.calls, [thunk, helper]);
    assert!(
        d.indirect_calls
            && d.uses_libcall(Libcall::F64Ceil)
            && !d.uses_libcall(Libcall::MemoryGrow)
    );
    assert_eq!(set.island(helper).unwrap().deps.called_by, [twice, main]);
    assert_eq!(set.island(thunk).unwrap().deps.imports, [0]);
    assert_eq!(set.island(thunk).unwrap().deps.called_by, [main]);
    // Counters: each function's first slot counts its calls.
    let mut counters = vec![0u64; m.counter_slots.len()];
    for (i, c) in counters.iter_mut().enumerate() {
        *c = 10 + i as u64;
    }
    let helper_slots = m.funcs[1].counter_slots.clone();
    assert!(!helper_slots.is_empty());
    set.feed_counters(module, &counters);
    let p = set.island(helper).unwrap().profile;
    assert_eq!(p.calls, counters[helper_slots.start as usize]);
    assert_eq!(
        p.block_count,
        helper_slots.map(|s| counters[s as usize]).sum::<u64>()
    );
    // Samples: attributed by address.
    let in_helper = set.island(helper).unwrap().base() + 4;
    let in_main = set.island(main).unwrap().base() + 4;
    assert_eq!(set.record_sample(in_helper, 1000), Some(helper));
    assert_eq!(set.record_sample(in_helper, 500), Some(helper));
    assert_eq!(set.record_sample(in_main, 100), Some(main));
    assert_eq!(
        set.record_sample(BASE, 7),
        None,
        "the trampoline is no island"
    );
    set.close_window(2_000, 1_000); // two seconds
    let p = set.island(helper).unwrap().profile;
    assert_eq!(
        (p.sampled_cycles, p.samples, p.cycles_per_second),
        (1500, 2, 750)
    );
    assert_eq!(p.calls_per_second, p.calls / 2);
    assert_eq!(p.cycles_per_call(), Some(1500 / p.calls));
    assert_eq!(set.by_priority()[..2], [helper, main]);
    // A move damps the priority in the next window.
    let r = set.island(helper).unwrap().range();
    let code = m.code[(r.start - BASE) as usize..(r.end - BASE) as usize].to_vec();
    let mut prep = set
        .prepare_move(helper, &code, Environment::at(NEW))
        .unwrap();
    set.commit_move(&mut prep, MoveStats::default()).unwrap();
    set.record_sample(NEW + 4, 1500);
    set.record_sample(in_main, 1000);
    set.close_window(1_000, 1_000);
    let (ph, pm) = (
        set.island(helper).unwrap().profile,
        set.island(main).unwrap().profile,
    );
    assert_eq!(
        (ph.cycles_per_second, ph.moves_last_window, ph.priority()),
        (1500, 1, 750)
    );
    assert_eq!(pm.priority(), 1000);
    assert_eq!(set.by_priority()[..2], [main, helper]);
}

#[test]
fn thunk_call_sites_say_which_path_calls_generated_code() {
    // The wasm path switches `r14` to the callee instance's context right before its call; the
    // host path passes the context in `rdi`. The metadata must label them accordingly, or the
    // walk would take a host function's frame for a generated one.
    let m = compile(LOOP);
    let thunk = &m.funcs[0];
    let r = &thunk.code_range;
    let ins = decode(
        &m.code[r.start as usize..r.end as usize],
        u64::from(r.start),
    );
    // Whether an instruction of the call's basic block, before the call, writes `r14` (the
    // scheduler may have moved the switch a few instructions up inside the block).
    let switches_vmctx = |c: &CallSite| {
        let at = ins
            .iter()
            .position(|i| i.ip() == u64::from(c.offset))
            .unwrap();
        ins[..at]
            .iter()
            .rev()
            .take_while(|i| i.flow_control() == iced_x86::FlowControl::Next)
            .any(|i| i.op0_register() == iced_x86::Register::R14)
    };
    let targets: Vec<CallTarget> = thunk.call_sites.iter().map(|c| c.target).collect();
    assert_eq!(targets, [CallTarget::Import(0), CallTarget::ImportWasm(0)]);
    for c in &thunk.call_sites {
        assert_eq!(
            switches_vmctx(c),
            c.target == CallTarget::ImportWasm(0),
            "{c:?}"
        );
    }
}

/// Moves keep the address index sorted (each commit re-places only the moved island's span):
/// after islands hop below, between and above each other, every island's first and last byte
/// locate to it, the module's old range to nothing, and the spans are in address order.
#[test]
fn the_index_stays_sorted_as_islands_hop_around() {
    let m = compile(LOOP);
    let (mut set, _) = set_of(&m, Grouping::PerFunction);
    let ids: Vec<IslandId> = set.islands().iter().map(|i| i.id).collect();
    assert!(ids.len() >= 2, "LOOP has several functions");
    let module_end = BASE + m.code.len() as u64;
    // Each island's current code, to move it again.
    let mut code: Vec<Vec<u8>> = ids
        .iter()
        .map(|&id| {
            let r = set.island(id).unwrap().range();
            m.code[(r.start - BASE) as usize..(r.end - BASE) as usize].to_vec()
        })
        .collect();
    let places = [
        BASE - 0x10_0000,
        module_end + 0x1000,
        NEW,
        BASE - 0x20_0000,
        NEW + 0x10_0000,
    ];
    for (n, place) in places.iter().enumerate() {
        // Alternate the order so islands overtake each other.
        let order: Vec<usize> = if n % 2 == 0 {
            (0..ids.len()).collect()
        } else {
            (0..ids.len()).rev().collect()
        };
        for k in order {
            let to = Environment::at(place + k as u64 * 0x1000);
            let mut prep = set.prepare_move(ids[k], &code[k], to).unwrap();
            set.commit_move(&mut prep, MoveStats::default()).unwrap();
            code[k] = prep.code.clone();
        }
        assert!(
            set.spans.windows(2).all(|w| w[0].start <= w[1].start),
            "spans sorted after round {n}"
        );
        for island in set.islands() {
            let r = island.range();
            assert_eq!(r.start, place + u64::from(island.id.0) * 0x1000);
            assert_eq!(set.island_at(r.start), Some(island.id));
            assert_eq!(set.island_at(r.end - 1), Some(island.id));
        }
    }
}

#[test]
fn a_retired_module_is_gone_and_its_range_can_be_reused() {
    let m = compile(LOOP);
    let fib = compile(FIB);
    let (mut set, module) = set_of(&m, Grouping::PerFunction);
    let other = set
        .add_module(&fib, BASE + 0x10_0000, Grouping::PerFunction)
        .unwrap();
    let before = set.generation();
    let gone = set.retire_module(module);
    assert_eq!(gone.len(), m.funcs.len());
    assert!(set.generation() > before);
    for (id, base, len) in &gone {
        assert!(set.island(*id).is_none());
        assert!(set.islands()[id.0 as usize].retired);
        assert!(*len > 0);
        assert!(matches!(set.locate(*base), Location::Foreign));
    }
    for off in 0..m.code.len() as u64 {
        assert!(matches!(set.locate(BASE + off), Location::Foreign));
    }
    // The other module is untouched, and its islands are the only live ones.
    assert!(matches!(
        set.locate(BASE + 0x10_0000 + u64::from(fib.funcs[0].code_range.start)),
        Location::Island { island, .. } if island.module == other
    ));
    assert!(set.live_islands().all(|i| i.module == other));
    assert!(set.by_priority().iter().all(|id| set.island(*id).is_some()));
    // The same code can be registered again at the same place (re-assembled after eviction).
    let again = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    assert_ne!(again, module);
    assert!(matches!(
        set.locate(BASE + u64::from(m.funcs[0].code_range.start)),
        Location::Island { island, .. } if island.module == again
    ));
    // Retiring twice changes nothing more.
    assert!(set.retire_module(module).is_empty());
}
