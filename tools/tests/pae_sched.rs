//! Instruction scheduling (`Options::schedule`) on the default chunk set: it only permutes
//! instructions inside basic blocks, so every function keeps its calls, frame and exact
//! multiset of instructions (branches compared without their width, which may change when a
//! branch to a trap stub moves), while the order really changes; the scheduled code's metadata stays exact (instruction
//! boundaries and return addresses on instruction starts, calls where the call sites say).
//! That the scheduled code computes the same results is the spec scripts' and the
//! differential tests' part (`wast_spec`, `pae_diff_random`, `pae_default_set`).
#![cfg(target_arch = "x86_64")]

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use atoll_pae::{CompiledModule, Options, compile};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, OpKind};
use tools::chunkc::build::build_chunks;

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml")
}

/// The instructions of `range`, decoded at their offsets in `module.code`.
fn decode(module: &CompiledModule, range: std::ops::Range<u32>) -> Vec<Instruction> {
    let bytes = &module.code[range.start as usize..range.end as usize];
    let mut d = Decoder::with_ip(64, bytes, u64::from(range.start), DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        assert!(!i.is_invalid(), "undecodable code at {:#x}", i.ip());
        out.push(i);
    }
    out
}

/// Instruction starts of every function, to name branch targets by position, not address.
struct Layout {
    starts: Vec<Vec<u32>>,
    ranges: Vec<std::ops::Range<u32>>,
    stubs: u32,
}

impl Layout {
    fn new(module: &CompiledModule) -> Self {
        let ranges: Vec<_> = module.funcs.iter().map(|f| f.code_range.clone()).collect();
        let starts = ranges
            .iter()
            .map(|r| {
                decode(module, r.clone())
                    .iter()
                    .map(|i| i.ip() as u32)
                    .collect()
            })
            .collect();
        let stubs = ranges.iter().map(|r| r.end).max().unwrap_or(0);
        Self {
            starts,
            ranges,
            stubs,
        }
    }

    /// A branch target as (function, instruction number) or (none, offset into the stubs).
    fn key(&self, target: u64) -> u64 {
        let t = target as u32;
        for (f, r) in self.ranges.iter().enumerate() {
            if r.contains(&t) {
                let n = self.starts[f]
                    .binary_search(&t)
                    .expect("target on an instruction");
                return (f as u64) << 32 | n as u64;
            }
        }
        assert!(t >= self.stubs, "branch into the trampoline");
        u64::from(u32::MAX) << 32 | u64::from(t - self.stubs)
    }
}

/// Position-free form: short and near branches alike, targets named by [`Layout::key`].
fn normalized(mut i: Instruction, layout: &Layout) -> Instruction {
    if i.op_count() > 0 && i.op0_kind() == OpKind::NearBranch64 {
        i.set_near_branch64(layout.key(i.near_branch64()));
    }
    i.set_code(i.code().as_near_branch());
    i.set_len(0);
    i.set_next_ip(0);
    i
}

fn multiset(ins: &[Instruction], layout: &Layout) -> HashMap<Instruction, usize> {
    let mut m = HashMap::new();
    for &i in ins {
        *m.entry(normalized(i, layout)).or_default() += 1;
    }
    m
}

/// Checks the metadata of `module` against its decoded code.
fn check_meta(name: &str, module: &CompiledModule) {
    for f in &module.funcs {
        let ins = decode(module, f.code_range.clone());
        let starts: BTreeSet<u32> = ins.iter().map(|i| i.ip() as u32).collect();
        let mut last = f.code_range.start;
        for &(off, _) in &f.insn_boundaries {
            assert!(
                off == f.code_range.end || starts.contains(&off),
                "{name} f{}: boundary {off:#x} is not an instruction start",
                f.index
            );
            assert!(off >= last, "{name} f{}: boundaries out of order", f.index);
            last = off;
        }
        for c in &f.call_sites {
            let call = ins
                .iter()
                .find(|i| i.ip() as u32 == c.offset)
                .unwrap_or_else(|| panic!("{name} f{}: no instruction at call site", f.index));
            assert!(
                matches!(
                    call.flow_control(),
                    FlowControl::Call | FlowControl::IndirectCall
                ),
                "{name} f{}: {:#x} is not a call",
                f.index,
                c.offset
            );
            assert_eq!(call.next_ip() as u32, c.return_offset);
        }
    }
}

#[test]
fn scheduling_permutes_blocks_and_keeps_metadata_exact() {
    let chunks = build_chunks(&manifest_path()).unwrap_or_else(|e| panic!("build: {e}"));
    let on = Options {
        schedule: true,
        ..Options::default()
    };
    let off = Options {
        schedule: false,
        ..Options::default()
    };
    let (mut total, mut moved, mut functions_changed) = (0usize, 0usize, 0usize);
    for c in &chunks {
        let a = compile(&c.module, &off).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let b = compile(&c.module, &on).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(a.funcs.len(), b.funcs.len());
        let (la, lb) = (Layout::new(&a), Layout::new(&b));
        for (fa, fb) in a.funcs.iter().zip(&b.funcs) {
            let targets = |f: &atoll_pae::FunctionMeta| -> Vec<_> {
                f.call_sites.iter().map(|c| c.target).collect()
            };
            assert_eq!(targets(fa), targets(fb), "{} f{}", c.name, fa.index);
            assert_eq!(fa.frame, fb.frame);
            assert_eq!(fa.insn_boundaries.len(), fb.insn_boundaries.len());
            let (ia, ib) = (
                decode(&a, fa.code_range.clone()),
                decode(&b, fb.code_range.clone()),
            );
            assert_eq!(
                multiset(&ia, &la),
                multiset(&ib, &lb),
                "{} f{}: scheduling changed the instructions, not only their order",
                c.name,
                fa.index
            );
            let differ = ia
                .iter()
                .zip(&ib)
                .filter(|(x, y)| normalized(**x, &la) != normalized(**y, &lb))
                .count();
            total += ia.len();
            moved += differ;
            functions_changed += usize::from(differ > 0);
        }
        check_meta(&c.name, &b);
    }
    eprintln!(
        "scheduling moved {moved} of {total} instructions ({:.1}%) in {functions_changed} functions",
        100.0 * moved as f64 / total as f64
    );
    assert!(
        functions_changed > 0 && moved * 100 > total,
        "scheduling moved {moved} of {total}"
    );
}
