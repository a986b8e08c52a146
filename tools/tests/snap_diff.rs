//! Differential test of predictive snapshots (issue 14) on the default chunk set, with atoll's
//! code generator on the host: for every snapshot-able path (each export without parameters
//! of a chunk that has its own memory and no providers, and every chunk's init path, composed
//! from independent layers and from a chain), an instance restored from the path's snapshots
//! and an instance that ran the path must be equal byte for byte (memory, globals, tables,
//! dropped segments) and give the same results, and stay equal, on the chunk's following
//! requests (its expectations in `chunks/default.toml`, in order).
#![cfg(target_arch = "x86_64")]

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::Arc;

use atoll_pae::runtime::{Extern, Instance, InvokeError, SigRegistry};
use atoll_pae::vmctx::VmContext;
use atoll_pae::{CompiledModule, Options};
use atoll_snapshot::instance::{before, capture, copy_page, restore};
use atoll_snapshot::layer::Layer;
use atoll_snapshot::library::Library;
use atoll_snapshot::{SnapId, is_init_export};
use chunk_image::{Image, write_image};
use tools::chunkc::build::build_chunks;
use tools::chunkc::manifest;
use tools::chunkc::wast_host;

unsafe extern "C" fn nothing(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    0
}

unsafe extern "C" fn cycles(_: *mut VmContext, _: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: one result slot.
    unsafe { *slots = 1_000 };
    0
}

fn instantiate(module: &Arc<CompiledModule>) -> Box<Instance> {
    let imports: Vec<Extern> = module
        .desc
        .imports
        .iter()
        .map(|i| Extern::Host {
            func: if i.name == "cycles" { cycles } else { nothing },
            data: std::ptr::null_mut(),
        })
        .collect();
    wast_host::instantiate(module.clone(), &imports, &mut SigRegistry::default()).expect("instance")
}

fn call(inst: &mut Instance, export: &str, args: &[u64]) -> Result<Vec<u64>, InvokeError> {
    let f = inst.module().desc.export_func(export).expect("export");
    inst.invoke(f, args)
}

/// Memory, globals, table entries, dropped segments.
type State = (Vec<u8>, Vec<u64>, Vec<String>, (Vec<u32>, Vec<u32>));

/// Everything a snapshot must reproduce, read from outside.
fn state(inst: &mut Instance) -> State {
    let globals = inst.own_globals().map(|g| inst.global(g)).collect();
    let mut tables = Vec::new();
    for t in inst.own_tables() {
        let mut i = 0;
        while let Some(v) = inst.table_entry(t, i) {
            tables.push(format!("{t}:{i}:{v:?}"));
            i += 1;
        }
    }
    let dropped = inst.dropped_segments();
    (inst.memory().to_vec(), globals, tables, dropped)
}

fn assert_same(label: &str, ran: &mut Instance, restored: &mut Instance) {
    let (a, b) = (state(ran), state(restored));
    assert_eq!(a.0.len(), b.0.len(), "{label}: memory size");
    if let Some(at) = a.0.iter().zip(&b.0).position(|(x, y)| x != y) {
        panic!("{label}: memory differs first at byte {at}");
    }
    assert_eq!(a.1, b.1, "{label}: globals");
    assert_eq!(a.2, b.2, "{label}: tables");
    assert_eq!(a.3, b.3, "{label}: dropped segments");
}

/// Captures `segment` run in a scratch instance restored from `parent`'s composite (or the
/// base), as layer `id` of `library`.
fn take(
    library: &mut Library<Vec<u8>>,
    module: &Arc<CompiledModule>,
    segment: &str,
    parent: Option<SnapId>,
) -> Option<SnapId> {
    let mut scratch = instantiate(module);
    if let Some(p) = parent {
        let sel = chain_of(library, p);
        let comp = library.composite(&sel).expect("parent composes");
        restore(&mut scratch, &comp, |inst, i, _, page: &Vec<u8>| {
            copy_page(inst, i, page)
        })
        .expect("restore parent");
    }
    let pre = before(&mut scratch);
    let export = segment.split_once('.').expect("chunk.export").1;
    call(&mut scratch, export, &[]).ok()?;
    let id = library.reserve_id();
    let mut layer = Layer::new(id, segment.into(), parent, 0);
    capture(&mut scratch, &pre, &mut layer, |_, bytes| {
        Ok::<_, std::convert::Infallible>(bytes.to_vec())
    })
    .expect("capture");
    layer.weight_permille = 500;
    Some(library.insert(layer).expect("insert"))
}

