//! Inlining small callees (`Options::inline`), checked on the machine code's call sites and
//! against wasmi: matmul's kernel has no call of `$at` left (and has with the option off),
//! callees with loops, early `return`, `br_table`, multi-value results and traps inside the
//! inlined body give wasmi's results and trap codes, a callee with locals inlined twice in one
//! loop starts from zeroed locals each time, and a recursive function is not inlined into
//! itself. The spec scripts and the random differential test run the option on and off
//! (`wast_spec.rs`, `pae_diff_random.rs`).
#![cfg(target_arch = "x86_64")]

use atoll_pae::runtime::InvokeError;
use atoll_pae::{CallTarget, CompiledModule, Options, TrapCode};
use tools::chunkc::wast_host;

mod common;
use common::compile;

const CALLEES: &str = r#"
(module
  (memory 1)
  (type $two (func (result i32 i32)))
  ;; 0: early returns
  (func $clamp (param $x i32) (result i32)
    (if (i32.lt_s (local.get $x) (i32.const 0)) (then (return (i32.const 0))))
    (if (i32.gt_s (local.get $x) (i32.const 100)) (then (return (i32.const 100))))
    (local.get $x))
  ;; 1: locals that must start at zero (x * x, plus 1000 if `$seen` was already set)
  (func $tri (param $x i32) (result i32) (local $acc i32) (local $seen i32)
    (if (local.get $seen) (then (local.set $acc (i32.const 1000))))
    (local.set $seen (i32.const 1))
    (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $x) (local.get $x))))
    (local.get $acc))
  ;; 2: br_table to three returns
  (func $pick (param i32) (result i32)
    (block (block (block (br_table 0 1 2 (local.get 0)))
        (return (i32.const 10)))
      (return (i32.const 20)))
    (i32.const 30))
  ;; 3-5: traps inside the body
  (func $div (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func $load (param i32) (result i32) (i32.load offset=8 (local.get 0)))
  (func $check (param i32) (if (local.get 0) (then (unreachable))))
  ;; 6: multi-value without a [] -> [i64 i32] block type in the module
  (func $swap (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))
  ;; 7: multi-value with one ($two)
  (func $split (param i64) (result i32 i32)
    (i32.wrap_i64 (local.get 0)) (i32.wrap_i64 (i64.shr_u (local.get 0) (i64.const 32))))
  ;; 8: recursive
  (func $fact (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
  ;; 9: a callee that writes its parameter (stored, not substituted) and calls another
  (func $twice_clamped (param $x i32) (result i32)
    (local.set $x (i32.mul (local.get $x) (i32.const 2)))
    (call $clamp (local.get $x)))

  (func (export "clamp_sum") (param $n i32) (result i32) (local $i i32) (local $s i32)
    (local.set $i (i32.const -10))
    (block $done
      (loop $l
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $s (i32.add (local.get $s)
          (call $clamp (i32.sub (i32.mul (local.get $i) (i32.const 7)) (i32.const 20)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))
  (func (export "tri_twice") (param $n i32) (result i32) (local $i i32) (local $s i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $s (i32.add (local.get $s)
          (i32.add (call $tri (local.get $i))
            (call $tri (i32.add (local.get $i) (i32.const 1))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))
  (func (export "pick") (param i32) (result i32) (call $pick (local.get 0)))
  (func (export "div") (param i32 i32) (result i32) (call $div (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i32) (call $load (local.get 0)))
  (func (export "check") (param i32) (result i32) (call $check (local.get 0)) (i32.const 7))
  (func (export "swap") (param i32 i64) (result i64 i32) (call $swap (local.get 0) (local.get 1)))
  (func (export "split_sum") (param i64) (result i32) (i32.sub (call $split (local.get 0))))
  (func (export "fact") (param i64) (result i64) (call $fact (local.get 0)))
  (func (export "twice_clamped") (param i32) (result i32)
    (i32.add (call $twice_clamped (local.get 0)) (call $twice_clamped (i32.const 30))))
)
"#;

const FACT: u32 = 8;

/// `(export, arguments)` to compare, covering every path and trap of the callees.
fn cases() -> Vec<(&'static str, Vec<u64>)> {
    let mut c: Vec<(&str, Vec<u64>)> = Vec::new();
    for n in [0u64, 1, 5, 30, 200] {
        c.push(("clamp_sum", vec![n]));
        c.push(("tri_twice", vec![n]));
    }
    for k in [0u64, 1, 2, 3, 99, u32::MAX as u64] {
        c.push(("pick", vec![k]));
    }
    let min = i32::MIN as u32 as u64;
    for (a, b) in [(7u64, 2u64), (7, 0), (min, u32::MAX as u64), (min, 1)] {
        c.push(("div", vec![a, b]));
    }
    for a in [0u64, 100, 65_520, 65_524, 65_528, u32::MAX as u64] {
        c.push(("load", vec![a]));
    }
    c.push(("check", vec![0]));
    c.push(("check", vec![1]));
    c.push(("swap", vec![3, 0x1234_5678_9abc_def0]));
    c.push(("split_sum", vec![0x0000_0005_0000_0009]));
    for n in [0u64, 1, 10, 20] {
        c.push(("fact", vec![n]));
    }
    for x in [0u64, 20, 60, (-5i32) as u32 as u64] {
        c.push(("twice_clamped", vec![x]));
    }
    c
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Values(Vec<u64>),
    Trap(TrapCode),
}

fn wasmi_trap(t: wasmi::TrapCode) -> TrapCode {
    match t {
        wasmi::TrapCode::IntegerDivisionByZero => TrapCode::DivideByZero,
        wasmi::TrapCode::IntegerOverflow => TrapCode::IntegerOverflow,
        wasmi::TrapCode::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        wasmi::TrapCode::UnreachableCodeReached => TrapCode::Unreachable,
        other => panic!("unexpected wasmi trap {other:?}"),
    }
}

/// Runs every case in wasmi.
fn reference(wat: &str, cases: &[(&str, Vec<u64>)]) -> Vec<Outcome> {
    let bytes = wat::parse_str(wat).expect("wat");
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, &bytes).expect("wasmi module");
    let mut store = wasmi::Store::new(&engine, ());
    let linker = wasmi::Linker::<()>::new(&engine);
    let inst = linker
        .instantiate_and_start(&mut store, &module)
        .expect("wasmi instance");
    cases
        .iter()
        .map(|(name, args)| {
            let f = inst.get_func(&store, name).expect("export");
            let ty = f.ty(&store);
            let wargs: Vec<wasmi::Val> = ty
                .params()
                .iter()
                .zip(args)
                .map(|(t, &a)| match t {
                    wasmi::ValType::I32 => wasmi::Val::I32(a as i32),
                    _ => wasmi::Val::I64(a as i64),
                })
                .collect();
            let mut res: Vec<wasmi::Val> = ty
                .results()
                .iter()
                .map(|t| wasmi::Val::default_for_ty(*t))
                .collect();
            match f.call(&mut store, &wargs, &mut res) {
                Ok(()) => Outcome::Values(
                    res.iter()
                        .map(|v| match v {
                            wasmi::Val::I32(x) => *x as u32 as u64,
                            wasmi::Val::I64(x) => *x as u64,
                            wasmi::Val::F64(x) => f64::from(*x).to_bits(),
                            other => panic!("unexpected result {other:?}"),
                        })
                        .collect(),
                ),
                Err(e) => Outcome::Trap(wasmi_trap(e.as_trap_code().expect("a trap"))),
            }
        })
        .collect()
}

/// Runs every case in atoll with `options` (a fresh instance per case: a trap ends one).
fn ours(wat: &str, options: &Options, cases: &[(&str, Vec<u64>)]) -> Vec<Outcome> {
    let module = compile(wat, options);
    cases
        .iter()
        .map(|(name, args)| {
            let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
                .expect("instantiate");
            let f = module.desc.export_func(name).expect("export");
            match inst.invoke(f, args) {
                Ok(v) => {
                    let ty = module.desc.func_type(f);
                    let canon = v
                        .iter()
                        .zip(&ty.results)
                        .map(|(&x, t)| if t.is_wide() { x } else { u64::from(x as u32) })
                        .collect();
                    Outcome::Values(canon)
                }
                Err(InvokeError::Trap(code)) => Outcome::Trap(code),
                Err(e) => panic!("{name}: {e:?}"),
            }
        })
        .collect()
}

/// Direct calls made by function `index`.
fn calls(module: &CompiledModule, index: u32) -> Vec<u32> {
    module.funcs[index as usize]
        .call_sites
        .iter()
        .filter_map(|c| match c.target {
            CallTarget::Func(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// Inlining at every call site (`inline_everywhere`: the mechanism on all the test's calls,
/// most of which are outside loops), off, with guard pages and counters, and alone on the
/// baseline.
fn on_off() -> [Options; 4] {
    assert!(Options::default().inline, "on by default");
    assert!(
        !Options::default().inline_everywhere,
        "only in loops by default"
    );
    let on = Options {
        inline_everywhere: true,
        ..Options::default()
    };
    let off = Options {
        inline: false,
        ..on
    };
    [
        on,
        off,
        Options {
            guard_pages: true,
            block_counters: true,
            ..on
        },
        Options {
            inline: true,
            inline_everywhere: true,
            ..Options::NONE
        },
    ]
}

/// The default policy: a small callee is inlined where it is called inside a loop of the
/// caller, and stays a call elsewhere; results are the same either way.
#[test]
fn by_default_only_calls_in_loops_are_inlined() {
    let m = compile(CALLEES, &Options::default());
    let export = |name: &str| m.desc.export_func(name).expect("export");
    // `clamp_sum` and `tri_twice` call in their loops.
    assert!(calls(&m, export("clamp_sum")).is_empty());
    assert!(calls(&m, export("tri_twice")).is_empty());
    // The others call once, outside any loop.
    for name in ["pick", "div", "load", "swap", "twice_clamped"] {
        assert!(!calls(&m, export(name)).is_empty(), "{name} was inlined");
    }
    let cases = cases();
    assert_eq!(
        ours(CALLEES, &Options::default(), &cases),
        reference(CALLEES, &cases)
    );
}

#[test]
fn inlined_callees_agree_with_wasmi_and_with_inlining_off() {
    let cases = cases();
    let expected = reference(CALLEES, &cases);
    for options in on_off() {
        let got = ours(CALLEES, &options, &cases);
        for ((case, e), g) in cases.iter().zip(&expected).zip(&got) {
            assert_eq!(g, e, "{case:?} with {options:?}");
        }
    }
    // Every trap kind the callees have was reached.
    for code in [
        TrapCode::DivideByZero,
        TrapCode::IntegerOverflow,
        TrapCode::MemoryOutOfBounds,
        TrapCode::Unreachable,
    ] {
        assert!(
            expected.contains(&Outcome::Trap(code)),
            "{code:?} not covered"
        );
    }
}

#[test]
fn inlined_calls_leave_no_call_site_but_recursion_stays_a_call() {
    let [on, off, ..] = on_off();
    let (a, b) = (compile(CALLEES, &on), compile(CALLEES, &off));
    let export = |name: &str| a.desc.export_func(name).expect("export");
    for name in [
        "clamp_sum",
        "tri_twice",
        "pick",
        "div",
        "load",
        "check",
        "swap",
        "split_sum",
        "twice_clamped",
    ] {
        let f = export(name);
        assert!(
            calls(&a, f).is_empty(),
            "{name} still calls {:?}",
            calls(&a, f)
        );
        assert!(
            !calls(&b, f).is_empty(),
            "{name} calls nothing without inlining"
        );
    }
    // `tri_twice` holds `$tri`'s two locals once (both sites share them) and more frame.
    let t = export("tri_twice") as usize;
    assert_eq!(a.funcs[t].frame.locals, b.funcs[t].frame.locals + 3);
    // `$fact` is inlined one level into the export, whose copy still calls `$fact`; `$fact`
    // itself keeps its self-call.
    assert_eq!(calls(&a, export("fact")), [FACT]);
    assert_eq!(calls(&a, FACT), [FACT]);
}

#[test]
fn matmul_has_no_call_of_at_and_agrees_with_wasmi() {
    let wat = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../chunks/wat/matmul.wat"
    ))
    .expect("matmul.wat");
    let [_, off, guard, _] = on_off();
    // The default policy: `$at` is called inside loops (of `matmul` and `$fill`).
    let on = Options::default();
    let (at, fill) = (0, 1); // `$at` and `$fill` are the module's first functions
    let matmul = |m: &CompiledModule| m.desc.export_func("matmul").expect("export");
    let with = compile(&wat, &on);
    let without = compile(&wat, &off);
    for (f, name) in [(matmul(&without), "matmul"), (fill, "$fill")] {
        assert!(
            calls(&without, f).contains(&at),
            "{name} calls $at without inlining"
        );
        assert!(
            !calls(&with, f).contains(&at),
            "{name}: {:?}",
            calls(&with, f)
        );
    }
    // `$fill` has loops (and is called outside them): it stays a call.
    assert_eq!(calls(&with, matmul(&with)), [fill]);
    // No `call` instruction in matmul's code reaches `$at` (not only none recorded).
    let at_start = u64::from(with.funcs[at as usize].code_range.start);
    let r = with.funcs[matmul(&with) as usize].code_range.clone();
    let mut d = iced_x86::Decoder::with_ip(
        64,
        &with.code[r.start as usize..r.end as usize],
        u64::from(r.start),
        iced_x86::DecoderOptions::NONE,
    );
    let mut direct_calls = 0;
    while d.can_decode() {
        let i = d.decode();
        if i.mnemonic() == iced_x86::Mnemonic::Call {
            assert_ne!(
                i.near_branch_target(),
                at_start,
                "call of $at at {:#x}",
                i.ip()
            );
            direct_calls += 1;
        }
    }
    assert_eq!(direct_calls, 1, "matmul calls $fill once");
    let cases: Vec<(&str, Vec<u64>)> = [0u64, 1, 2, 7, 32, 33]
        .iter()
        .flat_map(|&n| [("matmul", vec![n]), ("corner", vec![n])])
        .collect();
    let expected = reference(&wat, &cases);
    for options in [on, off, guard] {
        assert_eq!(ours(&wat, &options, &cases), expected, "{options:?}");
    }
}

/// The relocation tests' `hot` chunk keeps its calls across functions (`$mix` is larger than
/// the inlining budget): `tree` and `spin` still call `$mix`, `spin` calls `tree`.
#[test]
fn the_hot_chunk_keeps_its_calls() {
    let wat = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../chunks/wat/hot.wat"
    ))
    .expect("hot.wat");
    let m = compile(&wat, &Options::default());
    let (mix, tree, spin) = (0, 1, 2);
    assert!(calls(&m, tree).contains(&mix) && calls(&m, tree).contains(&tree));
    assert!(calls(&m, spin).contains(&mix) && calls(&m, spin).contains(&tree));
}
