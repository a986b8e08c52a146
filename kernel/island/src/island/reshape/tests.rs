//! Merge and split on a real module: the parts' code lands contiguous (merge) or apart
//! (split) with calls between parts re-targeted, calls from islands that stay patched, every
//! old instruction translated, and the set's lookup, function ownership and profiles updated.

use std::vec::Vec;

use atoll_pae::CallTarget;
use iced_x86::Code;

use super::*;
use crate::island::{Grouping, IslandSet, Location, ModuleId};
use crate::testutil::{LOOP, compile, decode};

const BASE: u64 = 0x4000_0000;
const MERGED: u64 = 0x5000_0000;
const HEAD: u64 = 0x6000_0000;
const TAIL: u64 = 0x7000_0000;

/// Targets of the direct calls in `code` at `at`.
fn call_targets(code: &[u8], at: u64) -> Vec<u64> {
    decode(code, at)
        .iter()
        .filter(|i| i.code() == Code::Call_rel32_64)
        .map(|i| i.near_branch_target())
        .collect()
}

fn func_start(set: &IslandSet, module: ModuleId, f: u32) -> u64 {
    let island = set.island(set.island_of(module, f).unwrap()).unwrap();
    island.base()
        + u64::from(
            island
                .layout
                .funcs
                .iter()
                .find(|g| g.index == f)
                .unwrap()
                .range
                .start,
        )
}

#[test]
fn merge_then_split_moves_code_and_metadata() {
    let m = compile(LOOP);
    let mut set = IslandSet::new();
    let module = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    // Functions: the import (0), helper (1), twice (2), main (3); main and twice call helper.
    let main = set.island_of(module, 3).unwrap();
    let helper = set.island_of(module, 1).unwrap();
    let twice = set.island_of(module, 2).unwrap();
    let code_of = |set: &IslandSet, id| {
        let i = set.island(id).unwrap();
        let off = (i.base() - BASE) as usize;
        m.code[off..off + i.layout.len as usize].to_vec()
    };
    let (main_code, helper_code) = (code_of(&set, main), code_of(&set, helper));
    let old_helper = func_start(&set, module, 1);
    let old_main = func_start(&set, module, 3);

    let mut prep = set
        .prepare_merge(
            main,
            &main_code,
            helper,
            &helper_code,
            Environment::at(MERGED),
        )
        .unwrap();
    assert_eq!(prep.sources().collect::<Vec<_>>(), [main, helper]);
    let merged = prep.results[0].code.clone();
    // Every old instruction of either part translates into the merged code, in order.
    let Translation::Moved(new_main) = prep.translate(old_main) else {
        panic!("main not translated")
    };
    let Translation::Moved(new_helper) = prep.translate(old_helper) else {
        panic!("helper not translated")
    };
    assert_eq!(new_main, MERGED);
    assert!(new_helper > new_main && new_helper < MERGED + merged.len() as u64);
    assert_eq!(prep.translate(old_main + 2), Translation::OffBoundary);
    assert_eq!(prep.translate(BASE - 1), Translation::Outside);
    // main's call to helper now reaches helper's new place, not its old one.
    let targets = call_targets(&merged, MERGED);
    assert!(targets.contains(&new_helper), "{targets:x?}");
    assert!(!targets.contains(&old_helper));
    // twice (which stays) gets its two calls to helper patched.
    assert_eq!(prep.calls.len(), 2);
    for c in &prep.calls {
        assert_eq!(c.caller, twice);
        assert_eq!(
            (c.call_addr as i64 + 5 + i64::from(c.new_rel32)) as u64,
            new_helper
        );
    }
    set.commit_reshape(&mut prep, MoveStats::default()).unwrap();
    set.refresh_dependencies(module);
    assert!(set.island(helper).is_none());
    assert_eq!(set.island_of(module, 1), Some(main));
    let mi = set.island(main).unwrap();
    assert_eq!(mi.func_indices().collect::<Vec<_>>(), [3, 1]);
    assert_eq!(mi.range(), MERGED..MERGED + merged.len() as u64);
    assert_eq!(mi.history.total(), 2);
    assert!(mi.deps.called_by.contains(&twice));
    let ti = set.island(twice).unwrap();
    assert_eq!(
        ti.deps.calls,
        [main],
        "the retired helper is no one's callee"
    );
    match set.locate(new_helper) {
        Location::Island { island, func, .. } => assert_eq!((island.id, func.index), (main, 1)),
        l => panic!("{l:?}"),
    }
    assert!(matches!(set.locate(old_helper), Location::Foreign));
    assert_eq!(set.vacated_by(old_helper), Some(main));
    // Merging an island with itself or a stale plan is refused.
    assert_eq!(
        set.prepare_merge(main, &merged, main, &merged, Environment::at(HEAD))
            .err(),
        Some(IslandError::BadGroup)
    );

    // Split it again: main to HEAD, helper to TAIL as a new island.
    let mut prep = set
        .prepare_split(
            main,
            &merged,
            1,
            Environment::at(HEAD),
            Environment::at(TAIL),
        )
        .unwrap();
    let ReshapeKind::Split { from, new } = prep.kind else {
        panic!("not a split")
    };
    assert_eq!(from, main);
    assert!(
        set.island(new).is_none(),
        "reserved, not live before the commit"
    );
    assert_eq!(prep.translate(new_main), Translation::Moved(HEAD));
    assert_eq!(prep.translate(new_helper), Translation::Moved(TAIL));
    let head = prep.results[0].code.clone();
    let tail = prep.results[1].code.clone();
    let targets = call_targets(&head, HEAD);
    assert!(targets.contains(&TAIL), "{targets:x?}");
    assert!(prep.calls.iter().all(|c| c.caller == twice));
    set.commit_reshape(&mut prep, MoveStats::default()).unwrap();
    set.refresh_dependencies(module);
    assert_eq!(set.island_of(module, 1), Some(new));
    assert_eq!(set.island_of(module, 3), Some(main));
    let (h, t) = (set.island(main).unwrap(), set.island(new).unwrap());
    assert_eq!(h.range(), HEAD..HEAD + head.len() as u64);
    assert_eq!(t.range(), TAIL..TAIL + tail.len() as u64);
    assert_eq!(t.func_indices().collect::<Vec<_>>(), [1]);
    assert!(h.deps.calls.contains(&new));
    // Calls in the layouts still name helper.
    assert!(
        h.layout.funcs[0]
            .calls
            .iter()
            .any(|c| c.target == CallTarget::Func(1))
    );
    // A split at the edge, or of a one-function island, is refused.
    assert_eq!(
        set.prepare_split(
            new,
            &tail,
            1,
            Environment::at(MERGED),
            Environment::at(BASE)
        )
        .err(),
        Some(IslandError::BadGroup)
    );
}

