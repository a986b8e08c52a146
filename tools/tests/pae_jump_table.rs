//! `br_table` as a jump table (`Options::jump_table`, on by default), checked on the machine
//! code and by running it: tables of 8 or more targets dispatch through one indirect jump into
//! a run of 16-byte `lea rax, [rip + target]; jmp rax` entries (one per table entry, no data
//! words), smaller ones keep the compare tree; every index (in range, the default, negative as
//! unsigned, `i32::MIN`/`MAX`) reaches the target a reference computed here says, carrying a
//! value, to blocks and to a loop header, with the option on and off, with explicit bounds
//! checks and with guard pages. Relocating such code (entries keep their stride, threads in a
//! dispatch window retry) is tested in `atoll-island` (`copy` and `refs` tests).
#![cfg(target_arch = "x86_64")]

use atoll_pae::Options;
use iced_x86::{Code, Instruction};
use tools::chunkc::wast_host;

mod common;
use common::{compile, decode};

/// Table entry `i` of a table of `m` entries over `n` blocks: a scrambled depth, some shared.
fn depth_of(i: usize, n: usize) -> usize {
    (i * 7 + i / 3) % n
}

/// `pick(i, x)`: a `br_table` over `m` entries (plus a default) into `n` nested blocks, each
/// with an `i64` result; the block at depth `d` returns `x * 3 + 1000 + d`.
fn table_module(m: usize, n: usize) -> String {
    let mut w = String::from("(module (func (export \"pick\") (param i32 i64) (result i64)\n");
    for _ in 0..n {
        w.push_str("block (result i64)\n");
    }
    w.push_str("local.get 1\nlocal.get 0\nbr_table");
    for i in 0..m {
        w.push_str(&format!(" {}", depth_of(i, n)));
    }
    w.push_str(&format!(" {}\n", n - 1));
    for d in 0..n {
        w.push_str(&format!(
            "end\ni64.const 3\ni64.mul\ni64.const {}\ni64.add\nreturn\n",
            1000 + d
        ));
    }
    w.push_str("unreachable))");
    w
}

fn pick_reference(i: u32, x: i64, m: usize, n: usize) -> i64 {
    let d = if (i as usize) < m {
        depth_of(i as usize, n)
    } else {
        n - 1
    };
    x.wrapping_mul(3).wrapping_add(1000 + d as i64)
}

