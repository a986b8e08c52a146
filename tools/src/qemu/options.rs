//! What a test machine boots: options, the prebuilt images they select, and the timeouts.
//!
//! The image paths follow `scripts/build.sh`: the disk images for a chunk image are
//! `target/images/<chunk image file stem>-<bios|uefi>.img`, next to a `.ramdisk` file naming the
//! chunk image they carry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::Firmware;

/// Time from power-on to the first prompt with SeaBIOS under TCG (a release kernel needs ~3 s).
pub const BIOS_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time from power-on to the first prompt with OVMF under TCG (a release kernel needs ~6 s).
pub const UEFI_BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Time for one command's output and the next prompt.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for QEMU to exit after `poweroff` or `reboot`.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root: `ATOLL_ROOT` if set, else the parent of the `tools` crate.
pub fn repo_root() -> PathBuf {
    std::env::var_os("ATOLL_ROOT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        PathBuf::from,
    )
}

/// The default chunk image, built from `chunks/default.toml`.
pub fn default_chunk_image() -> PathBuf {
    repo_root().join("target/chunks/default.img")
}

/// The disk image `scripts/build.sh` makes for a chunk image and firmware:
/// `target/images/<chunk image file stem>-<bios|uefi>.img`.
pub fn disk_image(chunks: &Path, firmware: Firmware) -> PathBuf {
    let stem = chunks
        .file_stem()
        .map_or_else(|| "default".into(), |s| s.to_string_lossy().into_owned());
    repo_root()
        .join("target/images")
        .join(format!("{stem}-{}.img", firmware.name()))
}

/// Multiplies every timeout by `ATOLL_TIMEOUT_SCALE` (a float, default 1) for slow hosts.
pub(super) fn scaled(timeout: Duration) -> Duration {
    let scale = std::env::var("ATOLL_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && s.is_finite())
        .unwrap_or(1.0);
    timeout.mul_f64(scale)
}

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// Number of cores.
    pub smp: u32,
    /// Guest memory in QEMU syntax.
    pub mem: String,
    /// The chunk image (its disk image must have been built); `None` is the default image.
    pub chunks: Option<PathBuf>,
    /// Run with `-icount shift=0`.
    pub icount: bool,
    /// Reset the machine on a guest reboot, as a real PC does. Off by default: QEMU then runs
    /// with `-no-reboot` and exits on a reset, so a kernel that resets by accident ends the test.
    pub allow_reboot: bool,
    /// NUMA nodes to split cores and memory over (`None`: no SRAT).
    pub numa: Option<u32>,
    /// Further QEMU arguments.
    pub extra_args: Vec<String>,
}

impl Options {
    /// A BIOS machine with 2 cores and 1 GiB.
    pub fn bios() -> Self {
        Self::new(Firmware::Bios)
    }

    /// A UEFI machine with 2 cores and 1 GiB.
    pub fn uefi() -> Self {
        Self::new(Firmware::Uefi)
    }

    /// A machine with `firmware`, 2 cores and 1 GiB.
    pub fn new(firmware: Firmware) -> Self {
        Self {
            firmware,
            smp: 2,
            mem: "1G".into(),
            chunks: None,
            icount: false,
            allow_reboot: false,
            numa: None,
            extra_args: Vec::new(),
        }
    }

    /// Sets the number of cores.
    pub fn smp(mut self, cores: u32) -> Self {
        self.smp = cores;
        self
    }

    /// Sets the guest memory (QEMU syntax, e.g. `512M`).
    pub fn mem(mut self, mem: &str) -> Self {
        self.mem = mem.into();
        self
    }

    /// Boots with another chunk image (built with `scripts/build.sh --chunks IMAGE`).
    pub fn chunks(mut self, image: impl Into<PathBuf>) -> Self {
        self.chunks = Some(image.into());
        self
    }

    /// Counts guest instructions (`-icount shift=0`).
    pub fn icount(mut self) -> Self {
        self.icount = true;
        self
    }

    /// Lets a guest reboot reset the machine (no `-no-reboot`): see [`Machine::reboot_and_wait`].
    ///
    /// [`Machine::reboot_and_wait`]: super::Machine::reboot_and_wait
    pub fn allow_reboot(mut self) -> Self {
        self.allow_reboot = true;
        self
    }

    /// Splits the cores and memory evenly over `nodes` NUMA nodes (as `run-qemu.sh --numa`);
    /// the split is checked when the machine starts.
    pub fn numa(mut self, nodes: u32) -> Self {
        self.numa = Some(nodes);
        self
    }

    /// Adds a QEMU argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// The chunk image this machine boots with.
    pub fn chunk_image(&self) -> PathBuf {
        self.chunks.clone().unwrap_or_else(default_chunk_image)
    }

    /// The time to allow from power-on to the first prompt. Under `-icount` QEMU runs every
    /// vCPU on one host thread, so the firmware's multi-core start-up takes several times
    /// longer on a busy host: such boots get three times the time.
    pub fn boot_timeout(&self) -> Duration {
        let base = match self.firmware {
            Firmware::Bios => BIOS_BOOT_TIMEOUT,
            Firmware::Uefi => UEFI_BOOT_TIMEOUT,
        };
        scaled(if self.icount { base * 3 } else { base })
    }

    pub(super) fn label(&self) -> String {
        let mut label = format!("{}, smp {}, mem {}", self.firmware, self.smp, self.mem);
        if self.icount {
            label.push_str(", icount");
        }
        if let Some(n) = self.numa {
            label.push_str(&format!(", numa {n}"));
        }
        if self.allow_reboot {
            label.push_str(", reboots allowed");
        }
        label
    }
}

/// Fails unless `image` was built from `chunks` (per the `.ramdisk` file `scripts/build.sh`
/// writes next to it): two chunk images with the same file stem share a disk-image name.
#[track_caller]
pub(super) fn check_ramdisk_stamp(image: &Path, chunks: &Path) {
    let stamp = image.with_extension("ramdisk");
    let recorded = std::fs::read_to_string(&stamp).unwrap_or_default();
    let wanted = std::fs::canonicalize(chunks).unwrap_or_else(|e| {
        panic!("chunk image {}: {e}", chunks.display());
    });
    if Path::new(recorded.trim()) != wanted {
        panic!(
            "{} was not built from {}: run scripts/build.sh --chunks {}",
            image.display(),
            chunks.display(),
            chunks.display()
        );
    }
}
