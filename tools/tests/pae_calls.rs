//! Direct calls and returns (`kernel/pae/src/lower/ret.rs`, `call.rs`), checked on the machine
//! code and against wasmi:
//! - after a direct call of a defined function the caller takes the first result from `rax`
//!   (no load of the result slot at `[rsp]`), and after no direct call does it reload `r15`
//!   (every function returns with `r15` current), not even after a call that grows memory or
//!   reaches an import;
//! - that is sound: a caller writes through `r15` right after a callee grew the memory, in
//!   heap memory (which moves when it grows), and the host finds the value in the instance's
//!   memory as it is now (a stale base would have written into the freed old buffer);
//! - the arms of a function's last `if`/`block` return directly;
//! - multiple results, early `return`, tail blocks, `call_indirect`, imports and lazily assembled callees
//!   (reached through stubs) give wasmi's results in every mode.
#![cfg(target_arch = "x86_64")]

use std::ffi::c_void;
use std::sync::Arc;

use atoll_pae::meta::CallTarget;
use atoll_pae::runtime::Extern;
use atoll_pae::vmctx::VmContext;
use atoll_pae::{CompiledModule, Options};
use iced_x86::{FlowControl, Instruction, OpKind, Register};
use tools::chunkc::wast_host;

mod common;
use common::decode;

const MODULE: &str = r#"
(module
  (import "env" "triple" (func $triple (param i32) (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) $pair $fdouble)
  (type $pair_t (func (param i32) (result i32 i64 f64)))
  (type $fd_t (func (param f64) (result f64)))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func $pair (param $x i32) (result i32 i64 f64)
    (i32.add (local.get $x) (i32.const 1))
    (i64.mul (i64.extend_i32_s (local.get $x)) (i64.const 0x1_0000_0007))
    (f64.add (f64.convert_i32_s (local.get $x)) (f64.const 0.25)))
  (func $fdouble (param f64) (result f64) (f64.add (local.get 0) (local.get 0)))
  (func $grow (param i32) (result i32) (memory.grow (local.get 0)))
  (func $mid (param i32) (result i32) (call $grow (local.get 0)))
  (func $pure (param i32) (result i32) (i32.load (local.get 0)))
  (func $via_import (param i32) (result i32) (call $triple (local.get 0)))
  (func $early (param i32) (result f32)
    (if (local.get 0) (then (return (f32.const 2.5))))
    (f32.convert_i32_s (local.get 0)))
  (func (export "grow_then_touch") (param $pages i32) (result i32)
    (local $old i32) (local $addr i32)
    (i32.store (i32.const 16) (i32.const 11))
    (local.set $old (call $mid (local.get $pages)))
    (local.set $addr
      (i32.sub (i32.mul (i32.add (local.get $old) (local.get $pages)) (i32.const 65536))
               (i32.const 8)))
    (i32.store (local.get $addr) (i32.add (local.get $pages) (i32.const 70)))
    (i32.add (i32.add (i32.load (local.get $addr)) (call $pure (i32.const 16)))
             (i32.mul (local.get $old) (i32.const 1000))))
  (func (export "multi") (param $x i32) (result f64)
    (local $a i32) (local $b i64) (local $c f64)
    (call $pair (local.get $x))
    (local.set $c) (local.set $b) (local.set $a)
    (f64.add (f64.add (f64.convert_i32_s (local.get $a)) (f64.convert_i64_s (local.get $b)))
             (f64.add (local.get $c) (f64.promote_f32 (call $early (local.get $x))))))
  (func (export "indirect") (param $x i32) (result f64)
    (local $a i32) (local $b i64) (local $c f64)
    (call_indirect (type $pair_t) (local.get $x) (i32.const 0))
    (local.set $c) (local.set $b) (local.set $a)
    (f64.add (f64.convert_i32_s (local.get $a))
      (f64.add (f64.convert_i64_s (local.get $b))
        (call_indirect (type $fd_t) (local.get $c) (i32.const 1)))))
  ;; The last block or if of a function returns from its arms: a value below it, a branch
  ;; to its end, an if without else that passes its parameter through.
  (func $two (param i32) (result i32 i64)
    (i32.const 5)
    (if (result i64) (local.get 0) (then (i64.const 7)) (else (i64.const -9))))
  (func $blk (param i32) (result f64)
    (block (result f64)
      (br_if 0 (f64.const 1.5) (local.get 0))
      (drop)
      (f64.const 2.5)))
  (func $noelse (param i32) (result i32)
    (local.get 0)
    (if (param i32) (result i32) (i32.lt_s (local.get 0) (i32.const 3))
      (then (i32.add (i32.const 10)))))
  (func (export "tails") (param $x i32) (result f64)
    (local $a i32) (local $b i64)
    (call $two (local.get $x)) (local.set $b) (local.set $a)
    (f64.add (f64.add (f64.convert_i32_s (local.get $a)) (f64.convert_i64_s (local.get $b)))
             (f64.add (call $blk (local.get $x)) (f64.convert_i32_s (call $noelse (local.get $x))))))
  (func (export "imported") (param $x i32) (result i32)
    (i32.add (call $via_import (local.get $x))
             (i32.mul (call $triple (local.get $x)) (i32.load (i32.const 0)))))
)
"#;