/// A state machine whose `br_table` targets include the loop header: from state `s` (0..9)
/// the table goes to handler `s` (states 0-7), straight back to the loop (state 8: counts
/// down only), or out (state 9 and the default).
const MACHINE: &str = r#"
(module
  (func (export "run") (param $state i32) (param $steps i32) (result i32)
    (local $acc i32)
    (block $out
      (loop $top
        (local.set $steps (i32.sub (local.get $steps) (i32.const 1)))
        (br_if $out (i32.lt_s (local.get $steps) (i32.const 0)))
        (block $h7 (block $h6 (block $h5 (block $h4 (block $h3 (block $h2 (block $h1 (block $h0
          (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
          (br_table $h0 $h1 $h2 $h3 $h4 $h5 $h6 $h7 $top $out $out (local.get $state)))
          (local.set $acc (i32.mul (local.get $acc) (i32.const 3)))
          (local.set $state (i32.const 5)) (br $top))
          (local.set $acc (i32.xor (local.get $acc) (i32.const 0x55)))
          (local.set $state (i32.const 0)) (br $top))
          (local.set $acc (i32.add (local.get $acc) (i32.const 7)))
          (local.set $state (i32.const 8)) (br $top))
          (local.set $acc (i32.sub (local.get $acc) (i32.const 2)))
          (local.set $state (i32.const 2)) (br $top))
          (local.set $acc (i32.rotl (local.get $acc) (i32.const 3)))
          (local.set $state (i32.const 6)) (br $top))
          (local.set $acc (i32.add (local.get $acc) (local.get $steps)))
          (local.set $state (i32.const 3)) (br $top))
          (local.set $acc (i32.mul (local.get $acc) (i32.const 5)))
          (local.set $state (i32.const 7)) (br $top))
        (local.set $acc (i32.add (local.get $acc) (i32.const 11)))
        (local.set $state (i32.const 1))
        (br $top)))
    (local.get $acc)))
"#;

fn machine_reference(mut state: i32, mut steps: i32) -> i32 {
    let mut acc: i32 = 0;
    loop {
        steps = steps.wrapping_sub(1);
        if steps < 0 {
            return acc;
        }
        acc = acc.wrapping_add(1);
        match state as u32 {
            0 => (acc, state) = (acc.wrapping_mul(3), 5),
            1 => (acc, state) = (acc ^ 0x55, 0),
            2 => (acc, state) = (acc.wrapping_add(7), 8),
            3 => (acc, state) = (acc.wrapping_sub(2), 2),
            4 => (acc, state) = (acc.rotate_left(3), 6),
            5 => (acc, state) = (acc.wrapping_add(steps), 3),
            6 => (acc, state) = (acc.wrapping_mul(5), 7),
            7 => (acc, state) = (acc.wrapping_add(11), 1),
            8 => {}
            _ => return acc,
        }
    }
}

fn option_sets() -> Vec<(&'static str, Options)> {
    let on = Options::default();
    assert!(on.jump_table, "on by default");
    vec![
        ("jump tables", on),
        (
            "jump tables, guard pages",
            Options {
                guard_pages: true,
                ..on
            },
        ),
        (
            "compare trees",
            Options {
                jump_table: false,
                ..on
            },
        ),
        (
            "jump tables only, baseline",
            Options {
                jump_table: true,
                ..Options::NONE
            },
        ),
    ]
}

/// The rip-relative `lea`s followed by `jmp rax`: the table's entries.
fn entries(ins: &[Instruction]) -> Vec<u64> {
    ins.windows(2)
        .filter(|w| {
            w[0].code() == Code::Lea_r64_m
                && w[0].is_ip_rel_memory_operand()
                && w[1].code() == Code::Jmp_rm64
        })
        .map(|w| w[0].ip())
        .collect()
}

#[test]
fn tables_of_any_size_reach_every_target_with_the_value() {
    for (name, options) in option_sets() {
        for (m, n) in [(4, 3), (7, 5), (8, 4), (9, 9), (64, 65), (300, 40)] {
            let module = compile(&table_module(m, n), &options);
            let ins = decode(&module, 0);
            let table = entries(&ins);
            let jump_table = options.jump_table && m >= 8;
            if jump_table {
                // One entry per table entry, 16 bytes apart, each pointing at an instruction
                // of the function.
                assert_eq!(table.len(), m, "{name}, m = {m}");
                assert!(
                    table.windows(2).all(|p| p[1] - p[0] == 16),
                    "{name}: stride"
                );
                for &e in &table {
                    let lea = ins.iter().find(|i| i.ip() == e).unwrap();
                    let t = lea.ip_rel_memory_address();
                    assert!(
                        ins.iter().any(|i| i.ip() == t),
                        "{name}: entry target {t:#x}"
                    );
                }
            } else {
                assert!(table.is_empty(), "{name}, m = {m}: no jump table");
                assert!(!ins.iter().any(|i| i.code() == Code::Jmp_rm64));
            }
            let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
                .expect("instantiate");
            let pick = module.desc.export_func("pick").expect("export");
            let mut indices: Vec<u32> = (0..m as u32 + 3).collect();
            indices.extend([u32::MAX, u32::MAX - 1, 1 << 31, (1 << 31) - 1, 1 << 16]);
            for i in indices {
                for x in [0i64, -5, 123_456_789_012] {
                    let got = inst.invoke(pick, &[u64::from(i), x as u64]).expect("runs");
                    assert_eq!(
                        got,
                        [pick_reference(i, x, m, n) as u64],
                        "{name}: pick({i}, {x}) with {m} entries over {n} blocks"
                    );
                }
            }
        }
    }
}

#[test]
fn a_state_machine_dispatching_to_its_loop_header_matches_the_reference() {
    for (name, options) in option_sets() {
        let module = compile(MACHINE, &options);
        assert_eq!(
            entries(&decode(&module, 0)).len(),
            if options.jump_table { 10 } else { 0 },
            "{name}"
        );
        let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
            .expect("instantiate");
        let run = module.desc.export_func("run").expect("export");
        for state in [0, 1, 4, 7, 8, 9, 10, 11, -1, i32::MIN] {
            for steps in [0, 1, 2, 17, 1000] {
                let got = inst
                    .invoke(run, &[u64::from(state as u32), u64::from(steps as u32)])
                    .expect("runs");
                assert_eq!(
                    got,
                    [u64::from(machine_reference(state, steps) as u32)],
                    "{name}: run({state}, {steps})"
                );
            }
        }
    }
}
