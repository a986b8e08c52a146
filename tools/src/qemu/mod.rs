//! Running atoll in QEMU from the host.
//!
//! - [`config`]: the QEMU machine (one description for `run-qemu.sh` and the tests).
//! - [`json`]: a small JSON reader for `--json` output.
//! - [`scan`]: reading the serial console (prompts, fault reports, command output).
//! - [`options`]: what a test machine boots (options, prebuilt image paths, timeouts).
//! - [`machine`]: the test harness, [`Machine`], which boots prebuilt images and drives the
//!   console with a deadline on every wait.

pub mod config;
pub mod json;
pub mod machine;
pub mod options;
pub mod scan;

pub use config::{Firmware, FirmwareVars, MachineConfig, SerialMode};
pub use json::Json;
pub use machine::Machine;
pub use options::Options;
