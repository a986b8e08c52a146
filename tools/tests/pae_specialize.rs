//! Profile-guided specialization on constant parameters (`atoll_pae::compile_specialized`):
//! the guard runs the folded body when the parameters have the recorded values and the general
//! body otherwise, both with the reference results; the folded body is smaller (dead-code
//! elimination removed the other arm); and the speed of both is measured in one run (printed
//! with `--nocapture`, for the README).
#![cfg(target_arch = "x86_64")]

use std::sync::Arc;

use atoll_pae::runtime::Instance;
use atoll_pae::{ArgProfile, CompiledModule, Options};
use tools::chunkc::wast_host;

/// `work(mode, n)`: n rounds of a loop whose body depends on `mode`; `mode` is 1 in every
/// recorded call.
const WAT: &str = r#"(module
  (func $work (export "work") (param $mode i32) (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eq (local.get $mode) (i32.const 1))
          (then (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i))))
          (else
            (local.set $acc (i32.xor (local.get $acc) (i32.rotl (local.get $i) (i32.const 7))))
            (local.set $acc (i32.add (local.get $acc) (i32.div_u (local.get $i) (i32.const 3))))
            (local.set $acc (i32.sub (local.get $acc) (i32.rem_u (local.get $i) (i32.const 5))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc)))"#;

fn reference(mode: u32, n: u32) -> u64 {
    let mut acc = 0u32;
    for i in 0..n {
        if mode == 1 {
            acc = acc.wrapping_mul(31).wrapping_add(i);
        } else {
            acc ^= i.rotate_left(7);
            acc = acc.wrapping_add(i / 3);
            acc = acc.wrapping_sub(i % 5);
        }
    }
    u64::from(acc)
}

fn modules() -> (Arc<CompiledModule>, Arc<CompiledModule>) {
    let bytes = wat::parse_str(WAT).expect("wat");
    let plain = Arc::new(atoll_pae::compile(&bytes, &Options::default()).expect("compile"));
    let work = plain.desc.export_func("work").expect("export");
    let mut profile = ArgProfile::new();
    for n in [10, 200, 3000] {
        profile.record(work, &[1, n]);
    }
    let specs = profile.constant_params(3);
    assert_eq!(specs.len(), 1, "only `mode` was constant: {specs:?}");
    let spec = atoll_pae::compile_specialized(&bytes, &Options::default(), &specs).expect("spec");
    assert_eq!(spec.specializations, specs);
    // Switched off, the same call compiles the general code only.
    let off = Options {
        specialize: false,
        ..Options::default()
    };
    let unspecialized = atoll_pae::compile_specialized(&bytes, &off, &specs).expect("off");
    assert_eq!(unspecialized.code, plain.code);
    (plain, Arc::new(spec))
}

fn instance(m: &Arc<CompiledModule>) -> Box<Instance> {
    wast_host::instantiate(m.clone(), &[], &mut Default::default()).expect("instantiate")
}

fn func_bytes(m: &CompiledModule, f: u32) -> u32 {
    let r = &m.funcs[f as usize].code_range;
    r.end - r.start
}

#[test]
fn the_guard_picks_the_folded_or_the_general_body_with_reference_results() {
    let (plain, spec) = modules();
    let work = plain.desc.export_func("work").unwrap();
    let (mut p, mut s) = (instance(&plain), instance(&spec));
    for (mode, n) in [
        (1, 0),
        (1, 1),
        (1, 1000),
        (0, 1000),
        (2, 77),
        (u32::MAX, 5),
        (1, 99),
    ] {
        let want = Ok(vec![reference(mode, n)]);
        let args = [u64::from(mode), u64::from(n)];
        assert_eq!(p.invoke(work, &args), want, "plain ({mode}, {n})");
        assert_eq!(s.invoke(work, &args), want, "specialized ({mode}, {n})");
    }
    // The folded body lost the `else` arm: it adds less than the general function's size.
    let (pb, sb) = (func_bytes(&plain, work), func_bytes(&spec, work));
    assert!(
        sb > pb && sb - pb < pb * 3 / 4,
        "plain {pb} bytes, specialized {sb}"
    );
}

#[test]
fn specialized_and_general_speed_measured_in_one_run() {
    let (plain, spec) = modules();
    let work = plain.desc.export_func("work").unwrap();
    let (mut p, mut s) = (instance(&plain), instance(&spec));
    let n = 2_000_000u64;
    let mut cycles = [Vec::new(), Vec::new()];
    for _ in 0..15 {
        for (k, inst) in [&mut p, &mut s].into_iter().enumerate() {
            // SAFETY: rdtsc has no preconditions on x86-64.
            let t0 = unsafe { core::arch::x86_64::_rdtsc() };
            let r = inst.invoke(work, &[1, n]).expect("runs");
            // SAFETY: as above.
            let t1 = unsafe { core::arch::x86_64::_rdtsc() };
            assert_eq!(r, vec![reference(1, n as u32)]);
            cycles[k].push(t1 - t0);
        }
    }
    for c in &mut cycles {
        c.sort_unstable();
    }
    let (pc, sc) = (cycles[0][7], cycles[1][7]);
    eprintln!(
        "work(1, {n}): general {pc} cycles, specialized {sc} cycles (median of 15): {:.2}x",
        pc as f64 / sc.max(1) as f64
    );
}
