//! `Instance::invoke` on the host: a call with the wrong number of arguments or an unknown
//! function index is an error and runs nothing (it used to truncate or zero-pad the arguments);
//! a trap is reported as one; the instance stays usable after each.
#![cfg(target_arch = "x86_64")]

use atoll_pae::runtime::{Instance, InvokeError};
use atoll_pae::{Options, TrapCode};
use tools::chunkc::wast_host;

/// `sub(a, b) = a - b`, with a call counter in memory so a call that should not run shows.
const WAT: &str = r#"(module
  (memory (export "mem") 1)
  (func (export "sub") (param i64 i64) (result i64)
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (i64.sub (local.get 0) (local.get 1)))
  (func (export "calls") (result i32) (i32.load (i32.const 0)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_u (local.get 0) (local.get 1))))"#;

fn instance() -> Box<Instance> {
    let bytes = wat::parse_str(WAT).expect("wat");
    let module = wast_host::compile(&bytes, &Options::default()).expect("compile");
    wast_host::instantiate(module, &[], &mut Default::default()).expect("instantiate")
}

fn export(inst: &Instance, name: &str) -> u32 {
    inst.module().desc.export_func(name).expect("export")
}

#[test]
fn wrong_argument_counts_are_errors_that_run_nothing() {
    let mut inst = instance();
    let (sub, calls) = (export(&inst, "sub"), export(&inst, "calls"));
    assert_eq!(inst.invoke(sub, &[10, 3]), Ok(vec![7]));
    // Zero-padding would have returned 10 - 0, truncation 10 - 3.
    assert_eq!(
        inst.invoke(sub, &[10]),
        Err(InvokeError::ArgCount {
            index: sub,
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        inst.invoke(sub, &[10, 3, 99]),
        Err(InvokeError::ArgCount {
            index: sub,
            expected: 2,
            got: 3
        })
    );
    assert_eq!(
        inst.invoke(calls, &[1]),
        Err(InvokeError::ArgCount {
            index: calls,
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        inst.invoke(sub, &[10]).map_err(|e| e.to_string()),
        Err(format!("function {sub} takes 2 argument(s), 1 given"))
    );
    // Only the one good call ran, and the instance still works.
    assert_eq!(inst.invoke(calls, &[]), Ok(vec![1]));
    assert_eq!(inst.invoke(sub, &[5, 7]), Ok(vec![(-2i64) as u64]));
}

#[test]
fn unknown_functions_and_traps_are_errors() {
    let mut inst = instance();
    let count = inst.module().desc.funcs.len();
    assert_eq!(
        inst.invoke(count as u32, &[]),
        Err(InvokeError::UnknownFunction {
            index: count as u32,
            count
        })
    );
    let div = export(&inst, "div");
    let trap = inst.invoke(div, &[1, 0]);
    assert_eq!(trap, Err(InvokeError::Trap(TrapCode::DivideByZero)));
    assert_eq!(
        trap.map_err(|e| e.to_string()),
        Err(format!("trap: {}", TrapCode::DivideByZero.message()))
    );
    assert_eq!(inst.invoke(div, &[7, 2]), Ok(vec![3]));
}
