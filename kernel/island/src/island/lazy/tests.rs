use atoll_pae::{CallTarget, Options};

use super::super::{Grouping, Location, MoveStats};
use super::*;
use crate::testutil::{FIB, LOOP, compile_with};

const BASE: u64 = 0x4000_0000;
const LAZY_AT: u64 = 0x4100_0000;
const NEW: u64 = 0x5000_0000;

fn lazy() -> Options {
    Options {
        lazy: true,
        block_counters: true,
        ..Options::default()
    }
}

#[test]
fn stubs_are_islands_and_a_lazily_assembled_function_becomes_one_that_moves() {
    let m = compile_with(FIB, &lazy());
    assert!(m.stubs[0]);
    let mut set = IslandSet::new();
    let module = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    let stub = set.island_of(module, 0).unwrap();
    let f = atoll_pae::lazy::assemble(&m, 0).unwrap();
    // The recursive calls read the cell: nothing to patch when it moves.
    let targets: Vec<CallTarget> = f.meta.call_sites.iter().map(|c| c.target).collect();
    assert_eq!(targets, [CallTarget::Cell(0), CallTarget::Cell(0)]);
    assert_eq!(
        set.add_lazy_function(module, &f.code[1..], LAZY_AT, &f.meta)
            .err(),
        Some(IslandError::WrongLength)
    );
    let id = set
        .add_lazy_function(module, &f.code, LAZY_AT, &f.meta)
        .unwrap();
    assert_ne!(id, stub);
    assert_eq!(set.island_of(module, 0), Some(id));
    // Its counters are the slots the module reserved for it: its calls are counted there.
    let reserved = m.lazy_counters[0].clone();
    assert_eq!(f.meta.counter_slots.start, reserved.start);
    let mut counters = std::vec![0u64; m.counter_slots.len()];
    counters[reserved.start as usize] = 7;
    counters[reserved.start as usize + 1] = 3;
    set.feed_counters(module, &counters);
    let island = set.island(id).unwrap();
    assert_eq!((island.profile.calls, island.profile.block_count), (7, 10));
    assert_eq!(set.island(stub).unwrap().profile.calls, 0);
    // Every byte, the trap stubs at its end included, is located in the new island.
    for off in 0..f.code.len() as u64 {
        match set.locate(LAZY_AT + off) {
            Location::Island { island, func, .. } => {
                assert_eq!((island.id, func.index), (id, 0));
            }
            l => panic!("{off:#x}: {l:?}"),
        }
    }
    assert_eq!(
        set.add_lazy_function(module, &f.code, LAZY_AT + 8, &f.meta)
            .err(),
        Some(IslandError::Overlap)
    );
    let mut prep = set.prepare_move(id, &f.code, Environment::at(NEW)).unwrap();
    assert!(prep.calls.is_empty(), "no call rel32 reaches it");
    set.commit_move(&mut prep, MoveStats::default()).unwrap();
    assert_eq!(set.island_at(NEW), Some(id));
    assert!(matches!(set.locate(LAZY_AT), Location::Foreign));
    assert_eq!(set.vacated_by(LAZY_AT), Some(id));
}

#[test]
fn every_function_of_a_module_can_be_assembled_lazily_into_islands() {
    let m = compile_with(LOOP, &lazy());
    let mut set = IslandSet::new();
    let module = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    let mut at = LAZY_AT;
    let mut added = 0;
    for index in 0..m.funcs.len() as u32 {
        if !m.stubs[index as usize] {
            assert!(atoll_pae::lazy::assemble(&m, index).is_err(), "{index}");
            continue;
        }
        let f = atoll_pae::lazy::assemble(&m, index).unwrap();
        set.add_lazy_function(module, &f.code, at, &f.meta).unwrap();
        at += 0x1000;
        added += 1;
    }
    assert_eq!(added, m.stub_count());
    assert!(added >= 2);
}
