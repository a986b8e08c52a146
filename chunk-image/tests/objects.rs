//! Format version 4: memories, tables and globals shared between chunks, and vector and
//! reference types at chunk boundaries. Images without them stay at their older version.

mod common;

use chunk_image::{
    Chunk, Export, FormatError, FuncSig, Image, Manifest, ObjectExport, ObjectImport, ObjectType,
    Provider, ValType, analyze_module, write_image, write_image_full,
};
use common::{Rng, random_chunks};

fn memory(min: u32, max: Option<u32>) -> ObjectType {
    ObjectType::Memory { min, max }
}

fn table(elem: ValType, min: u32, max: Option<u32>) -> ObjectType {
    ObjectType::Table { elem, min, max }
}

fn global(ty: ValType, mutable: bool) -> ObjectType {
    ObjectType::Global { ty, mutable }
}

fn provider(name: &str, objects: &[(&str, ObjectType)]) -> Chunk {
    Chunk {
        name: name.into(),
        module: Vec::new(),
        manifest: Manifest {
            object_exports: objects
                .iter()
                .enumerate()
                .map(|(i, (n, ty))| ObjectExport {
                    name: (*n).into(),
                    index: i as u32,
                    ty: *ty,
                })
                .collect(),
            ..Manifest::default()
        },
    }
}

fn user(name: &str, from: &str, imports: &[(&str, ObjectType)]) -> Chunk {
    Chunk {
        name: name.into(),
        module: Vec::new(),
        manifest: Manifest {
            object_imports: imports
                .iter()
                .map(|(n, ty)| ObjectImport {
                    module: from.into(),
                    name: (*n).into(),
                    ty: *ty,
                    provider: Provider::Chunk(from.into()),
                })
                .collect(),
            ..Manifest::default()
        },
    }
}

/// Random chunks plus a provider of every kind of object and a user of some of them.
fn random_with_objects(seed: u64) -> Vec<Chunk> {
    let mut rng = Rng::new(seed);
    let mut chunks = random_chunks(&mut rng, 4);
    let types = [
        memory(rng.below(5) as u32, Some(10 + rng.below(5) as u32)),
        table(ValType::FuncRef, rng.below(8) as u32, None),
        table(ValType::ExternRef, 1, Some(4)),
        global(ValType::I64, rng.below(2) == 0),
        global(ValType::V128, false),
        global(ValType::FuncRef, true),
    ];
    let names = ["mem", "tab", "ext", "g64", "gv", "gref"];
    let objects: Vec<(&str, ObjectType)> = names.iter().copied().zip(types).collect();
    let mut store = provider("store", &objects);
    store.manifest.exports.push(Export {
        name: "vec".into(),
        func_index: 0,
        sig: FuncSig {
            params: vec![ValType::V128, ValType::ExternRef],
            results: vec![ValType::FuncRef],
        },
    });
    let wanted: Vec<(&str, ObjectType)> = objects
        .iter()
        .copied()
        .filter(|_| rng.below(2) == 0)
        .collect();
    chunks.push(store);
    chunks.push(user("reader", "store", &wanted));
    chunks
}

#[test]
fn objects_round_trip_in_version_4() {
    for seed in 0..60 {
        let chunks = random_with_objects(seed);
        let bytes = write_image(&chunks).expect("valid");
        let image = Image::parse(&bytes).expect("parses");
        assert_eq!(image.major_version(), 4, "seed {seed}");
        let back: Vec<Chunk> = image
            .chunks()
            .iter()
            .map(|c| Chunk {
                name: c.name.into(),
                module: c.module.to_vec(),
                manifest: c.manifest.clone(),
            })
            .collect();
        assert_eq!(back, chunks, "seed {seed}");
        // A version-4 image carries a workload section like version 3 (the default one).
        assert!(image.workload().traces.is_empty());
    }
}

#[test]
fn without_objects_the_version_is_unchanged() {
    for seed in 0..20 {
        let chunks = random_chunks(&mut Rng::new(seed), 4);
        let image_bytes = write_image(&chunks).expect("valid");
        assert_eq!(Image::parse(&image_bytes).unwrap().major_version(), 1);
        let w = chunk_image::Workload::default();
        let v3 = write_image_full(&chunks, &[], Some(&w)).expect("valid");
        assert_eq!(Image::parse(&v3).unwrap().major_version(), 3);
    }
}

#[test]
fn every_corrupted_byte_of_a_version_4_image_is_an_error() {
    let bytes = write_image(&random_with_objects(7)).expect("valid");
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5A;
        assert!(Image::parse(&bad).is_err(), "flip at {at} not detected");
    }
}

fn refused(provided: ObjectType, wanted: ObjectType) -> FormatError {
    let chunks = vec![
        provider("store", &[("x", provided)]),
        user("reader", "store", &[("x", wanted)]),
    ];
    write_image(&chunks).expect_err("mismatch must be refused")
}

