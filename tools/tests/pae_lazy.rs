//! Lazy assembly on the host (`atoll_pae::lazy`): functions compiled as stubs are assembled at
//! their first call, on whatever path reaches them first, exactly once even when several
//! threads reach them at the same moment; traps and deep recursion inside lazily assembled code
//! behave as in eagerly assembled code; [`atoll_pae::reach`] picks what a request needs.
#![cfg(target_arch = "x86_64")]

use std::sync::{Arc, Barrier};

use atoll_pae::reach::CallGraph;
use atoll_pae::runtime::{Instance, InvokeError, SigRegistry, VecMemory};
use atoll_pae::{CompiledModule, Options, TrapCode};
use tools::chunkc::wast_host::{HostCode, SharedHostCode};

const WAT: &str = r#"(module
  (func $fib (export "fib") (param i64) (result i64)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
      (then (local.get 0))
      (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1)))
                     (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
  (func $helper (param i32 i32 i64) (result i64 i32)
    (i64.add (i64.extend_i32_u (i32.mul (local.get 0) (local.get 1))) (local.get 2))
    (i32.sub (local.get 0) (local.get 1)))
  (func $pick (export "pick") (param i32) (result i64)
    (if (result i64) (local.get 0)
      (then (call $helper (i32.const 7) (local.get 0) (i64.const 1000)) (drop))
      (else (i64.const -1))))
  (func $boom (export "boom") (param i32) (result i32)
    (if (local.get 0) (then unreachable))
    (i32.const 5))
  (func $deep (export "deep") (param i32) (result i32)
    (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func $unused (export "unused") (result i32) (local i32)
    UNUSED_BODY
    (local.get 0)))"#;

/// `unused` is a long function nothing but a direct request reaches: `x = x * 31 + 7`, 40 times.
fn wat() -> String {
    let step = "(local.set 0 (i32.add (i32.mul (local.get 0) (i32.const 31)) (i32.const 7)))";
    WAT.replace("UNUSED_BODY", &step.repeat(40))
}

fn unused_result() -> u64 {
    u64::from((0..40).fold(0u32, |x, _| x.wrapping_mul(31).wrapping_add(7)))
}

/// Chooses the functions assembled up front from the module's bytes.
type Chooser<'a> = &'a dyn Fn(&[u8]) -> Vec<bool>;

fn module_with(eager: Option<Chooser<'_>>) -> Arc<CompiledModule> {
    let bytes = wat::parse_str(wat()).expect("wat");
    let m = match eager {
        Some(choose) => atoll_pae::compile_for(&bytes, &Options::default(), None, &choose(&bytes)),
        None => atoll_pae::compile(
            &bytes,
            &Options {
                lazy: true,
                ..Options::default()
            },
        ),
    };
    Arc::new(m.expect("compile"))
}

fn instance(module: &Arc<CompiledModule>, code: &Arc<HostCode>) -> Box<Instance> {
    Instance::new(
        module.clone(),
        Box::new(SharedHostCode(code.clone())),
        Box::<VecMemory>::default(),
        &[],
        &mut SigRegistry::default(),
    )
    .expect("instantiate")
}

fn export(m: &CompiledModule, name: &str) -> u32 {
    m.desc.export_func(name).expect("export")
}

#[test]
fn a_function_first_reached_on_a_second_call_path_is_assembled_then() {
    // Only `pick` assembled up front: its callee `helper` stays a stub.
    let pick_only = |bytes: &[u8]| {
        let m = atoll_pae::compile(bytes, &Options::default()).expect("compile");
        let pick = export(&m, "pick") as usize;
        (0..m.funcs.len()).map(|f| f == pick).collect()
    };
    let m = module_with(Some(&pick_only));
    let helper = 1;
    assert!(m.stubs[helper] && !m.stubs[export(&m, "pick") as usize]);
    let code = Arc::new(HostCode::for_module(&m).expect("map"));
    let mut inst = instance(&m, &code);
    let pick = export(&m, "pick");
    // The first path does not reach `helper`.
    assert_eq!(inst.invoke(pick, &[0]), Ok(vec![u64::MAX]));
    assert_eq!(code.lazy_count(), 0);
    let before = code.code_bytes();
    // The second does: 7 * 3 + 1000, the stub passes three arguments and two results.
    assert_eq!(inst.invoke(pick, &[3]), Ok(vec![1021]));
    assert_eq!(code.lazy_count(), 1);
    assert!(code.code_bytes() > before);
    // Later calls reach the assembled code through the cell; nothing is assembled again.
    assert_eq!(inst.invoke(pick, &[5]), Ok(vec![1035]));
    assert_eq!(code.lazy_count(), 1);
    // Another instance sharing the code finds it assembled.
    let mut other = instance(&m, &code);
    assert_eq!(other.invoke(pick, &[2]), Ok(vec![1014]));
    assert_eq!(code.lazy_count(), 1);
}

#[test]
fn traps_and_stack_exhaustion_in_lazily_assembled_code_unwind_as_usual() {
    let m = module_with(None);
    let code = Arc::new(HostCode::for_module(&m).expect("map"));
    let mut inst = instance(&m, &code);
    let (boom, deep, fib) = (export(&m, "boom"), export(&m, "deep"), export(&m, "fib"));
    assert_eq!(
        inst.invoke(boom, &[1]),
        Err(InvokeError::Trap(TrapCode::Unreachable))
    );
    assert_eq!(inst.invoke(boom, &[0]), Ok(vec![5]));
    assert_eq!(
        inst.invoke(deep, &[0]),
        Err(InvokeError::Trap(TrapCode::StackOverflow))
    );
    assert_eq!(inst.invoke(fib, &[20]), Ok(vec![6765]));
    assert_eq!(code.lazy_count(), 3);
}

#[test]
fn a_function_reached_by_several_threads_at_once_is_assembled_once() {
    const THREADS: usize = 4;
    for round in 0..40 {
        let m = module_with(None);
        let code = Arc::new(HostCode::for_module(&m).expect("map"));
        let start = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (m, code, start) = (m.clone(), code.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut inst = instance(&m, &code);
                    let fib = export(&m, "fib");
                    start.wait();
                    inst.invoke(fib, &[15 + t as u64])
                })
            })
            .collect();
        let want = [610, 987, 1597, 2584];
        for (t, h) in threads.into_iter().enumerate() {
            assert_eq!(
                h.join().expect("thread"),
                Ok(vec![want[t]]),
                "round {round}"
            );
        }
        assert_eq!(
            code.lazy_count(),
            1,
            "round {round}: fib assembled more than once"
        );
    }
}

