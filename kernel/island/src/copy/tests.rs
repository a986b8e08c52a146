//! Differential tests of relocated copies: both copies are decoded and every branch and call
//! target of the new one is checked against the old one by instruction index (not through the
//! map under test).

use std::vec::Vec;

use iced_x86::{Code, OpKind};

use super::*;
use crate::testutil::{FIB, LOOP, SWITCH, compile, compile_with, decode};

const OLD_BASE: u64 = 0x4000_0000;
/// Near, far (1 GiB up), below, and at an odd address.
const DELTAS: [i64; 5] = [0x1000, 0x4000_0000, -0x20_0000, 0x12_3457, 0x7000_0000];

#[derive(Debug, Default)]
struct Seen {
    inside: usize,
    outside: usize,
    lea: usize,
}

/// Relocates `code[range]` from `OLD_BASE + range.start` by `delta` and checks the copy.
fn check_copy(code: &[u8], range: core::ops::Range<u32>, delta: i64, seen: &mut Seen) {
    let old_ip = OLD_BASE + u64::from(range.start);
    let new_ip = old_ip.wrapping_add_signed(delta);
    let old_bytes = &code[range.start as usize..range.end as usize];
    let r = relocate(old_bytes, old_ip, new_ip).expect("relocates");
    let old = decode(old_bytes, old_ip);
    let new = decode(&r.bytes, new_ip);
    assert_eq!(old.len(), new.len(), "instruction count");
    let old_end = old_ip + old_bytes.len() as u64;
    let index_of = |addr: u64| old.iter().position(|i| i.ip() == addr);
    for (k, (o, n)) in old.iter().zip(&new).enumerate() {
        assert_eq!(o.mnemonic(), n.mnemonic(), "instruction {k}");
        // The map agrees with what the copy decodes to.
        assert_eq!(
            r.map.new_offset((o.ip() - old_ip) as u32),
            Some((n.ip() - new_ip) as u32),
            "map of instruction {k}"
        );
        let branch = (0..o.op_count()).any(|i| {
            matches!(
                o.op_kind(i),
                OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16
            )
        });
        if branch {
            let t = o.near_branch_target();
            let want = if (old_ip..old_end).contains(&t) {
                seen.inside += 1;
                new[index_of(t).expect("branch to an instruction start")].ip()
            } else {
                seen.outside += 1;
                t
            };
            assert_eq!(
                n.near_branch_target(),
                want,
                "target of {:?} (instruction {k})",
                o.code()
            );
        } else if o.is_ip_rel_memory_operand() {
            // Only a jump table's `lea r64, [rip + entry or target]`, always inside the
            // island: the copy points at the same instruction, and keeps its 7 bytes (the
            // table's stride depends on it).
            assert_eq!(o.code(), Code::Lea_r64_m, "no rip-relative data in islands");
            let t = o.ip_rel_memory_address();
            assert!((old_ip..old_end).contains(&t), "lea {k} leaves the island");
            seen.lea += 1;
            let want = new[index_of(t).expect("lea to an instruction start")].ip();
            assert_eq!(n.ip_rel_memory_address(), want, "lea {k}");
            assert_eq!((o.len(), n.len()), (7, 7), "lea {k} size");
        } else {
            let ob = &old_bytes[(o.ip() - old_ip) as usize..][..o.len()];
            let nb = &r.bytes[(n.ip() - new_ip) as usize..][..n.len()];
            assert_eq!(ob, nb, "non-branch instruction {k} copied verbatim");
        }
    }
    assert_eq!(
        r.map.new_offset(old_bytes.len() as u32),
        Some(r.bytes.len() as u32)
    );
}

#[test]
fn every_function_relocates_with_targets_inside_and_outside_exact() {
    for wat in [FIB, LOOP] {
        let m = compile(wat);
        let mut seen = Seen::default();
        for f in &m.funcs {
            for d in DELTAS {
                check_copy(&m.code, f.code_range.clone(), d, &mut seen);
            }
        }
        // Both kinds really occur, or the test proves nothing.
        assert!(seen.inside > 0 && seen.outside > 0, "{seen:?}");
    }
}

/// Scheduled code (`Options::schedule`) is ordinary code to the relocator: every function
/// relocates exactly too.
#[test]
fn scheduled_code_relocates_with_targets_exact() {
    let scheduled = atoll_pae::Options {
        schedule: true,
        ..atoll_pae::Options::default()
    };
    for wat in [FIB, LOOP] {
        let m = compile_with(wat, &scheduled);
        let mut seen = Seen::default();
        for f in &m.funcs {
            for d in DELTAS {
                check_copy(&m.code, f.code_range.clone(), d, &mut seen);
            }
        }
        assert!(seen.inside > 0 && seen.outside > 0, "{seen:?}");
    }
}

