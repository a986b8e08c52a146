//! Locals in registers across control flow (`Options::reg_locals`) and `br_table` as a tree of
//! compares (`Options::br_tree`), checked on the machine code: a hot loop's locals are never
//! read or written through the frame inside the loop (but are with the option off), locals
//! live across calls keep their values, and a 64-way `br_table` reaches every target after a
//! logarithmic number of compares (a linear chain without the option). The spec scripts and the
//! random differential test run both options on and off (`wast_spec.rs`, `pae_diff_random.rs`);
//! an ignored test measures the compile cost on the largest modules.
#![cfg(target_arch = "x86_64")]

use atoll_pae::Options;
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};
use tools::chunkc::wast_host;

mod common;
use common::{compile, decode, loop_body};

const LOOPS: &str = r#"
(module
  (func $id (param i64) (result i64) (local.get 0))
  ;; sum of i*i + x for i below n, with an f64 accumulator beside it
  (func (export "squares") (param $n i32) (param $x i64) (result i64)
    (local $i i32) (local $acc i64) (local $f f64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc
          (i64.add (local.get $acc)
            (i64.add (local.get $x)
              (i64.extend_i32_u (i32.mul (local.get $i) (local.get $i))))))
        (local.set $f (f64.add (local.get $f) (f64.const 0.5)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i64.add (local.get $acc) (i64.trunc_f64_s (local.get $f))))
  ;; the same with a call in the loop: pinned locals live across it
  (func (export "calls") (param $n i32) (result i64)
    (local $i i32) (local $acc i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc
          (i64.add (local.get $acc) (call $id (i64.extend_i32_u (local.get $i)))))
        ;; (used often enough to be worth a register across the call)
        (local.set $acc (i64.add (local.get $acc) (i64.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc))
)
"#;

fn frame_accesses(ins: &[Instruction]) -> usize {
    ins.iter()
        .filter(|i| (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Memory))
        .filter(|i| i.memory_base() == Register::RBP)
        .count()
}

fn on_off() -> (Options, Options) {
    let on = Options::default();
    assert!(on.reg_locals && on.br_tree, "both are on by default");
    // Without inlining: the loop's call of `$id` is what the pinned locals live across.
    let on = Options {
        inline: false,
        ..on
    };
    let off = Options {
        reg_locals: false,
        br_tree: false,
        ..on
    };
    (on, off)
}

#[test]
fn hot_loop_locals_stay_in_registers() {
    let (on, off) = on_off();
    let expect = |n: u64, x: u64| {
        (0..n)
            .fold(0u64, |acc, i| acc.wrapping_add(i * i).wrapping_add(x))
            .wrapping_add(n / 2)
    };
    for (options, in_frame) in [(on, false), (off, true)] {
        let module = compile(LOOPS, &options);
        let ins = decode(&module, 1);
        let n = frame_accesses(loop_body(&ins));
        assert_eq!(
            n > 0,
            in_frame,
            "reg_locals {}: {n} frame accesses in the loop",
            options.reg_locals
        );
        let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
            .expect("instantiate");
        let squares = module.desc.export_func("squares").expect("export");
        for (n, x) in [(0u64, 5u64), (1, 0), (1000, 7), (77, u64::MAX / 3)] {
            let got = inst.invoke(squares, &[n, x]).expect("runs");
            assert_eq!(got, [expect(n, x)], "squares({n}, {x})");
        }
    }
}

#[test]
fn pinned_locals_survive_calls_and_are_in_the_frame_at_each_call() {
    let (on, off) = on_off();
    for options in [on, off] {
        let module = compile(LOOPS, &options);
        let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
            .expect("instantiate");
        let calls = module.desc.export_func("calls").expect("export");
        for n in [0u64, 1, 10, 500] {
            let got = inst.invoke(calls, &[n]).expect("runs");
            assert_eq!(got, [n * n.saturating_sub(1) / 2], "calls({n})");
        }
    }
    // With the option on, the loop touches its locals' frame slots only around the call: the
    // locals it writes (`i` at rbp-16, `acc` at rbp-24) are stored before it, so the frame is
    // current there, and loaded back after it. (The parameter `n`, read once per iteration
    // like the call, is not worth a register.)
    let module = compile(LOOPS, &on);
    let ins = decode(&module, 2);
    let body = loop_body(&ins);
    let call = body
        .iter()
        .position(|i| i.mnemonic() == Mnemonic::Call)
        .expect("a call in the loop");
    let local_slot = |i: &Instruction| {
        let d = i.memory_displacement64() as i64;
        (i.memory_base() == Register::RBP && [-16, -24].contains(&d)).then_some(d)
    };
    let mut stores_before = Vec::new();
    let mut loads_after = Vec::new();
    for (k, i) in body.iter().enumerate() {
        if i.op0_kind() == OpKind::Memory
            && let Some(d) = local_slot(i)
        {
            assert!(k < call, "store to local slot {d} after the call");
            stores_before.push(d);
        } else if i.op_count() > 1
            && i.op1_kind() == OpKind::Memory
            && let Some(d) = local_slot(i)
        {
            assert!(k > call, "load of local slot {d} before the call");
            loads_after.push(d);
        }
    }
    stores_before.sort();
    loads_after.sort();
    assert_eq!(
        stores_before,
        [-24, -16],
        "i and acc stored before the call"
    );
    assert_eq!(loads_after, [-24, -16], "i and acc loaded after it");
}

/// A function whose `br_table` over its parameter has 64 distinct targets (plus a default),
/// each returning its own number.
fn wide_table() -> String {
    let mut wat = String::from("(module (func (export \"pick\") (param i32) (result i32)\n");
    for _ in 0..=64 {
        wat.push_str("(block\n");
    }
    wat.push_str("(br_table");
    for k in 0..64 {
        wat.push_str(&format!(" {k}"));
    }
    wat.push_str(" 64 (local.get 0)))\n");
    for k in 0..=64 {
        wat.push_str(&format!("(return (i32.const {}))\n", 1000 + k));
        if k < 64 {
            wat.push_str(")\n");
        }
    }
    wat.push_str("(unreachable)))");
    wat
}

/// Follows the dispatch code from the first `cmp` against 64 with `index` in the compared
/// register: returns how many compares it ran and where it ended (the first instruction that
/// is not a compare of that register or a branch).
fn dispatch(ins: &[Instruction], index: u32) -> (usize, u64) {
    let at = |ip: u64| {
        ins.iter()
            .position(|i| i.ip() == ip)
            .expect("branch target")
    };
    let mut pc = ins
        .iter()
        .position(|i| i.code() == Code::Cmp_rm32_imm32 && i.immediate32() == 64)
        .expect("bounds check");
    let reg = ins[pc].op0_register();
    let (mut compares, mut last) = (0, 0u32);
    loop {
        let i = &ins[pc];
        match i.code() {
            Code::Cmp_rm32_imm32 | Code::Cmp_rm32_imm8 if i.op0_register() == reg => {
                compares += 1;
                last = i.immediate32();
                pc += 1;
            }
            _ if i.mnemonic() == Mnemonic::Jmp => {
                pc = at(i.near_branch_target());
            }
            _ if i.op0_kind() == OpKind::NearBranch64 => {
                let taken = match i.mnemonic() {
                    Mnemonic::Jae => index >= last,
                    Mnemonic::Je => index == last,
                    m => panic!("unexpected branch {m:?}"),
                };
                pc = if taken {
                    at(i.near_branch_target())
                } else {
                    pc + 1
                };
            }
            _ => return (compares, i.ip()),
        }
    }
}

#[test]
fn br_table_dispatches_in_logarithmic_compares() {
    let (on, off) = on_off();
    // Tables this wide are jump tables by default (`pae_jump_table.rs`); the tree is what
    // they are without.
    let (on, off) = (
        Options {
            jump_table: false,
            ..on
        },
        Options {
            jump_table: false,
            ..off
        },
    );
    let wat = wide_table();
    let mut max_compares = [0, 0];
    for (k, options) in [on, off].into_iter().enumerate() {
        let module = compile(&wat, &options);
        let ins = decode(&module, 0);
        let mut ends = std::collections::BTreeSet::new();
        for index in 0..70u32 {
            let (compares, end) = dispatch(&ins, index);
            max_compares[k] = max_compares[k].max(compares);
            if index < 64 {
                assert!(ends.insert(end), "index {index} shares a target");
            }
        }
        let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
            .expect("instantiate");
        let pick = module.desc.export_func("pick").expect("export");
        for index in [0u64, 1, 2, 31, 32, 63, 64, 65, 1 << 31, u64::from(u32::MAX)] {
            let got = inst.invoke(pick, &[index]).expect("runs");
            let expect = 1000 + index.min(64);
            assert_eq!(got, [expect], "pick({index})");
        }
    }
    // The bounds check, then a balanced tree over 64 runs: 1 + log2(64) compares at most.
    assert!(max_compares[0] <= 7, "tree: {} compares", max_compares[0]);
    assert!(max_compares[1] >= 64, "chain: {} compares", max_compares[1]);
}

/// The compile cost of both options on the largest modules the build produces (the WASI
/// programs): code bytes, and the fastest of 40 compiles each, the two option sets
/// alternating. Prints figures; asserts only on code size. Needs the built chunks
/// (`scripts/build.sh`); run with `cargo test -p tools --release --test pae_reg_locals --
/// --ignored --nocapture`.
#[test]
#[ignore = "a measurement: needs target/chunks from the build"]
fn compile_cost_on_large_modules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = [
        "target/chunks/c/forth.wasm",
        "target/chunks/c/imgfilt.wasm",
        "target/chunks/c/lzc.wasm",
        "target/chunks/c/sha256sum.wasm",
        "target/chunks/c/wasitest.wasm",
        "target/chunks/rust-wasi/wasm32-wasip1/release/wordfreq.wasm",
        "target/chunks/rust-wasi/wasm32-wasip1/release/dirstat.wasm",
    ];
    let (on, off) = on_off();
    let (mut secs, mut code, mut wasm_bytes) = ([0f64; 2], [0usize; 2], 0);
    for f in files {
        let wasm = std::fs::read(root.join(f)).expect("built chunk");
        wasm_bytes += wasm.len();
        let mut best = [f64::MAX; 2];
        let mut size = [0; 2];
        for _ in 0..40 {
            for (k, o) in [on, off].iter().enumerate() {
                let t = std::time::Instant::now();
                let m = atoll_pae::compile(&wasm, o).expect("compiles");
                best[k] = best[k].min(t.elapsed().as_secs_f64());
                size[k] = m.code.len();
            }
        }
        println!(
            "{f}: {} B wasm; on {:.2} ms, {} B code; off {:.2} ms, {} B code; time on/off {:.3}",
            wasm.len(),
            best[0] * 1e3,
            size[0],
            best[1] * 1e3,
            size[1],
            best[0] / best[1]
        );
        for k in 0..2 {
            secs[k] += best[k];
            code[k] += size[k];
        }
    }
    let mbs = |s: f64| wasm_bytes as f64 / s / 1e6;
    println!(
        "all: {wasm_bytes} B wasm; on {:.2} MB/s, off {:.2} MB/s (throughput on/off {:.3}); \
         code {} vs {} B ({:.3})",
        mbs(secs[0]),
        mbs(secs[1]),
        secs[1] / secs[0],
        code[0],
        code[1],
        code[0] as f64 / code[1] as f64
    );
    // Reloads after calls make the code larger; a pinning that ran away (every local, every
    // function) would make it much larger.
    assert!(code[0] * 10 < code[1] * 12, "code grew by 20% or more");
}