/// A chained layer's selection: its ancestors and itself.
fn chain_of(library: &Library<Vec<u8>>, id: SnapId) -> atoll_snapshot::library::Selection {
    let mut layers = vec![id];
    while let Some(p) = library.get(*layers.last().unwrap()).and_then(|l| l.parent) {
        layers.push(p);
    }
    layers.reverse();
    atoll_snapshot::library::Selection {
        covered: layers.len(),
        layers,
    }
}

struct Checked {
    paths: usize,
    pages: usize,
    globals: usize,
    requests: usize,
    run_after_restore: usize,
}

/// Checks one path: `library` already holds its layers.
fn check_path(
    label: &str,
    module: &Arc<CompiledModule>,
    library: &Library<Vec<u8>>,
    path: &[String],
    requests: &[(String, Vec<u64>)],
    sum: &mut Checked,
) {
    let mut ran = instantiate(module);
    for seg in path {
        call(&mut ran, seg.split_once('.').unwrap().1, &[]).expect("path runs");
    }
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    let sel = library.select(&names);
    let comp = library.composite(&sel).expect("selection composes");
    let mut restored = instantiate(module);
    restore(&mut restored, &comp, |inst, i, _, page: &Vec<u8>| {
        copy_page(inst, i, page)
    })
    .unwrap_or_else(|e| panic!("{label}: restore: {e}"));
    // The part of the path the snapshots do not cover runs.
    for seg in &path[sel.covered..] {
        call(&mut restored, seg.split_once('.').unwrap().1, &[]).expect("rest of path");
        sum.run_after_restore += 1;
    }
    assert_same(&format!("{label} after restore"), &mut ran, &mut restored);
    for (export, args) in requests {
        let a = call(&mut ran, export, args);
        let b = call(&mut restored, export, args);
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "{label}: request {export}{args:?}"
        );
        sum.requests += 1;
    }
    assert_same(&format!("{label} after requests"), &mut ran, &mut restored);
    sum.paths += 1;
    sum.pages += comp.pages.len();
    sum.globals += comp.globals.len();
}

