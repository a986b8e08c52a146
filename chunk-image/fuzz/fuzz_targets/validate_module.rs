//! Any byte string as a module: validation and analysis must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chunk_image::analyze_module(data);
});