// Function indices in MODULE (the import is 0).
const FIB: u32 = 1;
const GROW: u32 = 4;
const MID: u32 = 5;
const PURE: u32 = 6;
const VIA_IMPORT: u32 = 7;
const GROW_THEN_TOUCH: usize = 9;
const IMPORTED: usize = 16;

unsafe extern "C" fn triple(_: *mut VmContext, _: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: `triple` has one i32 parameter and one result: one slot.
    unsafe { *slots = u64::from((*slots as u32).wrapping_mul(3)) };
    0
}

fn compile(options: &Options) -> Arc<CompiledModule> {
    common::compile(MODULE, options)
}

/// For each call site of function `caller` that calls function `callee` directly: the
/// instructions from its return address up to the next call, return or jump.
fn after_calls(module: &CompiledModule, caller: usize, callee: u32) -> Vec<Vec<Instruction>> {
    let ins = decode(module, caller);
    let sites: Vec<_> = module.funcs[caller]
        .call_sites
        .iter()
        .filter(|c| c.target == CallTarget::Func(callee))
        .collect();
    assert!(!sites.is_empty(), "function {caller} calls {callee}");
    sites
        .iter()
        .map(|c| {
            let from = ins
                .iter()
                .position(|i| i.ip() == u64::from(c.return_offset))
                .expect("return address on an instruction");
            ins[from..]
                .iter()
                .take_while(|i| {
                    !matches!(
                        i.flow_control(),
                        FlowControl::Call
                            | FlowControl::IndirectCall
                            | FlowControl::Return
                            | FlowControl::UnconditionalBranch
                    )
                })
                .copied()
                .collect()
        })
        .collect()
}

fn writes_r15(window: &[Instruction]) -> bool {
    window
        .iter()
        .any(|i| i.op0_kind() == OpKind::Register && i.op0_register() == Register::R15)
}

fn loads_from_rsp(window: &[Instruction]) -> bool {
    window.iter().any(|i| {
        (1..i.op_count()).any(|k| i.op_kind(k) == OpKind::Memory)
            && i.memory_base() == Register::RSP
    })
}

#[test]
fn direct_calls_take_the_result_from_rax_and_never_reload_r15() {
    // The subject is the calls themselves: inlining (which would remove most of them) off.
    let module = compile(&Options {
        inline: false,
        ..Options::default()
    });
    // fib: both recursive calls, neither reads the result slot nor reloads the memory base,
    // and each takes the result from rax.
    let fib = after_calls(&module, FIB as usize, FIB);
    assert_eq!(fib.len(), 2);
    for w in &fib {
        assert!(!loads_from_rsp(w), "fib reads the result slot: {w:?}");
        assert!(
            !writes_r15(w),
            "fib reloads r15 after calling itself: {w:?}"
        );
        assert!(
            w.iter().any(|i| i.op_count() == 2
                && i.op1_kind() == OpKind::Register
                && i.op1_register() == Register::EAX),
            "fib takes the result from eax: {w:?}"
        );
    }
    // fib's if is its tail: both arms return directly (no merge through a home slot).
    let rets = decode(&module, FIB as usize)
        .iter()
        .filter(|i| i.flow_control() == FlowControl::Return)
        .count();
    assert_eq!(rets, 2, "each arm of fib's if returns");
    // No reload of r15 after any direct call: not after a call that grows memory (directly or
    // one level down), not after one that reaches an import or calls it.
    for (caller, callee) in [
        (GROW_THEN_TOUCH, MID),
        (MID as usize, GROW),
        (GROW_THEN_TOUCH, PURE),
        (IMPORTED, VIA_IMPORT),
        (IMPORTED, 0),
        (VIA_IMPORT as usize, 0),
    ] {
        for w in after_calls(&module, caller, callee) {
            assert!(
                !writes_r15(&w),
                "r15 reloaded after {caller} calls {callee}: {w:?}"
            );
        }
    }
    // ... but after memory.grow itself, in the function that executes it.
    let grow = decode(&module, GROW as usize);
    let call = grow
        .iter()
        .position(|i| i.flow_control() == FlowControl::IndirectCall)
        .expect("the memory.grow helper call");
    assert!(writes_r15(&grow[call..]), "no r15 reload after memory.grow");
}

