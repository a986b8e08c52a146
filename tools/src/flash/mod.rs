//! `atoll-flash`: writing a disk image to a USB stick without ever writing the wrong disk.
//!
//! A target must be a whole disk listed in sysfs. It is refused when any of its partitions (or a
//! device stacked on it: LVM, dm-crypt, RAID) is mounted, when it holds `/`, when something is
//! stacked on it, when it is read-only or smaller than the image, and, unless forced, when
//! it is not removable. The image is written in whole, flushed to the device (`fsync`), its
//! cached pages dropped, and read back and compared byte for byte.
//!
//! - [`disks`]: listing disks from sysfs and the mount table (roots injectable for tests).

pub mod disks;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use disks::{Disk, Roots};

/// Bytes per write and per read-back comparison.
const BLOCK_BYTES: usize = 4 << 20;

/// Why a disk is refused or a write failed.
#[derive(Debug)]
pub enum FlashError {
    /// No such disk in sysfs.
    NoSuchDisk(String),
    /// The name is a partition, not a whole disk.
    Partition { name: String, disk: String },
    /// Mounted (the disk, a partition, or something stacked on it).
    Mounted { disk: String, mounts: Vec<String> },
    /// `/` is on it.
    HoldsRoot(String),
    /// Other devices are stacked on it.
    Held { disk: String, holders: Vec<String> },
    /// Not removable and `--force` not given.
    NotRemovable(String),
    /// Read-only.
    ReadOnly(String),
    /// The image does not fit.
    TooSmall {
        disk: String,
        disk_bytes: u64,
        image_bytes: u64,
    },
    /// The user did not confirm.
    NotConfirmed,
    /// Reading back found different bytes.
    VerifyMismatch { offset: u64 },
    /// I/O on the image or the device.
    Io { what: String, error: std::io::Error },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::NoSuchDisk(n) => write!(f, "no disk `{n}` (see `atoll-flash --list`)"),
            FlashError::Partition { name, disk } => write!(
                f,
                "`{name}` is a partition of {disk}: give the whole disk, `{disk}`"
            ),
            FlashError::Mounted { disk, mounts } => write!(
                f,
                "{disk} is mounted ({}): unmount it first",
                mounts.join(", ")
            ),
            FlashError::HoldsRoot(d) => write!(f, "{d} holds the root file system `/`: refused"),
            FlashError::Held { disk, holders } => write!(
                f,
                "{disk} is in use by {} (LVM, dm-crypt or RAID): refused",
                holders.join(", ")
            ),
            FlashError::NotRemovable(d) => write!(
                f,
                "{d} is not a removable disk: refused (pass --force if you are sure)"
            ),
            FlashError::ReadOnly(d) => write!(f, "{d} is read-only"),
            FlashError::TooSmall {
                disk,
                disk_bytes,
                image_bytes,
            } => write!(
                f,
                "{disk} holds {disk_bytes} bytes, the image needs {image_bytes}"
            ),
            FlashError::NotConfirmed => write!(f, "not confirmed: nothing written"),
            FlashError::VerifyMismatch { offset } => write!(
                f,
                "verification failed: the device differs from the image at byte {offset}"
            ),
            FlashError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for FlashError {}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FlashError {
    let what = what.into();
    move |error| FlashError::Io { what, error }
}

/// The disk `name` (`sdb` or `/dev/sdb`) if it may be written with an image of `image_bytes`.
pub fn check_target(
    roots: &Roots,
    name: &str,
    image_bytes: u64,
    force: bool,
) -> Result<Disk, FlashError> {
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    let disks = disks::list(roots).map_err(io("reading the disk list"))?;
    let Some(disk) = disks.iter().find(|d| d.name == name) else {
        if let Some(parent) = disks
            .iter()
            .find(|d| d.partitions.iter().any(|p| p == name))
        {
            return Err(FlashError::Partition {
                name: name.to_owned(),
                disk: parent.name.clone(),
            });
        }
        return Err(FlashError::NoSuchDisk(name.to_owned()));
    };
    if disk.holds_root {
        return Err(FlashError::HoldsRoot(disk.name.clone()));
    }
    if !disk.mounts.is_empty() {
        return Err(FlashError::Mounted {
            disk: disk.name.clone(),
            mounts: disk
                .mounts
                .iter()
                .map(|m| format!("{} on {}", m.source, m.target))
                .collect(),
        });
    }
    if !disk.holders.is_empty() {
        return Err(FlashError::Held {
            disk: disk.name.clone(),
            holders: disk.holders.clone(),
        });
    }
    if disk.read_only {
        return Err(FlashError::ReadOnly(disk.name.clone()));
    }
    if !disk.removable && !force {
        return Err(FlashError::NotRemovable(disk.name.clone()));
    }
    if disk.size_bytes < image_bytes {
        return Err(FlashError::TooSmall {
            disk: disk.name.clone(),
            disk_bytes: disk.size_bytes,
            image_bytes,
        });
    }
    Ok(disk.clone())
}

/// The path the disk is written through.
pub fn device_path(roots: &Roots, disk: &Disk) -> PathBuf {
    roots.dev.join(&disk.name)
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes written and verified.
    pub bytes: u64,
}

/// Writes `image` to `device` from offset 0, flushes it, drops the cached pages and compares
/// what reads back ([`write`] then [`verify`]). `progress(bytes_done, total, phase)` is called
/// after each block.
pub fn write_and_verify(
    image: &Path,
    device: &Path,
    mut progress: impl FnMut(u64, u64, &str),
) -> Result<Written, FlashError> {
    write(image, device, &mut progress)?;
    verify(image, device, &mut progress)
}

fn open_image(image: &Path) -> Result<(File, u64), FlashError> {
    let src = File::open(image).map_err(io(format!("opening {}", image.display())))?;
    let total = src
        .metadata()
        .map_err(io(format!("reading {}", image.display())))?
        .len();
    Ok((src, total))
}

/// Opens the device; a block device exclusively (`O_EXCL`: the kernel refuses while anything
/// has it mounted or open exclusively).
fn open_device(device: &Path, write: bool) -> Result<File, FlashError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let is_block = std::fs::metadata(device).is_ok_and(|m| m.file_type().is_block_device());
    let mut options = OpenOptions::new();
    options.read(true).write(write);
    if is_block {
        options.custom_flags(libc::O_EXCL);
    }
    options
        .open(device)
        .map_err(io(format!("opening {}", device.display())))
}

