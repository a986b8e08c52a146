//! `atoll-flash`: writes an atoll disk image (BIOS or UEFI) to a USB stick, safely.
//!
//! `atoll-flash --list` shows the disks; `atoll-flash --device sdX` shows what will be written
//! where, asks for the disk's name as confirmation (or takes `--yes`), writes, flushes, reads
//! back and verifies. Mounted disks, the disk holding `/`, disks in use by LVM/dm-crypt/RAID and
//! read-only disks are always refused; non-removable disks unless `--force`. See
//! `tools::flash`.
//!
//! `--sys-block`, `--mounts` and `--dev` replace `/sys/block`, `/proc/self/mounts` and `/dev`
//! (tests run against a fake tree).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use tools::flash::disks::{self, human_size};
use tools::flash::{self, Disk, FlashError, Roots};
use tools::qemu::options::repo_root;

const USAGE: &str = "usage: atoll-flash --list
       atoll-flash --device NAME [--firmware bios|uefi] [--chunks CHUNK-IMAGE | --image DISK-IMAGE]
                   [--yes] [--force]
  --list          the disks, with size, model, removable flag, partitions and whether they may be written
  --device NAME   the whole disk to write (`sdb` or `/dev/sdb`): ALL its data is replaced
  --firmware F    which image: bios (default; also boots most UEFI PCs with CSM) or uefi
  --chunks IMG    the chunk image the disk image carries (default: target/chunks/default.img)
  --image PATH    write this disk image instead
  --yes           do not ask for confirmation
  --force         allow a disk that is not marked removable
  --sys-block DIR, --mounts FILE, --dev DIR   other roots than /sys/block, /proc/self/mounts, /dev";

#[derive(Debug, Default)]
struct Args {
    list: bool,
    device: Option<String>,
    firmware: Option<String>,
    chunks: Option<PathBuf>,
    image: Option<PathBuf>,
    yes: bool,
    force: bool,
    roots: Roots,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--list" => a.list = true,
            "--device" => a.device = Some(value()?),
            "--firmware" => a.firmware = Some(value()?),
            "--chunks" => a.chunks = Some(value()?.into()),
            "--image" => a.image = Some(value()?.into()),
            "--yes" => a.yes = true,
            "--force" => a.force = true,
            "--sys-block" => a.roots.sys_block = value()?.into(),
            "--mounts" => a.roots.mounts = value()?.into(),
            "--dev" => a.roots.dev = value()?.into(),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if !a.list && a.device.is_none() {
        return Err(format!("--list or --device is required\n{USAGE}"));
    }
    if a.image.is_some() && (a.firmware.is_some() || a.chunks.is_some()) {
        return Err("--image excludes --firmware and --chunks".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("atoll-flash: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atoll-flash: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a disk may not be written, or `ok`.
fn status(d: &Disk) -> String {
    if d.holds_root {
        "refused: holds /".into()
    } else if !d.mounts.is_empty() {
        let at: Vec<&str> = d.mounts.iter().map(|m| m.target.as_str()).collect();
        format!("refused: mounted on {}", at.join(", "))
    } else if !d.holders.is_empty() {
        format!("refused: in use by {}", d.holders.join(", "))
    } else if d.read_only {
        "refused: read-only".into()
    } else if !d.removable {
        "not removable (needs --force)".into()
    } else {
        "ok".into()
    }
}

fn print_list(roots: &Roots) -> Result<(), FlashError> {
    let list = disks::list(roots).map_err(|error| FlashError::Io {
        what: "reading the disk list".into(),
        error,
    })?;
    println!(
        "{:<10} {:>10}  {:<9} {:<28} {:<16} status",
        "disk", "size", "removable", "model", "partitions"
    );
    for d in &list {
        let parts = if d.partitions.is_empty() {
            "-".to_owned()
        } else {
            d.partitions.join(",")
        };
        println!(
            "{:<10} {:>10}  {:<9} {:<28} {:<16} {}",
            d.name,
            human_size(d.size_bytes),
            if d.removable { "yes" } else { "no" },
            if d.model.is_empty() { "-" } else { &d.model },
            parts,
            status(d)
        );
    }
    Ok(())
}

/// The disk image to write and a description of it.
fn choose_image(args: &Args) -> Result<(PathBuf, String), String> {
    if let Some(image) = &args.image {
        return Ok((image.clone(), "given with --image".into()));
    }
    let firmware = args.firmware.as_deref().unwrap_or("bios");
    if firmware != "bios" && firmware != "uefi" {
        return Err(format!("--firmware must be bios or uefi, not `{firmware}`"));
    }
    let root = repo_root();
    let chunks = args
        .chunks
        .clone()
        .unwrap_or_else(|| root.join("target/chunks/default.img"));
    let stem = chunks
        .file_stem()
        .map_or_else(|| "default".into(), |s| s.to_string_lossy().into_owned());
    let image = root.join(format!("target/images/{stem}-{firmware}.img"));
    let stamp = image.with_extension("ramdisk");
    let carried = std::fs::read_to_string(&stamp)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| format!("unknown (no {})", stamp.display()));
    Ok((
        image,
        format!(
            "{} firmware, chunk image {carried}",
            firmware.to_uppercase()
        ),
    ))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.list {
        print_list(&args.roots)?;
        if args.device.is_none() {
            return Ok(());
        }
    }
    let Some(name) = &args.device else {
        return Ok(());
    };
    let (image, about) = choose_image(args)?;
    let image_bytes = std::fs::metadata(&image)
        .map_err(|e| {
            format!(
                "disk image {}: {e} (build it with scripts/build.sh --firmware all)",
                image.display()
            )
        })?
        .len();
    let disk = flash::check_target(&args.roots, name, image_bytes, args.force)?;
    let device = flash::device_path(&args.roots, &disk);
    eprintln!(
        "image:  {} ({}; {about})",
        image.display(),
        human_size(image_bytes)
    );
    eprintln!(
        "target: {} - {}, {}, {}, partitions: {}",
        device.display(),
        if disk.model.is_empty() {
            "no model"
        } else {
            &disk.model
        },
        human_size(disk.size_bytes),
        if disk.removable {
            "removable"
        } else {
            "NOT removable (--force)"
        },
        if disk.partitions.is_empty() {
            "none".to_owned()
        } else {
            disk.partitions.join(", ")
        }
    );
    eprintln!("ALL DATA ON {} WILL BE REPLACED.", device.display());
    if !args.yes {
        eprint!("type the disk name ({}) to write it: ", disk.name);
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != disk.name {
            return Err(FlashError::NotConfirmed.into());
        }
    }
    let mut last_pct = u64::MAX;
    let written = flash::write_and_verify(&image, &device, |done, total, phase| {
        let pct = done * 100 / total.max(1);
        if pct / 10 != last_pct / 10 || done == total {
            eprintln!(
                "  {phase} {} of {} ({pct}%)",
                human_size(done),
                human_size(total)
            );
            last_pct = pct;
        }
    })?;
    println!(
        "wrote and verified {} bytes on {}: safe to remove",
        written.bytes,
        device.display()
    );
    Ok(())
}
