//! Running atoll in QEMU from the host.
//!
//! - [`config`]: the QEMU machine (one description for `run-qemu.sh` and the tests).
//! - [`numa`]: splitting the machine into NUMA nodes (`--numa N`, [`Options::numa`]).
//! - [`checks`]: collecting a boot's failed checks, reported at once with the serial log.
//! - [`screen`]: the screen console through QEMU's monitor (screendump decoded with atoll's
//!   font, sendkey).
//! - [`scan`]: reading the serial console (prompts, fault reports, command output).
//! - [`prompts`]: how many prompts a piped line yields (the relay's count).
//! - [`reference`]: the host reference's results as the console prints them, background tasks'
//!   outcomes.
//! - [`options`]: what a test machine boots (options, prebuilt image paths, timeouts).
//! - [`kernel_elf`]: the kernel ELF behind the images, to check the addresses a fault report
//!   prints.
//! - [`machine`]: the test harness, [`Machine`], which boots prebuilt images and drives the
//!   console with a deadline on every wait.

pub mod checks;
pub mod config;
pub mod kernel_elf;
pub mod machine;
pub mod numa;
pub mod options;
pub mod prompts;
pub mod reference;
pub mod scan;
pub mod screen;
pub mod threads;

pub use checks::Checks;
pub use config::{Firmware, FirmwareVars, MachineConfig, SerialMode};

/// A parsed `--json` output (`serde_json`'s value type).
pub use serde_json::Value as Json;

/// Parses one `--json` output line.
pub fn parse_json(text: &str) -> Result<Json, serde_json::Error> {
    serde_json::from_str(text)
}
pub use machine::Machine;
pub use options::Options;
