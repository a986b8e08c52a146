//! Format version 3: programs with a default environment; and rewriting a parsed image from
//! its parts keeps its programs section (version 2 or 3) byte for byte.

mod common;

use chunk_image::{FormatError, Image, Program, write_image, write_image_with_programs};
use common::{Rng, random_chunks};

fn program(chunk: &str, env: &[&str]) -> Program {
    Program {
        chunk: chunk.into(),
        args: vec!["a1".into()],
        files: vec![("f/x.txt".into(), b"x\n".to_vec())],
        env: env.iter().map(|s| String::from(*s)).collect(),
    }
}

#[test]
fn environments_round_trip_in_version_3_and_only_there() {
    for seed in 0..50 {
        let chunks = random_chunks(&mut Rng::new(seed), 3);
        if chunks.len() < 2 {
            continue;
        }
        let (a, b) = (chunks[0].name.clone(), chunks[1].name.clone());
        let programs = vec![
            program(&a, &["LANG=C", "EMPTY=", "EQ=a=b"]),
            program(&b, &[]),
        ];
        let bytes = write_image_with_programs(&chunks, &programs).expect("valid");
        let image = Image::parse(&bytes).expect("parses");
        assert_eq!(image.major_version(), 3, "seed {seed}");
        assert_eq!(image.to_programs(), programs);
        assert_eq!(
            image.program(&a).map(|p| p.env.clone()),
            Some(vec!["LANG=C", "EMPTY=", "EQ=a=b"])
        );
        // Without any environment the same programs are version 2, as before.
        let plain: Vec<Program> = programs
            .iter()
            .map(|p| Program {
                env: Vec::new(),
                ..p.clone()
            })
            .collect();
        let v2 = write_image_with_programs(&chunks, &plain).unwrap();
        assert_eq!(Image::parse(&v2).unwrap().major_version(), 2);
        assert!(v2.len() < bytes.len());
    }
}

#[test]
fn rewriting_a_parsed_image_keeps_its_programs() {
    let chunks = random_chunks(&mut Rng::new(7), 3);
    let name = chunks[0].name.clone();
    for env in [&[][..], &["K=V"][..]] {
        let bytes = write_image_with_programs(&chunks, &[program(&name, env)]).unwrap();
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(image.rewrite().unwrap(), bytes, "env {env:?}");
        let again = write_image_with_programs(&image.to_chunks(), &image.to_programs()).unwrap();
        assert_eq!(again, bytes);
        // `to_chunks` alone is the chunks only: the programs are what `to_programs` adds.
        let chunks_only = write_image(&image.to_chunks()).unwrap();
        assert!(Image::parse(&chunks_only).unwrap().programs().is_empty());
    }
}

#[test]
fn bad_environment_entries_are_refused_by_writer_and_reader() {
    let chunks = random_chunks(&mut Rng::new(9), 2);
    assert!(!chunks.is_empty());
    let name = chunks[0].name.clone();
    for bad in ["NOEQUALS", "=v", "K=a\0b"] {
        assert!(
            matches!(
                write_image_with_programs(&chunks, &[program(&name, &[bad])]),
                Err(FormatError::BadProgram(_))
            ),
            "{bad:?}"
        );
    }
    // The reader refuses one smuggled in (checksums recomputed by hand would be needed, so
    // flip bytes instead: every flip is an error, never a panic).
    let bytes = write_image_with_programs(&chunks, &[program(&name, &["K=V"])]).unwrap();
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x21;
        assert!(Image::parse(&bad).is_err(), "flip at {at} went unnoticed");
    }
    for len in 0..bytes.len() {
        assert!(Image::parse(&bytes[..len]).is_err());
    }
}
