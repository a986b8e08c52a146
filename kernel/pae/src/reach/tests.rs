use alloc::vec::Vec;

use super::{CallGraph, Linked, reachable_across};
use crate::module::{self, ModuleDesc};

fn graph(wat: &str) -> (ModuleDesc, CallGraph) {
    let bytes = wat::parse_str(wat).expect("test module encodes");
    let desc = module::parse(&bytes).expect("test module parses");
    let g = CallGraph::build(&bytes, &desc).expect("bodies decode");
    (desc, g)
}

fn set(v: &[bool]) -> Vec<u32> {
    v.iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| i as u32)
        .collect()
}

fn reach(wat: &str, export: &str) -> Vec<u32> {
    let (desc, g) = graph(wat);
    let root = desc.export_func(export).expect("export exists");
    set(&g.reachable(&desc, &[root]))
}

#[test]
fn direct_calls_are_followed_transitively_and_nothing_else() {
    let m = r#"(module
      (func $a (export "a") (result i32) call $b)
      (func $b (result i32) call $c)
      (func $c (result i32) i32.const 1)
      (func $unused (result i32) call $c)
      (func $other (export "other") (result i32) call $unused))"#;
    assert_eq!(reach(m, "a"), [0, 1, 2]);
    assert_eq!(reach(m, "other"), [2, 3, 4]);
}

#[test]
fn recursion_terminates() {
    let m = r#"(module
      (func $f (export "f") (param i32) (result i32)
        local.get 0 i32.eqz if (result i32) i32.const 0 else local.get 0 i32.const 1 i32.sub call $g end)
      (func $g (param i32) (result i32) local.get 0 call $f)
      (func $h))"#;
    assert_eq!(reach(m, "f"), [0, 1]);
}

#[test]
fn the_start_function_and_its_callees_are_reachable_from_any_export() {
    let m = r#"(module
      (func $init call $helper)
      (func $helper)
      (func $e (export "e"))
      (func $dead)
      (start $init))"#;
    assert_eq!(reach(m, "e"), [0, 1, 2]);
}

#[test]
fn call_indirect_reaches_address_taken_functions_of_its_type_only() {
    let m = r#"(module
      (type $ii (func (param i32) (result i32)))
      (table 4 funcref)
      (elem (i32.const 0) $inc $dec $nullary)
      (func $inc (type $ii) local.get 0 i32.const 1 i32.add)
      (func $dec (type $ii) local.get 0 i32.const 1 i32.sub)
      (func $nullary (result i32) i32.const 7)
      (func $not_in_table (type $ii) local.get 0)
      (func $dispatch (export "dispatch") (param i32 i32) (result i32)
        local.get 0 local.get 1 call_indirect (type $ii))
      (func $direct (export "direct") (result i32) i32.const 3 call $inc))"#;
    // $nullary has another type; $not_in_table has the type but no funcref can exist.
    assert_eq!(reach(m, "dispatch"), [0, 1, 4]);
    // Without a call_indirect the table's functions are not reached.
    assert_eq!(reach(m, "direct"), [0, 5]);
}

#[test]
fn structurally_equal_types_match_across_type_indices() {
    let m = r#"(module
      (type $a (func (result i32)))
      (type $b (func (result i32)))
      (table 1 funcref)
      (elem (i32.const 0) $f)
      (func $f (type $a) i32.const 1)
      (func $g (export "g") (result i32) i32.const 0 call_indirect (type $b)))"#;
    assert_eq!(reach(m, "g"), [0, 1]);
}

#[test]
fn ref_func_passive_and_declared_segments_and_exports_are_address_taken() {
    let m = r#"(module
      (type $v (func (result i32)))
      (table 2 funcref)
      (elem $passive func $p)
      (elem declare func $d $r)
      (func $p (type $v) i32.const 1)
      (func $d (type $v) i32.const 2)
      (func $r (type $v) i32.const 3)
      (func $x (export "x") (type $v) i32.const 4)
      (func $hidden (type $v) i32.const 5)
      (func $maker (result funcref) ref.func $r)
      (func $go (export "go") (result i32)
        (table.init $passive (i32.const 0) (i32.const 0) (i32.const 1))
        i32.const 0 call_indirect (type $v)))"#;
    let (desc, g) = graph(m);
    // $go is exported, so address-taken too; $hidden and $maker are not.
    let go = desc.export_func("go").unwrap();
    assert_eq!(g.address_taken, [0, 1, 2, 3, go]);
    assert_eq!(set(&g.reachable(&desc, &[go])), [0, 1, 2, 3, go]);
}

#[test]
fn global_initializer_funcrefs_are_address_taken() {
    let m = r#"(module
      (func $f (result i32) i32.const 1)
      (global funcref (ref.func $f))
      (func (export "g")))"#;
    let (_, g) = graph(m);
    assert_eq!(g.address_taken, [0, 1]);
}

#[test]
fn imports_are_followed_into_the_provider_export_only() {
    let provider = r#"(module
      (func $helper (result i32) i32.const 40)
      (func $used (export "used") (result i32) call $helper i32.const 2 i32.add)
      (func $unused (export "unused") (result i32) call $big)
      (func $big (result i32) i32.const 0))"#;
    let user = r#"(module
      (import "env" "print" (func $print (param i32)))
      (import "lib" "used" (func $used (result i32)))
      (import "lib" "unused" (func $unused (result i32)))
      (func $main (export "main") (result i32) call $used call $print i32.const 0)
      (func $never (export "never") (result i32) call $unused))"#;
    let (pd, pg) = graph(provider);
    let (ud, ug) = graph(user);
    let modules = [
        Linked {
            desc: &pd,
            graph: &pg,
        },
        Linked {
            desc: &ud,
            graph: &ug,
        },
    ];
    let resolve = |m: usize, imp: &module::ImportDesc| {
        assert_eq!(m, 1, "only the user imports");
        (imp.module == "lib").then(|| (0, pd.export_func(&imp.name).unwrap()))
    };
    let main = ud.export_func("main").unwrap();
    let sets = reachable_across(&modules, 1, main, &resolve);
    assert_eq!(set(&sets[1]), [0, 1, main]);
    assert_eq!(set(&sets[0]), [0, 1]);
    let never = ud.export_func("never").unwrap();
    let sets = reachable_across(&modules, 1, never, &resolve);
    assert_eq!(set(&sets[1]), [2, never]);
    assert_eq!(set(&sets[0]), [2, 3]);
}

#[test]
fn a_provider_reached_twice_is_visited_once_and_cycles_end() {
    // Two modules importing each other's exports (possible with host-level linking).
    let a = r#"(module (import "b" "g" (func $g)) (func $f (export "f") call $g))"#;
    let b = r#"(module (import "a" "f" (func $f)) (func $g (export "g") call $f))"#;
    let (ad, ag) = graph(a);
    let (bd, bg) = graph(b);
    let modules = [
        Linked {
            desc: &ad,
            graph: &ag,
        },
        Linked {
            desc: &bd,
            graph: &bg,
        },
    ];
    let resolve = |m: usize, _: &module::ImportDesc| Some((1 - m, 1));
    let sets = reachable_across(&modules, 0, 1, &resolve);
    assert_eq!(set(&sets[0]), [0, 1]);
    assert_eq!(set(&sets[1]), [0, 1]);
}
