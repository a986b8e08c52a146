//! Hundreds of corrupted images: every one must give an error, none may panic.

mod common;

use chunk_image::{FormatError, Image, write_image};
use common::{Rng, random_chunks};

fn sample_image() -> Vec<u8> {
    // Pick a seed that gives several chunks with imports, so every section is non-trivial.
    for seed in 0.. {
        let chunks = random_chunks(&mut Rng::new(seed), 6);
        let imports: usize = chunks.iter().map(|c| c.manifest.imports.len()).sum();
        if chunks.len() >= 4 && imports >= 4 {
            return write_image(&chunks).expect("valid chunks");
        }
    }
    unreachable!()
}

#[test]
fn every_single_bit_flip_is_detected() {
    let image = sample_image();
    assert!(Image::parse(&image).is_ok());
    let mut rng = Rng::new(1);
    for at in 0..image.len() {
        let mut bad = image.clone();
        bad[at] ^= 1 << rng.below(8);
        assert!(
            Image::parse(&bad).is_err(),
            "flip at byte {at} not detected"
        );
    }
}

#[test]
fn every_truncation_is_detected() {
    let image = sample_image();
    for len in 0..image.len() {
        assert!(Image::parse(&image[..len]).is_err(), "truncation to {len}");
    }
    let mut longer = image.clone();
    longer.push(0);
    assert!(Image::parse(&longer).is_err());
}

#[test]
fn random_splices_and_multi_byte_damage_are_detected() {
    let image = sample_image();
    let other = write_image(&random_chunks(&mut Rng::new(99), 6)).expect("valid");
    let mut rng = Rng::new(2);
    let mut tried = 0;
    for _ in 0..2000 {
        let mut bad = image.clone();
        match rng.below(4) {
            0 => {
                // Overwrite a range with bytes from another image.
                let len = 1 + rng.below(32);
                let from = rng.below(other.len().saturating_sub(len).max(1));
                let to = rng.below(bad.len().saturating_sub(len).max(1));
                let src = &other[from..(from + len).min(other.len())];
                let end = (to + src.len()).min(bad.len());
                bad[to..end].copy_from_slice(&src[..end - to]);
            }
            1 => {
                // Duplicate a range of the image in place (insert).
                let at = rng.below(bad.len());
                let len = 1 + rng.below(16);
                let piece: Vec<u8> = bad[at..(at + len).min(bad.len())].to_vec();
                bad.splice(at..at, piece);
            }
            2 => {
                // Remove a range.
                let at = rng.below(bad.len());
                let len = 1 + rng.below(16);
                bad.drain(at..(at + len).min(bad.len()));
            }
            _ => {
                // Several random byte writes.
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bad.len());
                    bad[at] = rng.next() as u8;
                }
            }
        }
        if bad == image {
            continue;
        }
        tried += 1;
        assert!(Image::parse(&bad).is_err(), "splice not detected");
    }
    assert!(tried > 1000);
}

#[test]
fn header_errors_are_typed() {
    let image = sample_image();
    let mut bad = image.clone();
    bad[0] = b'X';
    assert_eq!(Image::parse(&bad).unwrap_err(), FormatError::BadMagic);
    let mut bad = image.clone();
    bad[8] = 5;
    assert_eq!(
        Image::parse(&bad).unwrap_err(),
        FormatError::UnsupportedVersion { major: 5, minor: 0 }
    );
    // A version-1 image claiming version 2 has the wrong header length for it.
    let mut bad = image.clone();
    bad[8] = 2;
    assert_eq!(
        Image::parse(&bad).unwrap_err(),
        FormatError::BadHeader("header length")
    );
    let mut bad = image.clone();
    bad[20] ^= 0x10;
    assert!(matches!(
        Image::parse(&bad),
        Err(FormatError::HeaderChecksum { .. })
    ));
    assert!(matches!(
        Image::parse(&image[..10]),
        Err(FormatError::Truncated { .. })
    ));
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng::new(3);
    for _ in 0..2000 {
        let len = rng.below(400);
        let mut bytes = rng.bytes(len);
        if rng.below(2) == 0 && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&chunk_image::MAGIC);
        }
        assert!(Image::parse(&bytes).is_err());
        let _ = chunk_image::validate_module(&bytes);
    }
}