#[test]
fn profiles_follow_a_merge() {
    let options = atoll_pae::Options {
        block_counters: true,
        ..atoll_pae::Options::default()
    };
    let m = crate::testutil::compile_with(LOOP, &options);
    let mut set = IslandSet::new();
    let module = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    let main = set.island_of(module, 3).unwrap();
    let helper = set.island_of(module, 1).unwrap();
    let mut counters = std::vec![0u64; m.counter_slots.len()];
    for f in &m.funcs {
        if let Some(c) = counters.get_mut(f.counter_slots.start as usize) {
            *c = 10 + u64::from(f.index);
        }
    }
    set.feed_counters(module, &counters);
    assert!(set.island(helper).unwrap().profile.calls > 0);
    let before =
        set.island(main).unwrap().profile.calls + set.island(helper).unwrap().profile.calls;
    let code = |set: &IslandSet, id: IslandId| {
        let i = set.island(id).unwrap();
        let off = (i.base() - BASE) as usize;
        m.code[off..off + i.layout.len as usize].to_vec()
    };
    let (a, b) = (code(&set, main), code(&set, helper));
    let mut prep = set
        .prepare_merge(main, &a, helper, &b, Environment::at(MERGED))
        .unwrap();
    let merged = prep.results[0].code.clone();
    set.commit_reshape(&mut prep, MoveStats::default()).unwrap();
    assert_eq!(set.island(main).unwrap().profile.calls, before);
    set.feed_counters(module, &counters);
    assert_eq!(set.island(main).unwrap().profile.calls, before);
    // Split again: each part gets its own calls back from the counters, rates restart.
    let before_main = counters[m.funcs[3].counter_slots.start as usize];
    let sampled = set.island(main).unwrap().profile.sampled_cycles;
    let mut prep = set
        .prepare_split(
            main,
            &merged,
            1,
            Environment::at(HEAD),
            Environment::at(TAIL),
        )
        .unwrap();
    set.commit_reshape(&mut prep, MoveStats::default()).unwrap();
    set.feed_counters(module, &counters);
    let (h, t) = (
        set.island(main).unwrap().profile,
        set.island(helper).unwrap().profile,
    );
    assert_eq!(h.calls, before_main);
    assert_eq!(h.calls + t.calls, before);
    assert_eq!((h.sampled_cycles, t.sampled_cycles), (sampled, 0));
}

#[test]
fn a_split_whose_second_part_lands_below_the_first_maps_each_part_to_its_place() {
    // The encoder hands the blocks back in address order: each part must still get its own.
    let m = compile(LOOP);
    let mut set = IslandSet::new();
    let module = set.add_module(&m, BASE, Grouping::PerFunction).unwrap();
    let (main, helper) = (
        set.island_of(module, 3).unwrap(),
        set.island_of(module, 1).unwrap(),
    );
    let code = |set: &IslandSet, id| {
        let i = set.island(id).unwrap();
        let off = (i.base() - BASE) as usize;
        m.code[off..off + i.layout.len as usize].to_vec()
    };
    let (a, b) = (code(&set, main), code(&set, helper));
    let mut prep = set
        .prepare_merge(main, &a, helper, &b, Environment::at(MERGED))
        .unwrap();
    let merged = prep.results[0].code.clone();
    set.commit_reshape(&mut prep, MoveStats::default()).unwrap();
    let helper_at = func_start(&set, module, 1);
    let mut prep = set
        .prepare_split(
            main,
            &merged,
            1,
            Environment::at(TAIL),
            Environment::at(HEAD),
        )
        .unwrap();
    assert_eq!(prep.translate(MERGED), Translation::Moved(TAIL));
    assert_eq!(prep.translate(helper_at), Translation::Moved(HEAD));
    assert_eq!(prep.results[0].to.address, TAIL);
    let (head, tail) = (prep.results[0].code.len(), prep.results[1].code.len());
    assert!(
        head > tail,
        "main ({head} bytes) is longer than helper ({tail})"
    );
    set.commit_reshape(&mut prep, MoveStats::default()).unwrap();
    assert_eq!(set.island(main).unwrap().range(), TAIL..TAIL + head as u64);
}