#[test]
fn restored_instances_equal_instances_that_ran_the_path() {
    let manifest_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml");
    let chunks = build_chunks(&manifest_path).expect("build");
    let image_bytes = write_image(&chunks).expect("image");
    let image = Image::parse(&image_bytes).expect("parse");
    let file = manifest::load(&manifest_path).expect("manifest");
    let mut sum = Checked {
        paths: 0,
        pages: 0,
        globals: 0,
        requests: 0,
        run_after_restore: 0,
    };
    let mut init_paths = 0;
    for c in &chunks {
        let module =
            wast_host::compile(&c.module, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        // Snapshot-able: its own memory, no providers, no WASI.
        if module.desc.imports.iter().any(|i| i.module != "atoll") || module.desc.memory.is_none() {
            continue;
        }
        let view = image.chunk(&c.name).expect("chunk");
        let exports = &view.manifest.exports;
        let requests: Vec<(String, Vec<u64>)> = file
            .chunks
            .iter()
            .find(|e| e.name == c.name)
            .map(|e| {
                e.expect
                    .iter()
                    .filter(|x| x.trap.is_none())
                    .map(|x| {
                        let sig = &exports.iter().find(|e| e.name == x.call).unwrap().sig;
                        let args = x.arg_values(&sig.params).unwrap();
                        (x.call.clone(), args.iter().map(|v| v.to_bits()).collect())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut library = Library::new();
        let mut inits = Vec::new();
        for e in exports.iter().filter(|e| e.sig.params.is_empty()) {
            let segment = format!("{}.{}", c.name, e.name);
            if is_init_export(&e.name, 0) {
                inits.push(segment.clone());
            }
            let Some(_) = take(&mut library, &module, &segment, None) else {
                continue; // it traps: nothing to snapshot
            };
            check_path(
                &segment,
                &module,
                &library,
                std::slice::from_ref(&segment),
                &requests,
                &mut sum,
            );
        }
        if inits.len() >= 2 {
            // The init path from independent layers (taken above) ...
            check_path(&c.name, &module, &library, &inits, &requests, &mut sum);
            // ... and from a chain, which the selector prefers.
            let mut chained = Library::new();
            let mut parent = None;
            for seg in &inits {
                parent = Some(take(&mut chained, &module, seg, parent).expect("init runs"));
            }
            let names: Vec<&str> = inits.iter().map(String::as_str).collect();
            assert_eq!(chained.select(&names).covered, inits.len());
            check_path(
                &format!("{} chained", c.name),
                &module,
                &chained,
                &inits,
                &requests,
                &mut sum,
            );
            init_paths += 2;
        }
    }
    println!(
        "snap_diff: {} paths, {} snapshot pages and {} globals restored, {} following requests, {} segments run after a partial restore, {init_paths} multi-segment init paths",
        sum.paths, sum.pages, sum.globals, sum.requests, sum.run_after_restore
    );
    assert!(
        init_paths >= 2,
        "the default set has a chunk with two init exports"
    );
    assert!(sum.paths >= 10, "only {} paths", sum.paths);
    assert!(sum.pages >= 200, "only {} pages restored", sum.pages);
}

/// A segment that changes every kind of state a snapshot holds (a global, a table entry,
/// memory growth, a dropped data segment): restored and ran instances agree on all of it.
#[test]
fn every_kind_of_state_is_captured_and_restored() {
    let wasm = wat::parse_str(
        r#"(module
          (memory 1)
          (global $g (mut i64) (i64.const 5))
          (global $k i32 (i32.const 9))
          (table $t 4 funcref)
          (type $r (func (result i32)))
          (func $a (result i32) i32.const 11)
          (func $b (result i32) i32.const 22)
          (elem (i32.const 0) $a)
          (elem declare func $b)
          (data $d "hello")
          (func (export "state_init")
            (global.set $g (i64.const 77))
            (table.set $t (i32.const 2) (ref.func $b))
            (drop (memory.grow (i32.const 2)))
            (memory.init $d (i32.const 131172) (i32.const 0) (i32.const 5))
            (data.drop $d)
            (i32.store (i32.const 8) (i32.const 1234)))
          (func (export "get_g") (result i64) global.get $g)
          (func (export "call_t") (param i32) (result i32) (call_indirect (type $r) (local.get 0)))
          (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
          (func (export "size") (result i32) memory.size)
          (func (export "init_again") (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1))))"#,
    )
    .expect("wat");
    let module = wast_host::compile(&wasm, &Options::default()).expect("compile");
    let mut library = Library::new();
    let id = take(&mut library, &module, "m.state_init", None).expect("runs");
    let layer = library.get(id).unwrap();
    assert_eq!(layer.memory_pages, 3);
    assert_eq!(
        layer.globals.len(),
        1,
        "the mutable global, not the constant"
    );
    assert_eq!(layer.table.len(), 1);
    assert_eq!(layer.dropped_data.len(), 1);
    assert_eq!(
        layer.pages.len(),
        2,
        "page 0 (the store) and the page memory.init wrote"
    );
    let requests: Vec<(String, Vec<u64>)> = vec![
        ("get_g".into(), vec![]),
        ("call_t".into(), vec![0]),
        ("call_t".into(), vec![2]),
        ("call_t".into(), vec![1]),
        ("load".into(), vec![131172]),
        ("load".into(), vec![8]),
        ("size".into(), vec![]),
        ("init_again".into(), vec![]),
    ];
    let mut sum = Checked {
        paths: 0,
        pages: 0,
        globals: 0,
        requests: 0,
        run_after_restore: 0,
    };
    check_path(
        "state",
        &module,
        &library,
        &["m.state_init".to_string()],
        &requests,
        &mut sum,
    );
    let mut restored = instantiate(&module);
    let comp = library
        .composite(&library.select(&["m.state_init"]))
        .unwrap();
    restore(&mut restored, &comp, |inst, i, _, page: &Vec<u8>| {
        copy_page(inst, i, page)
    })
    .unwrap();
    assert_eq!(call(&mut restored, "get_g", &[]).unwrap(), vec![77]);
    assert_eq!(call(&mut restored, "call_t", &[2]).unwrap(), vec![22]);
    assert_eq!(
        call(&mut restored, "load", &[131172]).unwrap(),
        vec![u64::from(b'h')]
    );
    assert_eq!(call(&mut restored, "size", &[]).unwrap(), vec![3]);
    assert!(
        call(&mut restored, "init_again", &[]).is_err(),
        "segment dropped"
    );
}
