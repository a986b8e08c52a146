//! The QEMU machine atoll runs on, as one description shared by `run-qemu.sh` (through
//! `atoll-console`) and the test harness, so both boot exactly the same machine.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use super::numa::{NumaError, NumaLayout};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// OVMF's code image (read-only pflash); `OVMF_CODE` in the environment overrides it.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF's variable-store template, copied per run; `OVMF_VARS` in the environment overrides it.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The fw_cfg file that tells the kernel its TSC counts guest instructions (`--icount`).
pub const ICOUNT_FW_CFG: &str = "opt/atoll/icount";
/// The I/O port of QEMU's `isa-debug-exit` device: writing v exits QEMU with status (v << 1) | 1.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The firmware that boots the disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF.
    Uefi,
}

impl Firmware {
    /// The name used in image file names and on command lines: `bios` or `uefi`.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    /// Parses `bios` or `uefi`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "bios" => Some(Firmware::Bios),
            "uefi" => Some(Firmware::Uefi),
            _ => None,
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the guest's serial line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialMode {
    /// A terminal on stdio, multiplexed with the QEMU monitor (Ctrl-A X quits, Ctrl-A C monitor).
    Terminal,
    /// Plain stdin/stdout pipes, no monitor: for programs driving the console.
    Pipe,
    /// No serial port at all (a PC without a UART: the screen console's tests).
    Absent,
}

/// One QEMU machine: firmware, cores, memory, disk image and debugging options.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The BIOS or UEFI disk image to boot.
    pub image: PathBuf,
    /// The firmware the image is for.
    pub firmware: Firmware,
    /// Number of cores (`-smp`).
    pub smp: u32,
    /// Guest memory in QEMU syntax (`-m`), e.g. `1G`.
    pub mem: String,
    /// Count guest instructions (`-icount shift=0`) and tell the kernel so through fw_cfg.
    pub icount: bool,
    /// Wait for gdb on localhost:1234 (`-s -S`).
    pub gdb: bool,
    /// Use KVM and the host CPU instead of TCG.
    pub kvm: bool,
    /// End QEMU instead of resetting on a guest reboot or triple fault (`-no-reboot`).
    pub no_reboot: bool,
    /// NUMA nodes (`-numa`), set with [`MachineConfig::set_numa`]; `None`: no SRAT.
    pub numa: Option<NumaLayout>,
    /// Further QEMU arguments, appended last.
    pub extra_args: Vec<OsString>,
}

impl MachineConfig {
    /// The default machine (2 cores, 1 GiB, TCG) booting `image` with `firmware`.
    pub fn new(image: impl Into<PathBuf>, firmware: Firmware) -> Self {
        Self {
            image: image.into(),
            firmware,
            smp: 2,
            mem: "1G".into(),
            icount: false,
            gdb: false,
            kvm: false,
            no_reboot: false,
            numa: None,
            extra_args: Vec::new(),
        }
    }

    /// Splits this machine's cores and memory (as set now) evenly over `nodes` NUMA nodes.
    pub fn set_numa(&mut self, nodes: u32) -> Result<(), NumaError> {
        self.numa = Some(NumaLayout::new(nodes, self.smp, &self.mem)?);
        Ok(())
    }