#[test]
fn mismatched_objects_are_refused_with_a_named_reason() {
    let cases = [
        (memory(1, None), memory(2, None), "minimum size is below"),
        (memory(2, None), memory(1, Some(4)), "needs a maximum size"),
        (
            memory(2, Some(8)),
            memory(1, Some(4)),
            "maximum size is above",
        ),
        (
            table(ValType::FuncRef, 1, None),
            table(ValType::ExternRef, 1, None),
            "element types differ",
        ),
        (
            table(ValType::FuncRef, 1, None),
            table(ValType::FuncRef, 2, None),
            "minimum size is below",
        ),
        (
            global(ValType::I32, false),
            global(ValType::I64, false),
            "value types differ",
        ),
        (
            global(ValType::I32, true),
            global(ValType::I32, false),
            "mutability differs",
        ),
        (
            memory(1, None),
            global(ValType::I32, false),
            "different kind",
        ),
    ];
    for (provided, wanted, reason) in cases {
        let err = refused(provided, wanted);
        let FormatError::ObjectMismatch {
            chunk,
            module,
            name,
            reason: got,
        } = &err
        else {
            panic!("{provided:?} for {wanted:?}: {err}");
        };
        assert_eq!(
            (chunk.as_str(), module.as_str(), name.as_str()),
            ("reader", "store", "x")
        );
        assert!(got.contains(reason), "{provided:?} for {wanted:?}: {got}");
        assert!(err.to_string().contains("reader"), "{err}");
    }
    // Matching types (a bigger export than needed, a tighter maximum) are accepted.
    let ok = vec![
        provider(
            "store",
            &[
                ("m", memory(3, Some(5))),
                ("t", table(ValType::FuncRef, 4, Some(4))),
            ],
        ),
        user(
            "reader",
            "store",
            &[
                ("m", memory(2, Some(6))),
                ("t", table(ValType::FuncRef, 1, None)),
            ],
        ),
    ];
    write_image(&ok).expect("matching limits");
}

#[test]
fn a_missing_object_or_provider_is_refused() {
    let chunks = vec![
        provider("store", &[("m", memory(1, None))]),
        user("reader", "store", &[("other", memory(1, None))]),
    ];
    assert!(matches!(
        write_image(&chunks),
        Err(FormatError::MissingProvider { .. })
    ));
    let chunks = vec![user("reader", "nowhere", &[("m", memory(1, None))])];
    assert!(matches!(
        write_image(&chunks),
        Err(FormatError::MissingProvider { .. })
    ));
    // Two chunks sharing each other's objects form a cycle.
    let mut a = provider("a", &[("m", memory(1, None))]);
    a.manifest.object_imports = user("a", "b", &[("m", memory(1, None))])
        .manifest
        .object_imports;
    let mut b = provider("b", &[("m", memory(1, None))]);
    b.manifest.object_imports = user("b", "a", &[("m", memory(1, None))])
        .manifest
        .object_imports;
    assert!(matches!(
        write_image(&[a, b]),
        Err(FormatError::DependencyCycle(_))
    ));
}

#[test]
fn analysis_finds_imported_and_exported_objects() {
    let wasm = wat::parse_str(
        r#"(module
            (import "store" "mem" (memory 1 4))
            (import "store" "tab" (table 2 funcref))
            (import "store" "count" (global (mut i64)))
            (import "store" "vsum" (func (param v128) (result v128)))
            (table $own 3 10 externref)
            (global $g f32 (f32.const 1.5))
            (func $f (param externref) (result funcref) ref.null func)
            (export "own" (table $own))
            (export "g" (global $g))
            (export "mem" (memory 0))
            (export "f" (func $f)))"#,
    )
    .unwrap();
    let info = analyze_module(&wasm).expect("valid");
    let imported: Vec<(&str, ObjectType)> = info
        .object_imports
        .iter()
        .map(|i| (i.name.as_str(), i.ty))
        .collect();
    assert_eq!(
        imported,
        [
            ("mem", memory(1, Some(4))),
            ("tab", table(ValType::FuncRef, 2, None)),
            ("count", global(ValType::I64, true)),
        ]
    );
    assert!(
        info.object_imports
            .iter()
            .all(|i| i.provider == Provider::Chunk("store".into()))
    );
    let exported: Vec<(&str, u32, ObjectType)> = info
        .object_exports
        .iter()
        .map(|e| (e.name.as_str(), e.index, e.ty))
        .collect();
    assert_eq!(
        exported,
        [
            ("own", 1, table(ValType::ExternRef, 3, Some(10))),
            ("g", 1, global(ValType::F32, false)),
            ("mem", 0, memory(1, Some(4))),
        ]
    );
    assert_eq!(info.imports[0].sig.params, [ValType::V128]);
    assert_eq!(info.exports[0].sig.params, [ValType::ExternRef]);
    assert_eq!(info.exports[0].sig.results, [ValType::FuncRef]);
}

#[test]
fn vector_and_reference_types_at_a_boundary_make_version_4() {
    let mut chunk = provider("simd", &[]);
    chunk.manifest.exports.push(Export {
        name: "sum".into(),
        func_index: 0,
        sig: FuncSig {
            params: vec![ValType::V128],
            results: vec![ValType::I32],
        },
    });
    let bytes = write_image(&[chunk]).expect("valid");
    let image = Image::parse(&bytes).unwrap();
    assert_eq!(image.major_version(), 4);
    assert_eq!(
        image.chunks()[0].manifest.exports[0].sig.params,
        [ValType::V128]
    );
}
