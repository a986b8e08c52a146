//! Format version 2: the programs section (default arguments and read-only files of command
//! chunks). Version-1 images (no programs) are still written and read as before.

mod common;

use chunk_image::{
    FormatError, HEADER_LEN, HEADER_LEN_V2, Image, Program, write_image, write_image_with_programs,
};
use common::{Rng, random_chunks};

fn programs_for(names: &[String]) -> Vec<Program> {
    names
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, n)| Program {
            chunk: n.clone(),
            args: vec![format!("arg{i}"), "two words".into(), String::new()],
            files: vec![
                ("data/a.txt".into(), b"alpha\n".to_vec()),
                ("data/sub/b.bin".into(), vec![0, 1, 2, 255]),
                ("top".into(), Vec::new()),
            ],
            env: Vec::new(),
        })
        .collect()
}

#[test]
fn programs_round_trip_in_version_2() {
    for seed in 0..100 {
        let chunks = random_chunks(&mut Rng::new(seed), 4);
        let names: Vec<String> = chunks.iter().map(|c| c.name.clone()).collect();
        let programs = programs_for(&names);
        let bytes = write_image_with_programs(&chunks, &programs).expect("valid");
        let image = Image::parse(&bytes).expect("parses");
        let expect_major = if programs.is_empty() { 1 } else { 2 };
        assert_eq!(image.major_version(), expect_major, "seed {seed}");
        let back: Vec<Program> = image.programs().iter().map(|p| p.to_program()).collect();
        assert_eq!(back, programs);
        assert_eq!(image.to_chunks(), chunks);
        if let Some(p) = programs.first() {
            assert_eq!(image.program(&p.chunk).map(|v| v.args.len()), Some(3));
        }
    }
}

#[test]
fn without_programs_the_image_is_version_1_as_before() {
    let chunks = random_chunks(&mut Rng::new(3), 3);
    let bytes = write_image_with_programs(&chunks, &[]).unwrap();
    assert_eq!(bytes, write_image(&chunks).unwrap());
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
    assert_eq!(
        u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize,
        HEADER_LEN
    );
    let image = Image::parse(&bytes).unwrap();
    assert_eq!(image.major_version(), 1);
    assert!(image.programs().is_empty());
}

fn one_program_image() -> Vec<u8> {
    let chunks = random_chunks(&mut Rng::new(11), 2);
    let names: Vec<String> = chunks.iter().map(|c| c.name.clone()).collect();
    write_image_with_programs(&chunks, &programs_for(&names[..1])).unwrap()
}

#[test]
fn every_corrupted_byte_is_an_error_never_a_panic() {
    let bytes = one_program_image();
    assert_eq!(
        u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize,
        HEADER_LEN_V2
    );
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5A;
        assert!(Image::parse(&bad).is_err(), "flip at {at} went unnoticed");
    }
    for len in 0..bytes.len() {
        assert!(Image::parse(&bytes[..len]).is_err());
    }
}

#[test]
fn program_rules_are_enforced_by_the_writer() {
    let chunks = random_chunks(&mut Rng::new(5), 2);
    let name = chunks[0].name.clone();
    let with = |files: Vec<(&str, &[u8])>| {
        write_image_with_programs(
            &chunks,
            &[Program {
                chunk: name.clone(),
                args: vec![],
                files: files
                    .into_iter()
                    .map(|(p, d)| (p.into(), d.to_vec()))
                    .collect(),
                env: vec![],
            }],
        )
    };
    for bad in ["", "/abs", "a//b", "a/../b", "./a", "a/"] {
        assert!(
            matches!(with(vec![(bad, b"")]), Err(FormatError::BadProgram(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        with(vec![("a", b""), ("a", b"")]),
        Err(FormatError::BadProgram(_))
    ));
    assert!(matches!(
        with(vec![("a", b""), ("a/b", b"")]),
        Err(FormatError::BadProgram(_))
    ));
    assert!(with(vec![("a", b""), ("a-b/c", b""), ("ab", b"")]).is_ok());
    let unknown = Program {
        chunk: "no such chunk".into(),
        ..Program::default()
    };
    assert!(matches!(
        write_image_with_programs(&chunks, &[unknown]),
        Err(FormatError::BadProgram(_))
    ));
    let twice = Program {
        chunk: name.clone(),
        ..Program::default()
    };
    assert!(matches!(
        write_image_with_programs(&chunks, &[twice.clone(), twice]),
        Err(FormatError::BadProgram(_))
    ));
}

#[test]
fn unknown_major_versions_are_refused() {
    let mut bytes = one_program_image();
    bytes[8] = 5;
    assert!(matches!(
        Image::parse(&bytes),
        Err(FormatError::UnsupportedVersion { major: 5, .. })
    ));
}
