//! The supported feature set: what validates, what is rejected and how the error reads.

use chunk_image::{CallEdge, ValType, analyze_module, validate_module};

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test wat is well-formed")
}

#[test]
fn accepts_the_supported_features() {
    let module = wasm(
        r#"(module
          (import "atoll" "print" (func $print (param i32 i32)))
          (memory 1 4)
          (table 2 funcref)
          (global $g (mut i32) (i32.const 0))
          (func $swap (export "swap") (param i32 i64) (result i64 i32)
            local.get 1 local.get 0)
          (func (export "ext") (param i32) (result i32) local.get 0 i32.extend8_s)
          (func (export "sat") (param f64) (result i32) local.get 0 i32.trunc_sat_f64_s)
          (func (export "bulk") (param i32 i32 i32)
            local.get 0 local.get 1 local.get 2 memory.copy
            local.get 0 local.get 1 local.get 2 memory.fill)
          (func (export "calls") (result i32)
            i32.const 0 i32.const 0 call $print
            i32.const 1 i64.const 2 call $swap drop drop
            f32.const 1.5 f32.sqrt drop
            i32.const 0)
          (start 6)
          (func)
        )"#,
    );
    let info = analyze_module(&module).expect("valid");
    assert_eq!(info.imports.len(), 1);
    assert_eq!(info.imports[0].module, "atoll");
    assert_eq!(info.memory_pages, 1);
    assert_eq!(info.max_memory_pages, Some(4));
    let swap = info
        .exports
        .iter()
        .find(|e| e.name == "swap")
        .expect("swap");
    assert_eq!(swap.sig.params, [ValType::I32, ValType::I64]);
    assert_eq!(swap.sig.results, [ValType::I64, ValType::I32]);
    assert!(info.call_graph.contains(&CallEdge {
        caller: 5,
        callee: 0
    }));
    assert!(info.call_graph.contains(&CallEdge {
        caller: 5,
        callee: 1
    }));
}

fn rejected(text: &str) -> String {
    validate_module(&wasm(text))
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn rejects_relaxed_simd_naming_the_function_and_feature() {
    let msg = rejected(
        r#"(module (func $vec_swz (export "vec_swz")
            v128.const i64x2 0 0 v128.const i64x2 0 0 i8x16.relaxed_swizzle drop))"#,
    );
    assert!(msg.contains("vec_swz"), "{msg}");
    assert!(msg.contains("SIMD"), "{msg}");
}

#[test]
fn accepts_fixed_width_simd() {
    validate_module(&wasm(
        r#"(module (func (export "lanes") (param i32) (result i32)
            local.get 0 i32x4.splat local.get 0 i32x4.splat i32x4.add i32x4.extract_lane 3))"#,
    ))
    .expect("simd128 is supported inside a chunk");
}

#[test]
fn rejects_other_proposals() {
    let cases = [
        ("(module (func $f (return_call $f)))", "tail call"),
        ("(module (memory i64 1))", "memory64"),
        (
            "(module (memory 1 1 shared) (func (result i32) i32.const 0 i32.atomic.load))",
            "threads",
        ),
        ("(module (tag $e) (func (throw $e)))", "exceptions"),
    ];
    for (text, feature) in cases {
        let msg = rejected(text).to_lowercase();
        assert!(msg.contains(feature), "{text}: {msg}");
    }
}

#[test]
fn accepts_reference_types_and_several_tables() {
    let text = r#"(module
        (table $a 1 funcref) (table $b 2 externref)
        (func $g (param externref) (result i32)
            (table.set $b (i32.const 0) (local.get 0))
            (ref.is_null (table.get $b (i32.const 1))))
        (func (export "f") (result i32) (call $g (ref.null extern))))"#;
    validate_module(&wasm(text)).expect("WebAssembly 2.0 reference types are supported");
}

#[test]
fn rejects_unsharable_imports_and_bad_bytes() {
    // Objects are shared between chunks (the image checks their providers); a 64-bit memory
    // (a later proposal) is refused by validation itself.
    assert!(validate_module(&wasm(r#"(module (import "store" "mem" (memory 1)))"#)).is_ok());
    assert!(validate_module(&wasm(r#"(module (import "store" "mem" (memory i64 1)))"#)).is_err());
    assert!(validate_module(b"\0asm\x01\0\0\0\x01").is_err());
    assert!(validate_module(b"not wasm").is_err());
}
