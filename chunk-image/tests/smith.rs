//! Random valid modules from wasm-smith: everything generated within the supported feature set
//! validates, analyzes and round-trips through an image; modules using other proposals never
//! make validation panic.

mod common;

use arbitrary::Unstructured;
use chunk_image::{Chunk, Image, Manifest, Resources, analyze_module, write_image};
use common::Rng;
use wasm_smith::{Config, Module};

fn supported() -> Config {
    Config {
        simd_enabled: false,
        relaxed_simd_enabled: false,
        reference_types_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        tail_call_enabled: false,
        memory64_enabled: false,
        wide_arithmetic_enabled: false,
        extended_const_enabled: false,
        custom_page_sizes_enabled: false,
        compact_imports_enabled: false,
        // Chunks import only functions; keep the generator from importing anything else.
        max_imports: 0,
        max_memories: 1,
        max_tables: 1,
        ..Config::default()
    }
}

fn generate(config: &Config, seed: u64) -> Option<Vec<u8>> {
    let data = Rng::new(seed).bytes(2048);
    let mut u = Unstructured::new(&data);
    Module::new(config.clone(), &mut u)
        .ok()
        .map(|m| m.to_bytes())
}

#[test]
fn supported_modules_validate_and_round_trip() {
    let config = supported();
    let mut chunks = Vec::new();
    for seed in 0..300 {
        let Some(bytes) = generate(&config, seed) else {
            continue;
        };
        let info = analyze_module(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        chunks.push(Chunk {
            name: format!("m{seed}"),
            module: bytes,
            manifest: Manifest {
                exports: info.exports,
                call_graph: info.call_graph,
                resources: Resources {
                    memory_pages: info.memory_pages,
                    max_memory_pages: info.max_memory_pages,
                    ..Resources::default()
                },
                ..Manifest::default()
            },
        });
    }
    assert!(
        chunks.len() > 250,
        "only {} modules generated",
        chunks.len()
    );
    let image = write_image(&chunks).expect("write");
    let parsed = Image::parse(&image).expect("parse");
    assert_eq!(parsed.to_chunks(), chunks);
    for chunk in parsed.chunks() {
        chunk.validate().expect("still valid");
    }
}

#[test]
fn other_proposals_never_panic() {
    let config = Config {
        max_imports: 3,
        ..Config::default()
    };
    let mut rejected = 0;
    for seed in 0..300 {
        if let Some(bytes) = generate(&config, seed + 10_000) {
            rejected += usize::from(analyze_module(&bytes).is_err());
        }
    }
    assert!(rejected > 0);
}