/// A `br_table` jump table: its entries keep their 16-byte stride at the new place (the
/// dispatch indexes them by position) and every `lea` points at the same instruction.
#[test]
fn jump_tables_relocate_with_their_stride() {
    let m = compile(SWITCH);
    let mut seen = Seen::default();
    let f = &m.funcs[0];
    for d in DELTAS {
        check_copy(&m.code, f.code_range.clone(), d, &mut seen);
        let old_ip = OLD_BASE + u64::from(f.code_range.start);
        let old = &m.code[f.code_range.start as usize..f.code_range.end as usize];
        let r = relocate(old, old_ip, old_ip.wrapping_add_signed(d)).unwrap();
        let new = decode(&r.bytes, old_ip.wrapping_add_signed(d));
        let entries: Vec<u64> = new
            .windows(2)
            .filter(|w| {
                w[0].code() == Code::Lea_r64_m
                    && w[0].is_ip_rel_memory_operand()
                    && w[1].code() == Code::Jmp_rm64
            })
            .map(|w| w[0].ip())
            .collect();
        // The dispatch's rip-relative lea is followed by the index leas, not a jmp: 9 entries
        // (the default is the range check's).
        assert_eq!(entries.len(), 9);
        assert!(entries.windows(2).all(|p| p[1] - p[0] == 16), "stride 16");
    }
    assert_eq!(seen.lea, DELTAS.len() * 10);
}

#[test]
fn groups_of_functions_relocate_too() {
    let m = compile(LOOP);
    let mut seen = Seen::default();
    let all = m.funcs[0].code_range.start..m.funcs.last().unwrap().code_range.end;
    let pair = m.funcs[1].code_range.start..m.funcs[2].code_range.end;
    for d in DELTAS {
        check_copy(&m.code, all.clone(), d, &mut seen);
        check_copy(&m.code, pair.clone(), d, &mut seen);
    }
    assert!(seen.inside > 0 && seen.outside > 0, "{seen:?}");
}

#[test]
fn a_whole_module_moved_by_any_distance_is_byte_identical() {
    for wat in [FIB, LOOP] {
        let m = compile(wat);
        for d in DELTAS {
            let new_ip = OLD_BASE.wrapping_add_signed(d);
            let r = relocate(&m.code, OLD_BASE, new_ip).expect("relocates");
            assert_eq!(r.bytes, m.code, "delta {d:#x}");
            assert!(r.map.pairs().iter().all(|&(o, n)| o == n));
        }
    }
}

#[test]
fn map_has_every_instruction_start_and_nothing_else() {
    let m = compile(LOOP);
    let f = &m.funcs[3];
    let bytes = &m.code[f.code_range.start as usize..f.code_range.end as usize];
    let r = relocate(bytes, OLD_BASE, OLD_BASE + 0x4000_0000).unwrap();
    let starts: Vec<u32> = decode(bytes, 0).iter().map(|i| i.ip() as u32).collect();
    assert_eq!(r.map.old_starts().collect::<Vec<_>>(), starts);
    for off in 0..bytes.len() as u32 {
        assert_eq!(
            r.map.new_offset(off).is_some(),
            starts.contains(&off),
            "offset {off}"
        );
    }
    // Every call's return offset maps (it is the next instruction's start).
    for c in &f.call_sites {
        assert!(
            r.map
                .new_offset(c.return_offset - f.code_range.start)
                .is_some()
        );
    }
    for &(o, n) in r.map.pairs() {
        assert_eq!(r.map.old_offset(n), Some(o));
    }
}

#[test]
fn branch_out_of_reach_and_garbage_are_refused() {
    let m = compile(FIB);
    let f = &m.funcs[0];
    let bytes = &m.code[f.code_range.start as usize..f.code_range.end as usize];
    // The jumps to the trap stubs cannot reach from 3 GiB away.
    assert!(matches!(
        relocate(bytes, OLD_BASE, OLD_BASE + 0xC000_0000),
        Err(CopyError::Rewritten { .. }) | Err(CopyError::Encode)
    ));
    assert_eq!(
        relocate(&[0x48, 0x89], OLD_BASE, OLD_BASE + 16).err(),
        Some(CopyError::Undecodable { offset: 0 })
    );
}