/// Writes `image` to `device` from offset 0 and flushes it to the device (`fsync`).
pub fn write(
    image: &Path,
    device: &Path,
    progress: &mut impl FnMut(u64, u64, &str),
) -> Result<Written, FlashError> {
    let (mut src, total) = open_image(image)?;
    let mut dst = open_device(device, true)?;
    let what = format!("writing {}", device.display());
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut done = 0u64;
    loop {
        let n =
            read_full(&mut src, &mut buf).map_err(io(format!("reading {}", image.display())))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(io(what.clone()))?;
        done += n as u64;
        progress(done, total, "written");
    }
    dst.sync_all()
        .map_err(io(format!("flushing {}", device.display())))?;
    Ok(Written { bytes: done })
}

/// Drops the device's cached pages and compares its first bytes with `image`.
pub fn verify(
    image: &Path,
    device: &Path,
    progress: &mut impl FnMut(u64, u64, &str),
) -> Result<Written, FlashError> {
    let (mut src, total) = open_image(image)?;
    let mut dst = open_device(device, false)?;
    drop_cache(&dst);
    dst.seek(SeekFrom::Start(0))
        .map_err(io(format!("reading back {}", device.display())))?;
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut back = vec![0u8; BLOCK_BYTES];
    let mut checked = 0u64;
    let verify_what = format!("reading back {}", device.display());
    loop {
        let n =
            read_full(&mut src, &mut buf).map_err(io(format!("reading {}", image.display())))?;
        if n == 0 {
            break;
        }
        let m = read_full(&mut dst, &mut back[..n]).map_err(io(verify_what.clone()))?;
        if let Some(i) = (0..n).find(|&i| i >= m || buf[i] != back[i]) {
            return Err(FlashError::VerifyMismatch {
                offset: checked + i as u64,
            });
        }
        checked += n as u64;
        progress(checked, total, "verified");
    }
    Ok(Written { bytes: checked })
}

/// Asks the kernel to forget the file's cached pages, so the read-back comes from the device.
fn drop_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only gives the kernel advice about an open descriptor we own.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