    /// The QEMU command line for this machine. `vars` is the run's writable copy of the UEFI
    /// variable store (see [`FirmwareVars`]); it is required for UEFI.
    pub fn command(&self, serial: SerialMode, vars: Option<&FirmwareVars>) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(["-machine", "q35"]);
        if self.kvm {
            cmd.args(["-enable-kvm", "-cpu", "host"]);
        } else {
            cmd.args(["-cpu", "max"]);
        }
        cmd.arg("-m").arg(&self.mem);
        match &self.numa {
            Some(numa) => cmd.arg("-smp").arg(numa.smp_arg()).args(numa.args()),
            None => cmd.arg("-smp").arg(self.smp.to_string()),
        };
        cmd.args(["-display", "none"]);
        match serial {
            SerialMode::Terminal => cmd.args(["-serial", "mon:stdio"]),
            SerialMode::Pipe => cmd.args(["-serial", "stdio", "-monitor", "none"]),
            SerialMode::Absent => cmd.args(["-serial", "none", "-monitor", "none"]),
        };
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        if self.firmware == Firmware::Uefi {
            let code = env_path("OVMF_CODE", OVMF_CODE);
            let mut code_drive = OsString::from("if=pflash,format=raw,readonly=on,file=");
            code_drive.push(code);
            cmd.arg("-drive").arg(code_drive);
            if let Some(vars) = vars {
                let mut vars_drive = OsString::from("if=pflash,format=raw,file=");
                vars_drive.push(vars.path());
                cmd.arg("-drive").arg(vars_drive);
            }
        }
        // snapshot=on: guest writes go to a temporary overlay, so several machines (parallel
        // tests) can boot the same image and the image stays as built.
        let mut disk = OsString::from("format=raw,snapshot=on,file=");
        disk.push(&self.image);
        cmd.arg("-drive").arg(disk);
        if self.icount {
            cmd.args(["-icount", "shift=0"]);
            cmd.arg("-fw_cfg")
                .arg(format!("name={ICOUNT_FW_CFG},string=1"));
        }
        if self.gdb {
            cmd.args(["-s", "-S"]);
        }
        if self.no_reboot {
            cmd.arg("-no-reboot");
        }
        cmd.args(&self.extra_args);
        die_with_parent(&mut cmd);
        cmd
    }
}

/// Makes the child get SIGKILL when the thread that starts it exits (`PR_SET_PDEATHSIG`), so a
/// QEMU never outlives a killed test binary or console relay. Callers start QEMU from the thread
/// that owns the machine for its whole life (a test's thread, the relay's main thread).
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (prctl, getppid); it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nothing would signal us.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A per-run writable copy of OVMF's variable store, deleted when dropped.
#[derive(Debug)]
pub struct FirmwareVars {
    path: PathBuf,
}

impl FirmwareVars {
    /// Copies the OVMF variable-store template (`OVMF_VARS` or [`OVMF_VARS`]) into the system
    /// temporary directory under a name unique to this process and call.
    pub fn create() -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let template = env_path("OVMF_VARS", OVMF_VARS);
        let path = std::env::temp_dir().join(format!(
            "atoll-ovmf-vars-{}-{}.fd",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::copy(&template, &path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "copying the OVMF variable store {} (install OVMF: scripts/setup.sh): {e}",
                    template.display()
                ),
            )
        })?;
        Ok(Self { path })
    }

    /// The copy's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FirmwareVars {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn bios_defaults() {
        let cfg = MachineConfig::new("x.img", Firmware::Bios);
        let a = args(&cfg.command(SerialMode::Pipe, None)).join(" ");
        assert!(a.contains("-machine q35 -cpu max -m 1G -smp 2 -display none"));
        assert!(a.contains("-serial stdio -monitor none"));
        assert!(a.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.contains("-drive format=raw,snapshot=on,file=x.img"));
        assert!(!a.contains("pflash") && !a.contains("-no-shutdown") && !a.contains("icount"));
    }

    #[test]
    fn options() {
        let mut cfg = MachineConfig::new("x.img", Firmware::Uefi);
        cfg.icount = true;
        cfg.gdb = true;
        cfg.kvm = true;
        cfg.no_reboot = true;
        cfg.smp = 4;
        let a = args(&cfg.command(SerialMode::Terminal, None)).join(" ");
        assert!(a.contains("-enable-kvm -cpu host"));
        assert!(a.contains("-serial mon:stdio"));
        assert!(a.contains("if=pflash,format=raw,readonly=on,file="));
        assert!(a.contains("-icount shift=0 -fw_cfg name=opt/atoll/icount,string=1"));
        assert!(a.contains("-s -S") && a.contains("-no-reboot") && a.contains("-smp 4"));
        assert!(!a.contains("-numa"));
    }

    #[test]
    fn numa_nodes() {
        let mut cfg = MachineConfig::new("x.img", Firmware::Bios);
        cfg.smp = 4;
        cfg.set_numa(2).unwrap();
        let a = args(&cfg.command(SerialMode::Pipe, None)).join(" ");
        assert!(a.contains("-m 1G -smp 4,sockets=2,cores=2,threads=1 -object memory-backend-ram"));
        assert!(a.contains("-numa node,nodeid=1,memdev=numa-mem1 -numa cpu,node-id=1,socket-id=1"));
        assert!(cfg.set_numa(3).is_err());
    }
}
