//! Format version 3: the workload section (engine settings and traces). Images without one are
//! written as version 1 or 2 exactly as before.

mod common;

use chunk_image::{
    EngineSettings, HEADER_LEN_V3, Image, Program, Trace, Workload, write_image_full,
    write_image_with_programs,
};
use common::{Rng, random_chunks};

fn workload() -> Workload {
    Workload {
        settings: EngineSettings {
            cache_limit: 1 << 20,
            policy: 1,
            order: 2,
            high_permille: 500,
            low_permille: 200,
        },
        traces: vec![
            Trace {
                name: "regular".into(),
                body: "10*[a.b 1 think=100 ; c.d]\n".into(),
            },
            Trace {
                name: "shift".into(),
                body: "e.f".into(),
            },
        ],
    }
}

#[test]
fn workload_round_trips_in_version_3_with_programs() {
    for seed in 0..50 {
        let chunks = random_chunks(&mut Rng::new(seed), 3);
        let programs: Vec<Program> = chunks
            .iter()
            .take(1)
            .map(|c| Program {
                chunk: c.name.clone(),
                args: vec!["x".into()],
                files: vec![("f".into(), b"data".to_vec())],
                env: if seed % 2 == 0 {
                    vec!["K=V".into()]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let w = workload();
        let bytes = write_image_full(&chunks, &programs, Some(&w)).expect("valid");
        assert_eq!(
            u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize,
            HEADER_LEN_V3
        );
        let image = Image::parse(&bytes).expect("parses");
        assert_eq!(image.major_version(), 3);
        assert_eq!(image.workload().to_workload(), w);
        let back: Vec<Program> = image.programs().iter().map(|p| p.to_program()).collect();
        assert_eq!(back, programs);
        assert_eq!(image.to_chunks(), chunks);
        // Without a workload the writer produces what `write_image_with_programs` does, and
        // rewriting the parsed image gives back the same bytes.
        assert_eq!(
            write_image_full(&chunks, &programs, None).unwrap(),
            write_image_with_programs(&chunks, &programs).unwrap()
        );
        assert_eq!(image.rewrite().unwrap(), bytes);
    }
}

#[test]
fn every_corrupted_byte_of_a_version_3_image_is_an_error() {
    let chunks = random_chunks(&mut Rng::new(7), 2);
    let bytes = write_image_full(&chunks, &[], Some(&workload())).unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x5a;
        assert!(Image::parse(&bad).is_err(), "byte {i} flipped still parses");
    }
    for n in 0..bytes.len() {
        assert!(Image::parse(&bytes[..n]).is_err(), "prefix {n}");
    }
}

#[test]
fn bad_trace_names_are_refused_by_the_writer() {
    let chunks = random_chunks(&mut Rng::new(1), 2);
    let mut w = workload();
    w.traces[1].name = "regular".into();
    assert!(write_image_full(&chunks, &[], Some(&w)).is_err());
}
