//! The per-function metadata the code-island work relies on: code ranges that tile the code,
//! instruction boundaries inside them, call sites whose targets and return addresses are
//! right, frame-pointer prologues, block counters that count, and per-function timing.
#![cfg(target_arch = "x86_64")]

use std::cell::Cell;

use atoll_pae::meta::CallTarget;
use atoll_pae::{Options, compile_timed};
use tools::chunkc::wast_host;

const WAT: &str = r#"
(module
  (type $t (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $double)
  (func $double (type $t) (i32.mul (local.get 0) (i32.const 2)))
  (func $sum (export "sum") (param $n i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (call $double (local.get $n))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $acc))
  (func (export "indirect") (param i32) (result i32)
    (call_indirect (type $t) (local.get 0) (i32.const 0)))
)
"#;

#[test]
fn metadata_describes_the_code() {
    let bytes = wat::parse_str(WAT).expect("wat");
    let ticks = Cell::new(0u64);
    let clock = || {
        ticks.set(ticks.get() + 1);
        ticks.get()
    };
    // Without inlining: `sum`'s call of the small `$double` is the call site checked here.
    let options = Options {
        inline: false,
        ..Options::default()
    };
    let module = compile_timed(&bytes, &options, Some(&clock)).expect("compile");
    assert_eq!(module.funcs.len(), 3);
    let code_len = module.code.len() as u32;
    let mut previous_end = 0;
    for (i, f) in module.funcs.iter().enumerate() {
        assert_eq!(f.index, i as u32);
        let r = &f.code_range;
        assert!(
            r.start >= previous_end && r.start < r.end && r.end <= code_len,
            "{r:?}"
        );
        previous_end = r.end;
        assert_eq!(module.func_offsets[i], r.start);
        // Every function keeps the frame pointer: push rbp; mov rbp, rsp (either encoding).
        let prologue = &module.code[r.start as usize..r.start as usize + 4];
        assert!(
            prologue == [0x55, 0x48, 0x89, 0xe5] || prologue == [0x55, 0x48, 0x8b, 0xec],
            "function {i} starts {prologue:02x?}"
        );
        assert_eq!(f.frame.frame_bytes % 16, 0);
        let mut last = r.start;
        for &(code_off, _wasm_off) in &f.insn_boundaries {
            assert!(
                code_off >= last && code_off <= r.end,
                "boundary {code_off:#x} in {r:?}"
            );
            last = code_off;
        }
        assert!(!f.insn_boundaries.is_empty());
        for c in &f.call_sites {
            assert!(
                r.contains(&c.offset) && c.return_offset > c.offset && c.return_offset <= r.end
            );
        }
        assert!(f.lower_ticks > 0, "function {i} was not timed");
    }
    assert!(module.encode_ticks > 0);
    assert_eq!(module.funcs[1].name.as_deref(), Some("sum"));
    // `sum` calls `double` (function 0) directly; `indirect` calls through type 0.
    assert!(
        module.funcs[1]
            .call_sites
            .iter()
            .any(|c| c.target == CallTarget::Func(0))
    );
    assert!(
        module.funcs[2]
            .call_sites
            .iter()
            .any(|c| c.target == CallTarget::Indirect(0))
    );
    // A direct call's rel32 lands on its callee.
    let site = module.funcs[1]
        .call_sites
        .iter()
        .find(|c| c.target == CallTarget::Func(0))
        .expect("direct call");
    let rel = i32::from_le_bytes(
        module.code[site.return_offset as usize - 4..site.return_offset as usize]
            .try_into()
            .expect("4 bytes"),
    );
    assert_eq!(
        site.return_offset as i64 + i64::from(rel),
        i64::from(module.func_offsets[0])
    );
}

#[test]
fn block_counters_count_executions() {
    let bytes = wat::parse_str(WAT).expect("wat");
    // Without inlining: `double`'s own entry counter counts its calls.
    let options = Options {
        block_counters: true,
        inline: false,
        ..Options::default()
    };
    let module = wast_host::compile(&bytes, &options).expect("compile");
    assert!(!module.counter_slots.is_empty());
    let mut inst =
        wast_host::instantiate(module.clone(), &[], &mut Default::default()).expect("instantiate");
    let sum = module.desc.export_func("sum").expect("sum");
    assert_eq!(inst.invoke(sum, &[10]).expect("runs"), [110]);
    let counted: u64 = inst.counters().iter().sum();
    // The loop body ran 10 times and `double` was entered 10 times.
    assert!(counted >= 20, "counters {:?}", inst.counters());
    let double_slots = module.funcs[0].counter_slots.clone();
    let double_entries: u64 = inst.counters()
        [double_slots.start as usize..double_slots.end as usize]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    assert_eq!(double_entries, 10, "counters {:?}", inst.counters());
}
