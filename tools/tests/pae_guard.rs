//! Guard-page mode on the host (`Options::guard_pages`, `chunkc::guard_host`,
//! `docs/guard-pages.md`):
//! - the code has no bounds checks (no `cmp r64, [r14 + memory_size]`), the explicit-check code
//!   one per access;
//! - such code refuses to run over memory without a guard reservation (a heap `Vec`);
//! - loads and stores of the `guard` chunk at the edges (the end, straddling it, 4 GiB - 1,
//!   static offsets up to 4 GiB - 1, after `memory.grow`) trap exactly when the access leaves the
//!   memory, in both modes, and every guard-mode trap comes through the `SIGSEGV` handler.
#![cfg(target_arch = "x86_64")]

use atoll_pae::runtime::{InstantiateError, InvokeError, SigRegistry, VecMemory};
use atoll_pae::vmctx::off;
use atoll_pae::{Options, TrapCode};
use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
use tools::chunkc::guard_host;
use tools::chunkc::wast_host::{self, HostCode, HostError};

const PAGE: u64 = 65536;

fn wasm() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../chunks/wat/guard.wat");
    wat::parse_file(path).expect("guard.wat encodes")
}

fn options(guard: bool) -> Options {
    Options {
        guard_pages: guard,
        ..Options::default()
    }
}

fn bounds_checks(code: &[u8]) -> usize {
    Decoder::new(64, code, DecoderOptions::NONE)
        .into_iter()
        .filter(|i| {
            i.mnemonic() == Mnemonic::Cmp
                && i.op1_kind() == OpKind::Memory
                && i.memory_base() == Register::R14
                && i.memory_displacement64() == off::MEMORY_SIZE as u64
        })
        .count()
}

#[test]
fn guard_code_has_no_bounds_checks_and_needs_a_reservation() {
    let bytes = wasm();
    let explicit = wast_host::compile(&bytes, &options(false)).expect("compile");
    let guard = wast_host::compile(&bytes, &options(true)).expect("compile");
    // 16 loads and stores in the chunk's bodies (with memory.size, not counted).
    assert!(
        bounds_checks(&explicit.code) >= 16,
        "explicit checks missing"
    );
    assert_eq!(bounds_checks(&guard.code), 0, "guard-page code has checks");
    assert!(guard.code.len() < explicit.code.len());
    let code = HostCode::for_module(&guard).expect("map");
    let refused = atoll_pae::runtime::Instance::new(
        guard.clone(),
        Box::new(code),
        Box::<VecMemory>::default(),
        &[],
        &mut SigRegistry::default(),
    );
    assert!(
        matches!(refused, Err(InstantiateError::Link(ref m)) if m.contains("guard")),
        "guard-page code over a heap memory: {refused:?}"
    );
}

/// `(export, args, bytes accessed at the address + static offset, static offset, pages
/// grown)`; the address is the last argument, except for `store` (the first).
type Case = (&'static str, &'static [u64], u64, u64, u64);

const CASES: &[Case] = &[
    ("load", &[65532], 4, 0, 0),
    ("load", &[65533], 4, 0, 0),
    ("load", &[65536], 4, 0, 0),
    ("load", &[0xffff_ffff], 4, 0, 0),
    ("load8", &[65535], 1, 0, 0),
    ("load8", &[65536], 1, 0, 0),
    ("load64", &[65528], 8, 0, 0),
    ("load64", &[65529], 8, 0, 0),
    ("load_page", &[0], 4, PAGE, 0),
    ("load_page", &[0xffff_0000], 4, PAGE, 0),
    ("load_far", &[0], 1, 0xffff_ffff, 0),
    ("load_far", &[0xffff_ffff], 1, 0xffff_ffff, 0),
    ("load_high", &[7], 4, 0x8000_0000, 0),
    ("store", &[65532, 5], 4, 0, 0),
    ("store", &[65533, 5], 4, 0, 0),
    ("store8", &[65535], 1, 0, 0),
    ("store8", &[65536], 1, 0, 0),
    ("store64", &[65528], 8, 0, 0),
    ("store64", &[65530], 8, 0, 0),
    ("store_high", &[0], 4, 0x7fff_ff00, 0),
    ("grow_load", &[1, 131068], 4, 0, 1),
    ("grow_load", &[1, 131069], 4, 0, 1),
    ("grow_load", &[3, 262140], 4, 0, 3),
    ("grow_load", &[3, 262143], 4, 0, 3),
    ("grow_load", &[5, 70000], 4, 0, 0),
    ("grow_store", &[2, 196604], 4, 0, 2),
    ("grow_store", &[2, 196608], 4, 0, 2),
];

fn outcomes(guard: bool) -> Vec<Result<Vec<u64>, InvokeError>> {
    let bytes = wasm();
    let module = wast_host::compile(&bytes, &options(guard)).expect("compile");
    CASES
        .iter()
        .map(|(export, args, ..)| {
            // A fresh instance per case: one page, as the kernel's tasks start.
            let mut inst = wast_host::instantiate(module.clone(), &[], &mut SigRegistry::default())
                .map_err(|e: HostError| e.to_string())
                .expect("instantiate");
            let f = module.desc.export_func(export).expect("export");
            inst.invoke(f, args)
        })
        .collect()
}

#[test]
fn accesses_past_the_end_trap_exactly_in_both_modes() {
    let before = guard_host::guard_traps();
    let guard = outcomes(true);
    let traps = guard_host::guard_traps() - before;
    let explicit = outcomes(false);
    let mut trapping = 0;
    for (((export, args, size, offset, grown), g), e) in CASES.iter().zip(&guard).zip(&explicit) {
        let addr = if *export == "store" {
            args[0]
        } else {
            args.last().copied().unwrap_or(0)
        };
        let memory = (1 + grown) * PAGE;
        let past_end = addr + offset + size > memory;
        trapping += u64::from(past_end);
        let want_trap = Err(InvokeError::Trap(TrapCode::MemoryOutOfBounds));
        assert_eq!(
            past_end,
            *g == want_trap,
            "guard {export} {args:?}: {g:?} (memory {memory} bytes)"
        );
        assert_eq!(g, e, "{export} {args:?}: guard {g:?}, explicit {e:?}");
    }
    assert!(trapping >= 14, "the cases must mix traps and accesses");
    // Other tests of this process may add guard traps of their own, never remove any.
    assert!(
        traps >= trapping,
        "{traps} traps came through the SIGSEGV handler, {trapping} accesses trapped"
    );
}
