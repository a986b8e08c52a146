use alloc::vec::Vec;

use super::may_move_memory;
use crate::module;

fn movers(wat: &str) -> Vec<u32> {
    let bytes = wat::parse_str(wat).expect("test module encodes");
    let desc = module::parse(&bytes).expect("test module parses");
    let moves = may_move_memory(&bytes, &desc).expect("bodies decode");
    assert_eq!(moves.len(), desc.funcs.len());
    (0..moves.len() as u32)
        .filter(|&f| moves[f as usize])
        .collect()
}

#[test]
fn grow_propagates_to_every_transitive_caller_and_no_further() {
    // 0 grows; 1 calls 0; 2 calls 1 (later in the module: 3 calls 2 before 2 is seen is the
    // same graph); 4 is recursive and pure; 5 calls 4 only; 6 calls itself and 2.
    let m = r#"(module (memory 1)
      (func $grow (result i32) i32.const 1 memory.grow)
      (func $one (result i32) call $grow)
      (func $two (result i32) call $one)
      (func $three (result i32) call $two)
      (func $fib (param i32) (result i32)
        local.get 0 i32.const 2 i32.lt_s
        if (result i32) local.get 0
        else local.get 0 i32.const 1 i32.sub call $fib
             local.get 0 i32.const 2 i32.sub call $fib i32.add end)
      (func $five (result i32) i32.const 9 call $fib)
      (func $six (param i32) (result i32)
        local.get 0 if (result i32) i32.const 0 call $six else call $two end))"#;
    assert_eq!(movers(m), [0, 1, 2, 3, 6]);
}

#[test]
fn callers_later_in_the_module_are_reached_through_the_fixed_point() {
    // 0 calls 1 calls 2, which grows: the callers come first in index order.
    let m = r#"(module (memory 1)
      (func (drop (call 1)))
      (func (result i32) call 2)
      (func (result i32) i32.const 0 memory.grow)
      (func (i32.store (i32.const 0) (i32.const 1))))"#;
    assert_eq!(movers(m), [0, 1, 2]);
}

#[test]
fn imports_and_call_indirect_may_move_memory_loads_and_stores_do_not() {
    let m = r#"(module
      (import "env" "f" (func $f))
      (memory 1)
      (table 1 funcref)
      (type $t (func))
      (func $calls_import call $f)
      (func $indirect i32.const 0 call_indirect (type $t))
      (func $bulk
        (memory.fill (i32.const 0) (i32.const 1) (i32.const 8))
        (drop (i32.load (i32.const 0))) (drop (memory.size))))"#;
    assert_eq!(movers(m), [0, 1, 2]);
}

#[test]
fn without_a_memory_nothing_moves_it() {
    let m = r#"(module
      (import "env" "f" (func $f))
      (table 1 funcref)
      (type $t (func))
      (func call $f)
      (func i32.const 0 call_indirect (type $t)))"#;
    assert_eq!(movers(m), Vec::<u32>::new());
}
