//! Any byte string: parsing must return Ok or a typed error, never panic; a parsed image must
//! re-encode (chunks and programs) to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = chunk_image::Image::parse(data) {
        // Chunks and programs: an image with a programs section (versions 2 and 3) keeps it.
        let again = image.rewrite().expect("a parsed image re-encodes");
        assert_eq!(again, data);
        for chunk in image.chunks() {
            let _ = chunk_image::validate_module(chunk.module);
        }
    }
});