/// wasmi's results for `export(arg)` (raw bits, i32 zero-extended).
fn reference(export: &str, arg: i32) -> u64 {
    let engine = wasmi::Engine::default();
    let bytes = wat::parse_str(MODULE).expect("wat");
    let module = wasmi::Module::new(&engine, &bytes[..]).expect("wasmi module");
    let mut store = wasmi::Store::new(&engine, ());
    let mut linker = wasmi::Linker::<()>::new(&engine);
    linker
        .func_wrap("env", "triple", |x: i32| x.wrapping_mul(3))
        .expect("define");
    let inst = linker
        .instantiate_and_start(&mut store, &module)
        .expect("wasmi instantiate");
    let f = inst.get_func(&store, export).expect("export");
    let mut out = [wasmi::Val::I32(0)];
    f.call(&mut store, &[wasmi::Val::I32(arg)], &mut out)
        .expect("wasmi runs");
    match out[0] {
        wasmi::Val::I32(x) => u64::from(x as u32),
        wasmi::Val::I64(x) => x as u64,
        wasmi::Val::F32(x) => u64::from(x.to_bits()),
        wasmi::Val::F64(x) => x.to_bits(),
        ref v => panic!("unexpected result {v:?}"),
    }
}

#[test]
fn results_and_grown_memory_match_wasmi_in_every_mode() {
    let modes = [
        ("default (guard pages)", Options::default()),
        (
            "default without inlining (every call a call)",
            Options {
                inline: false,
                ..Options::default()
            },
        ),
        (
            "explicit checks, heap memory (moves when it grows)",
            Options {
                guard_pages: false,
                ..Options::default()
            },
        ),
        (
            "lazy (every call through a stub, then a code cell)",
            Options {
                lazy: true,
                ..Options::default()
            },
        ),
        (
            "no locals in registers",
            Options {
                reg_locals: false,
                ..Options::default()
            },
        ),
        ("baseline", Options::NONE),
    ];
    let cases: &[(&str, &[i32])] = &[
        ("fib", &[0, 1, 2, 10, 20]),
        ("multi", &[0, 1, -5, 1000]),
        ("indirect", &[0, 3, -7]),
        ("imported", &[0, 4, -9]),
        ("grow_then_touch", &[1, 40, 300]),
        ("tails", &[0, 1, 2, 5, -1]),
    ];
    for (mode, options) in modes {
        for &(export, args) in cases {
            for &arg in args {
                // A fresh instance per call: grow_then_touch grows its memory each time.
                let module = compile(&options);
                let imports = [Extern::Host {
                    func: triple,
                    data: std::ptr::null_mut(),
                }];
                let mut inst =
                    wast_host::instantiate(module.clone(), &imports, &mut Default::default())
                        .expect("instantiate");
                let f = module.desc.export_func(export).expect("export");
                let got = inst.invoke(f, &[arg as u32 as u64]).expect("runs");
                assert_eq!(
                    got,
                    [reference(export, arg)],
                    "{export}({arg}) in mode {mode}"
                );
                if export == "grow_then_touch" {
                    // The store after the growing call reached the memory as it is now.
                    let memory = inst.memory();
                    let at = (1 + arg as usize) * 65536 - 8;
                    assert_eq!(memory.len(), at + 8, "{mode}: grown by {arg} pages");
                    let stored = u32::from_le_bytes(memory[at..at + 4].try_into().unwrap());
                    assert_eq!(stored, arg as u32 + 70, "{mode}: grow_then_touch({arg})");
                }
            }
        }
    }
}
