//! Any byte string: parsing must return Ok or a typed error, never panic; a parsed image must
//! re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = chunk_image::Image::parse(data) {
        let chunks: Vec<_> = image.chunks().iter().map(|c| c.to_chunk()).collect();
        let again = chunk_image::write_image(&chunks).expect("a parsed image re-encodes");
        assert_eq!(again, data);
        for chunk in image.chunks() {
            let _ = chunk_image::validate_module(chunk.module);
        }
    }
});
