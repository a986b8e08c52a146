//! Function bodies are validated while the code generator decodes them (`module::parse_deferred`,
//! `lower::decode`), and a body read before its own turn (an inlined callee later in the module,
//! a lazy stub's) is validated whole first. Checked here on modules whose only fault is in one
//! body, placed before and after its caller, small enough to inline and not, called in a loop
//! and not at all, eager and lazy, malformed as well as ill-typed: every option set refuses each
//! with wasmparser's own message (what `Validator::validate_all` says of the same bytes), and
//! the valid twin of each module compiles.
#![cfg(target_arch = "x86_64")]

use atoll_pae::{CompileError, Options};

/// A caller that calls `$f` in a loop and a callee `$f` whose body is `body`; `callee_first`
/// puts the callee before the caller in the module (so it is lowered, and validated, first).
fn module(body: &str, callee_first: bool) -> String {
    let caller = r#"
  (func $caller (export "run") (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (call $f (local.get $n))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $acc))"#;
    let callee = format!("\n  (func $f (param $x i32) (result i32) {body})");
    let (a, b) = if callee_first {
        (callee.as_str(), caller)
    } else {
        (caller, callee.as_str())
    };
    format!("(module{a}{b}\n  (func $unused (result i32) (i32.const 7)))")
}

/// A small callee (inlined when valid).
const SMALL_OK: &str = "(i32.add (local.get $x) (i32.const 1))";
/// The same, ill-typed: i64.add of i32 operands.
const SMALL_BAD: &str = "(i64.add (local.get $x) (i32.const 1))";
/// Faults the lowering would trip over if it ever saw them (it trusts validated code): a
/// value-stack underflow and a local that does not exist.
const SMALL_UNDERFLOW: &str = "local.get $x i32.add";
const SMALL_NO_LOCAL: &str = "(i32.add (local.get 5) (i32.const 1))";
/// A callee too large to inline (more than 16 operators).
const LARGE_OK: &str = "(i32.add (i32.add (i32.add (i32.add (i32.add (i32.add (i32.add \
    (local.get $x) (i32.const 1)) (i32.const 2)) (i32.const 3)) (i32.const 4)) (i32.const 5)) \
    (i32.const 6)) (i32.const 7))";
/// The same with its fault at the very end: a result of the wrong type.
const LARGE_BAD: &str = "(drop (i32.add (i32.add (i32.add (i32.add (i32.add (i32.add \
    (local.get $x) (i32.const 1)) (i32.const 2)) (i32.const 3)) (i32.const 4)) (i32.const 5)) \
    (i32.const 6))) (i64.const 7)";

fn option_sets() -> Vec<(&'static str, Options)> {
    let d = Options::default();
    vec![
        ("default", d),
        (
            "guard",
            Options {
                guard_pages: true,
                ..d
            },
        ),
        ("no-inline", Options { inline: false, ..d }),
        (
            "inline-everywhere",
            Options {
                inline_everywhere: true,
                ..d
            },
        ),
        ("lazy", Options { lazy: true, ..d }),
        (
            "schedule",
            Options {
                schedule: true,
                ..d
            },
        ),
    ]
}

/// wasmparser's verdict on `bytes` with atoll's feature set.
fn reference(bytes: &[u8]) -> Result<(), String> {
    wasmparser::Validator::new_with_features(chunk_image::SUPPORTED_FEATURES)
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Compiles `bytes` with every option set and checks the outcome against `reference`.
fn check(what: &str, bytes: &[u8]) {
    let want = reference(bytes);
    for (name, options) in option_sets() {
        let got = atoll_pae::compile(bytes, &options).map(|_| ());
        match (&want, got) {
            (Ok(()), Ok(())) => {}
            (Err(msg), Err(CompileError::Invalid(ours))) => {
                assert_eq!(&ours, msg, "{what}, {name}: a different message")
            }
            (want, got) => panic!("{what}, {name}: wasmparser says {want:?}, atoll {got:?}"),
        }
    }
    // The eager subset of `compile_for`: only the caller assembled, the callee a lazy stub.
    let got = atoll_pae::compile_for(bytes, &Options::default(), None, &[true, false, false]);
    assert_eq!(
        want.is_ok(),
        got.is_ok(),
        "{what}, compile_for: {:?}",
        got.err()
    );
}

#[test]
fn an_ill_typed_body_is_refused_wherever_it_is() {
    for callee_first in [false, true] {
        for (body, valid) in [
            (SMALL_OK, true),
            (SMALL_BAD, false),
            (SMALL_UNDERFLOW, false),
            (SMALL_NO_LOCAL, false),
            (LARGE_OK, true),
            (LARGE_BAD, false),
        ] {
            let bytes = wat::parse_str(module(body, callee_first)).expect("assemble");
            assert_eq!(reference(&bytes).is_ok(), valid, "{body}");
            check(&format!("{body}, callee first {callee_first}"), &bytes);
        }
    }
}

#[test]
fn a_malformed_body_is_refused() {
    // The small valid callee with its `i32.const 1` (41 01) replaced by an opcode that does not
    // exist (0xff): malformed, not just ill-typed; then with the body cut short of its `end`.
    for callee_first in [false, true] {
        let good = wat::parse_str(module(SMALL_OK, callee_first)).expect("assemble");
        let at = good
            .windows(4)
            .position(|w| w == [0x20, 0x00, 0x41, 0x01])
            .expect("the callee's body");
        let mut bad = good.clone();
        bad[at + 2] = 0xff;
        check("unknown opcode", &bad);
        let mut cut = good.clone();
        cut[at + 4] = 0x0b; // end before i32.add: a result stack of two values
        check("early end", &cut);
    }
}

#[test]
fn an_uncalled_invalid_function_is_refused() {
    // The last function, never called, is the faulty one.
    let text = module(SMALL_OK, false).replace("(i32.const 7)", "(i64.const 7)");
    let bytes = wat::parse_str(text).expect("assemble");
    assert!(reference(&bytes).is_err());
    check("uncalled", &bytes);
}