#[test]
fn reachability_assembles_what_the_request_reaches_and_less_code() {
    let whole = module_with(Some(&|bytes: &[u8]| {
        vec![
            true;
            atoll_pae::compile(bytes, &Options::default())
                .unwrap()
                .funcs
                .len()
        ]
    }));
    let from_pick = module_with(Some(&|bytes: &[u8]| {
        let m = atoll_pae::compile(bytes, &Options::default()).expect("compile");
        let graph = CallGraph::build(bytes, &m.desc).expect("graph");
        graph.reachable(&m.desc, &[export(&m, "pick")])
    }));
    assert_eq!(whole.stub_count(), 0);
    // pick and helper assembled; fib, boom, deep and unused are stubs.
    assert_eq!(from_pick.stub_count(), 4);
    assert!(
        from_pick.code.len() < whole.code.len(),
        "{} vs {} bytes",
        from_pick.code.len(),
        whole.code.len()
    );
    let code = Arc::new(HostCode::for_module(&from_pick).expect("map"));
    let mut inst = instance(&from_pick, &code);
    assert_eq!(
        inst.invoke(export(&from_pick, "pick"), &[3]),
        Ok(vec![1021])
    );
    assert_eq!(code.lazy_count(), 0, "the request needed nothing lazily");
    assert_eq!(
        inst.invoke(export(&from_pick, "unused"), &[]),
        Ok(vec![unused_result()])
    );
    assert_eq!(code.lazy_count(), 1);
}

#[test]
fn lazily_assembled_functions_count_their_blocks_in_reserved_slots() {
    let bytes = wat::parse_str(wat()).expect("wat");
    // Without inlining: lazily assembled code calls everything through code cells and never
    // inlines, so an eager compile that inlined would run (and count) other blocks.
    let counting = Options {
        block_counters: true,
        inline: false,
        ..Options::default()
    };
    let eager = Arc::new(atoll_pae::compile(&bytes, &counting).expect("compile"));
    let lazy = Arc::new(
        atoll_pae::compile(
            &bytes,
            &Options {
                lazy: true,
                ..counting
            },
        )
        .expect("compile"),
    );
    let run = |m: &Arc<CompiledModule>| {
        let code = Arc::new(HostCode::for_module(m).expect("map"));
        let mut inst = instance(m, &code);
        for (name, args) in [
            ("fib", &[12u64][..]),
            ("pick", &[0]),
            ("pick", &[4]),
            ("boom", &[0]),
            ("boom", &[1]),
            ("unused", &[]),
        ] {
            let _ = inst.invoke(export(m, name), args);
        }
        inst.counters().to_vec()
    };
    let (ec, lc) = (run(&eager), run(&lazy));
    // The same blocks ran, counted in other slots: the totals agree, and so does each
    // function's entry counter (the first slot of its range).
    assert_eq!(ec.iter().sum::<u64>(), lc.iter().sum::<u64>());
    for f in 0..eager.funcs.len() {
        let e = ec[eager.funcs[f].counter_slots.start as usize];
        let l = lc[lazy.lazy_counters[f].start as usize];
        assert_eq!(e, l, "calls of function {f}");
    }
    // fib(12) calls itself 464 times in all.
    assert_eq!(ec[eager.funcs[0].counter_slots.start as usize], 465);
    // A lazily assembled function's metadata names its slots, inside the reserved range.
    let f = atoll_pae::lazy::assemble(&lazy, 0).expect("assemble");
    let reserved = &lazy.lazy_counters[0];
    assert!(
        f.meta.counter_slots.start == reserved.start && f.meta.counter_slots.end <= reserved.end
    );
    assert_eq!(f.counter_slots.len(), f.meta.counter_slots.len());
}
