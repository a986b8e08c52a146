//! The merge and split rules on made-up windows: what merges (a calling pair that runs
//! together and wants one page), what never does (other modules, no call edge, not together,
//! disagreeing, too big, busy), when a merged island splits and at which cut, and that the
//! two rules and the cooldown cannot ping-pong an island.

use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn obs(id: u32, module: u32, parts: &[(u32, u64)], calls: &[u32]) -> RegroupObs {
    RegroupObs {
        id,
        module,
        bytes: 500,
        parts: parts.to_vec(),
        calls_islands: calls.to_vec(),
        busy: false,
    }
}

/// A window where island 1 (an entry, 1 call) calls island 2 (`callee` calls) and island 9
/// (another module) is the hottest with `hottest` calls.
fn window(callee: u64, hottest: u64) -> Vec<RegroupObs> {
    vec![
        obs(1, 0, &[(5, 1)], &[2]),
        obs(2, 0, &[(6, callee)], &[]),
        obs(9, 1, &[(0, hottest)], &[]),
    ]
}

#[test]
fn a_calling_pair_that_runs_together_and_agrees_merges_after_it_is_stable() {
    let mut r = Regrouper::new(RegroupPolicy::default());
    let mut when = None;
    for w in 0..20 {
        if let Some(g) = r.window(&window(10, 1000)) {
            when = Some((w, g));
            break;
        }
    }
    let (w, g) = when.expect("merged");
    // Co-execution climbs a quarter of the way per window: 3/4 takes 5 windows.
    assert!(w >= 4, "merged after {w} windows");
    let Regroup::Merge {
        into,
        absorbed,
        reason: RegroupReason::RunTogether { coexec, hot },
    } = g
    else {
        panic!("{g:?}")
    };
    assert_eq!((into, absorbed, hot), (1, 2, false));
    assert!(coexec >= ONE * 3 / 4);
}

#[test]
fn pairs_that_must_not_merge_do_not() {
    let p = RegroupPolicy::default();
    let cases: Vec<(&str, Vec<RegroupObs>)> = vec![
        // Island 2 is hot (wants 2 MiB), island 1 cold.
        ("disagree", window(1000, 1000)),
        (
            "other module",
            vec![obs(1, 0, &[(5, 1)], &[2]), obs(2, 1, &[(6, 1)], &[])],
        ),
        (
            "no call edge",
            vec![obs(1, 0, &[(5, 1)], &[]), obs(2, 0, &[(6, 1)], &[])],
        ),
        (
            "busy",
            vec![
                RegroupObs {
                    busy: true,
                    ..obs(1, 0, &[(5, 1)], &[2])
                },
                obs(2, 0, &[(6, 1)], &[]),
            ],
        ),
        (
            "too big",
            vec![
                RegroupObs {
                    bytes: p.max_bytes,
                    ..obs(1, 0, &[(5, 1)], &[2])
                },
                obs(2, 0, &[(6, 1)], &[]),
            ],
        ),
    ];
    for (what, w) in cases {
        let mut r = Regrouper::new(p);
        for _ in 0..30 {
            assert_eq!(r.window(&w), None, "{what}");
        }
    }
    // Not together: they take turns.
    let mut r = Regrouper::new(p);
    for i in 0..30 {
        let (a, b) = if i % 2 == 0 { (1, 0) } else { (0, 1) };
        let w = vec![obs(1, 0, &[(5, a)], &[2]), obs(2, 0, &[(6, b)], &[])];
        assert_eq!(r.window(&w), None);
    }
    assert!(r.coexec(1, 2) < p.merge_coexec);
}

