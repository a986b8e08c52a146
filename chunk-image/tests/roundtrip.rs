//! Property tests: writing then reading gives back the same chunks and manifests.

mod common;

use chunk_image::{Chunk, FormatError, Image, Import, Provider, write_image};
use common::{Rng, random_chunks};

#[test]
fn write_then_read_round_trips() {
    for seed in 0..500 {
        let mut rng = Rng::new(seed);
        let chunks = random_chunks(&mut rng, 6);
        let bytes = write_image(&chunks).expect("generated chunks are valid");
        let image = Image::parse(&bytes).expect("written image parses");
        let back: Vec<Chunk> = image.chunks().iter().map(|c| c.to_chunk()).collect();
        assert_eq!(back, chunks, "seed {seed}");
        // The reader borrows the module bytes from the image instead of copying them.
        for view in image.chunks() {
            let range = bytes.as_ptr_range();
            assert!(view.module.is_empty() || range.contains(&view.module.as_ptr()));
        }
        // Writing what was read gives the same bytes.
        assert_eq!(write_image(&back).expect("rewrite"), bytes, "seed {seed}");
    }
}

fn one_chunk(name: &str) -> Chunk {
    let mut rng = Rng::new(7);
    let mut chunk = random_chunks(&mut rng, 1)
        .into_iter()
        .next()
        .unwrap_or_else(|| random_chunks(&mut Rng::new(8), 1).remove(0));
    chunk.name = name.into();
    chunk.manifest.imports.clear();
    chunk.manifest.exports.clear();
    chunk
}

fn import_from(provider: &str, name: &str) -> Import {
    Import {
        module: provider.into(),
        name: name.into(),
        sig: Default::default(),
        provider: Provider::Chunk(provider.into()),
    }
}

fn export(name: &str) -> chunk_image::Export {
    chunk_image::Export {
        name: name.into(),
        func_index: 0,
        sig: Default::default(),
    }
}

#[test]
fn writer_rejects_duplicate_names() {
    let err = write_image(&[one_chunk("a"), one_chunk("a")]).unwrap_err();
    assert_eq!(err, FormatError::DuplicateName("a".into()));
}

#[test]
fn writer_rejects_missing_providers() {
    let mut a = one_chunk("a");
    a.manifest.imports.push(import_from("nope", "f"));
    assert!(matches!(
        write_image(&[a.clone()]),
        Err(FormatError::MissingProvider { .. })
    ));
    // The provider exists but does not export the function.
    a.manifest.imports[0] = import_from("b", "f");
    assert!(matches!(
        write_image(&[a, one_chunk("b")]),
        Err(FormatError::MissingProvider { .. })
    ));
}

#[test]
fn writer_rejects_cycles() {
    let mut a = one_chunk("a");
    let mut b = one_chunk("b");
    let mut c = one_chunk("c");
    a.manifest.exports.push(export("fa"));
    b.manifest.exports.push(export("fb"));
    c.manifest.exports.push(export("fc"));
    a.manifest.imports.push(import_from("b", "fb"));
    b.manifest.imports.push(import_from("c", "fc"));
    assert!(write_image(&[a.clone(), b.clone(), c.clone()]).is_ok());
    c.manifest.imports.push(import_from("a", "fa"));
    assert!(matches!(
        write_image(&[a, b, c]),
        Err(FormatError::DependencyCycle(_))
    ));
    let mut selfish = one_chunk("s");
    selfish.manifest.exports.push(export("f"));
    selfish.manifest.imports.push(import_from("s", "f"));
    assert!(matches!(
        write_image(&[selfish]),
        Err(FormatError::DependencyCycle(_))
    ));
}

#[test]
fn kernel_imports_must_use_the_atoll_module() {
    let mut a = one_chunk("a");
    a.manifest.imports.push(Import {
        module: "env".into(),
        name: "print".into(),
        sig: Default::default(),
        provider: Provider::Kernel,
    });
    assert!(matches!(
        write_image(&[a]),
        Err(FormatError::ProviderMismatch { .. })
    ));
}

#[test]
fn empty_image_round_trips() {
    let bytes = write_image(&[]).expect("empty image");
    assert_eq!(bytes.len(), chunk_image::HEADER_LEN);
    assert!(Image::parse(&bytes).expect("parse").chunks().is_empty());
}
