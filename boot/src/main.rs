//! `atoll-image`: builds atoll's BIOS and UEFI disk images.
//!
//! Usage: `atoll-image --kernel ELF [--ramdisk IMAGE] [--bios OUT] [--uefi OUT]`
//!
//! The chunk image is attached as the bootloader's ramdisk, so the kernel finds it at
//! `BootInfo::ramdisk_addr`. An empty chunk image is not attached (the bootloader cannot load a
//! 0-byte ramdisk): the kernel then boots without one and says so. The bootloader's own serial logging is turned off: the serial line
//! belongs to the kernel's console, and host tools parse it.

use std::path::PathBuf;
use std::process::ExitCode;

use bootloader::{BootConfig, DiskImageBuilder};

#[derive(Debug, Default)]
struct Args {
    kernel: Option<PathBuf>,
    ramdisk: Option<PathBuf>,
    bios: Option<PathBuf>,
    uefi: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{flag} needs a path"))
        };
        match flag.as_str() {
            "--kernel" => args.kernel = Some(value()?),
            "--ramdisk" => args.ramdisk = Some(value()?),
            "--bios" => args.bios = Some(value()?),
            "--uefi" => args.uefi = Some(value()?),
            "-h" | "--help" => {
                return Err(
                    "usage: atoll-image --kernel ELF [--ramdisk IMAGE] [--bios OUT] [--uefi OUT]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.kernel.is_none() {
        return Err("--kernel is required".into());
    }
    Ok(args)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let kernel = args.kernel.expect("checked in parse_args");
    let mut builder = DiskImageBuilder::new(kernel);
    if let Some(ramdisk) = args.ramdisk {
        let len = std::fs::metadata(&ramdisk)
            .map_err(|e| format!("ramdisk {}: {e}", ramdisk.display()))?
            .len();
        if !ramdisk.is_file() {
            return Err(format!("ramdisk {} is not a file", ramdisk.display()));
        }
        // The bootloader's stages cannot load a 0-byte ramdisk (BIOS and UEFI both stop before
        // the kernel runs, silently): boot without one, and the kernel reports that no chunk
        // image was loaded.
        if len == 0 {
            eprintln!(
                "atoll-image: {} is empty: the image boots without a chunk image",
                ramdisk.display()
            );
        } else {
            builder.set_ramdisk(ramdisk);
        }
    }
    let mut config = BootConfig::default();
    config.serial_logging = false;
    config.frame_buffer_logging = false;
    builder.set_boot_config(&config);
    if let Some(out) = args.bios {
        builder
            .create_bios_image(&out)
            .map_err(|e| format!("BIOS image {}: {e:#}", out.display()))?;
    }
    if let Some(out) = args.uefi {
        builder
            .create_uefi_image(&out)
            .map_err(|e| format!("UEFI image {}: {e:#}", out.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