#[test]
fn a_merged_island_whose_parts_disagree_splits_at_the_clean_cut() {
    assert_eq!(clean_cut(&[false, false, true]), Some(2));
    assert_eq!(clean_cut(&[true, false]), Some(1));
    assert_eq!(clean_cut(&[true, true]), None);
    assert_eq!(clean_cut(&[false, true, false]), None);
    assert_eq!(best_cut(&[false, true, false]), Some(1));
    assert_eq!(best_cut(&[true, false, false, true, true]), Some(3));
    assert_eq!(best_cut(&[false, false, true]), Some(2));
    assert_eq!(best_cut(&[true, true]), None);
    assert_eq!(best_cut(&[]), None);
    assert_eq!(
        wants_large(&[(0, 10), (1, 600), (2, 400)], 1000, ONE / 2),
        [false, true, false]
    );
    assert_eq!(wants_large(&[(0, 0)], 0, ONE / 2), [false]);

    let mut r = Regrouper::new(RegroupPolicy::default());
    // Island 1 holds functions 5, 7 (cold) and 6 (hot now: the hottest of the window).
    let merged = |hot: u64| {
        vec![
            obs(1, 0, &[(5, 1), (7, 1), (6, hot)], &[]),
            obs(9, 1, &[(0, 1000)], &[]),
        ]
    };
    assert_eq!(r.window(&merged(10)), None, "agreeing parts stay");
    assert_eq!(r.window(&merged(1000)), None, "one window is not stable");
    let g = r.window(&merged(1000)).expect("split");
    let Regroup::Split {
        island,
        at,
        reason:
            RegroupReason::HotAndCold {
                head_hot,
                hot_heat,
                cold_heat,
            },
    } = g
    else {
        panic!("{g:?}")
    };
    assert_eq!((island, at, head_hot), (1, 2, false));
    assert_eq!(hot_heat, ONE);
    assert!(cold_heat < ONE / 100);
    // Busy islands and islands whose parts agree stay whole.
    let mut r = Regrouper::new(RegroupPolicy::default());
    let busy = vec![RegroupObs {
        busy: true,
        ..obs(1, 0, &[(5, 1), (6, 1000)], &[])
    }];
    let agree = vec![obs(1, 0, &[(5, 900), (6, 1000)], &[])];
    for _ in 0..10 {
        assert_eq!(r.window(&busy), None);
        assert_eq!(r.window(&agree), None);
    }
    // A hot function between cold ones: the cold prefix goes first; the hot side is the one
    // holding the hottest function.
    let mut r = Regrouper::new(RegroupPolicy::default());
    let mixed = vec![obs(1, 0, &[(5, 1), (6, 1000), (7, 1)], &[])];
    assert_eq!(r.window(&mixed), None);
    let Some(Regroup::Split {
        at,
        reason: RegroupReason::HotAndCold { head_hot, .. },
        ..
    }) = r.window(&mixed)
    else {
        panic!("mixed island not split")
    };
    assert_eq!((at, head_hot), (1, false));
}

#[test]
fn merge_and_split_do_not_ping_pong() {
    let p = RegroupPolicy::default();
    let mut r = Regrouper::new(p);
    // The pair merges while both are cold...
    let mut merged_at = None;
    for w in 0..20 {
        if let Some(Regroup::Merge { into, absorbed, .. }) = r.window(&window(10, 1000)) {
            r.merged(into, absorbed);
            merged_at = Some(w);
            break;
        }
    }
    assert!(merged_at.is_some());
    // ...then the callee heats up: the merged island splits, once, after the cooldown.
    let merged = || vec![obs(1, 0, &[(5, 1), (6, 1000)], &[])];
    let mut splits = Vec::new();
    for w in 0..40u64 {
        if let Some(g) = r.window(&merged()) {
            splits.push((w, g));
            if let Regroup::Split { island, .. } = g {
                r.split(island, 3);
                break;
            }
        }
    }
    assert_eq!(splits.len(), 1, "{splits:?}");
    assert!(splits[0].0 + 1 >= p.cooldown_windows, "{splits:?}");
    // Apart again and disagreeing, they never merge back while the callee stays hot.
    let apart = vec![obs(1, 0, &[(5, 1)], &[3]), obs(3, 0, &[(6, 1000)], &[])];
    for _ in 0..40 {
        assert_eq!(r.window(&apart), None);
    }
}

#[test]
fn reasons_read_as_text() {
    let m = RegroupReason::RunTogether {
        coexec: ONE * 3 / 4,
        hot: true,
    };
    assert_eq!(
        alloc::format!("{m}"),
        "run together (co-execution 750/1000, call edge), both want 2 MiB pages"
    );
    let s = RegroupReason::HotAndCold {
        head_hot: false,
        hot_heat: ONE,
        cold_heat: 0,
    };
    assert!(alloc::format!("{s}").starts_with("part hot, part cold: second part heat 1000/1000"));
}
