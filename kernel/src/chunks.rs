//! The chunk image the bootloader loaded as ramdisk: parsed and checked once at boot with
//! `chunk_image`, every module validated against the supported WebAssembly feature set.
//!
//! A corrupt image or an invalid module is reported (`chunks` prints `error: ...`) and the
//! kernel runs on without it; nothing in the image is trusted before these checks pass.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use chunk_image::{FormatError, Image};
use spin::Once;

use crate::platform;

/// The outcome of loading the image.
#[derive(Debug)]
pub enum Loaded {
    /// No ramdisk was given.
    Absent,
    /// The image failed its checks.
    Invalid(FormatError),
    /// The image parsed; `rejected` lists modules that failed validation, with the reason.
    Ready {
        /// The parsed image, borrowing from the ramdisk.
        image: Image<'static>,
        /// (chunk name, reason) for each module that failed validation.
        rejected: Vec<(String, String)>,
    },
}

static LOADED: Once<Loaded> = Once::new();

/// Parses and validates the ramdisk's chunk image. Call once at boot.
pub fn load() -> &'static Loaded {
    LOADED.call_once(|| {
        let Some(bytes) = platform::ramdisk_bytes() else {
            return Loaded::Absent;
        };
        match Image::parse(bytes) {
            Err(e) => Loaded::Invalid(e),
            Ok(image) => {
                let rejected = image
                    .chunks()
                    .iter()
                    .filter_map(|c| {
                        c.validate()
                            .err()
                            .map(|e| (String::from(c.name), format!("{e}")))
                    })
                    .collect();
                Loaded::Ready { image, rejected }
            }
        }
    })
}

/// The loaded image, if `load` ran.
pub fn loaded() -> &'static Loaded {
    LOADED.get().unwrap_or(&Loaded::Absent)
}
