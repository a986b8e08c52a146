//! Block devices as the kernel lists them in sysfs (`/sys/block`), and what mounts use them
//! (`/proc/self/mounts`). Both roots are parameters, so tests run against a fake tree.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the tool looks: sysfs's block directory, the mount table and the device directory.
#[derive(Debug, Clone)]
pub struct Roots {
    /// `/sys/block`.
    pub sys_block: PathBuf,
    /// `/proc/self/mounts`.
    pub mounts: PathBuf,
    /// `/dev`: a disk `NAME` is written through `dev/NAME`.
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sys_block: "/sys/block".into(),
            mounts: "/proc/self/mounts".into(),
            dev: "/dev".into(),
        }
    }
}

/// One mount: its source and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source as the mount table gives it (`/dev/sdb1`, `overlay`, ...).
    pub source: String,
    /// The mount point.
    pub target: String,
}

/// One whole disk from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The kernel's name (`sdb`, `nvme0n1`, `loop3`).
    pub name: String,
    /// Size in bytes (`size` counts 512-byte sectors whatever the logical block size).
    pub size_bytes: u64,
    /// Vendor and model from `device/`, trimmed; empty when sysfs has none.
    pub model: String,
    /// The `removable` flag (USB sticks and card readers set it).
    pub removable: bool,
    /// Read-only (`ro`).
    pub read_only: bool,
    /// Partition names (`sdb1`, `sdb2`).
    pub partitions: Vec<String>,
    /// Devices stacked on the disk or its partitions (`holders/`: LVM, dm-crypt, RAID).
    pub holders: Vec<String>,
    /// Mounts of the disk, its partitions or a device stacked on them.
    pub mounts: Vec<Mount>,
    /// Whether `/` is on this disk.
    pub holds_root: bool,
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn dir_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Decodes the octal escapes (`\040` for a space) the mount table uses.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mount table (`/proc/self/mounts` format).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = unescape_mount_field(fields.next()?);
            let target = unescape_mount_field(fields.next()?);
            Some(Mount { source, target })
        })
        .collect()
}

/// The block devices a kernel device name stands on, itself included: for `dm-0` its `slaves`
/// (recursively), for a partition the partition.
fn underlying(sys_block: &Path, name: &str, out: &mut BTreeSet<String>, depth: u32) {
    if depth > 8 || !out.insert(name.to_owned()) {
        return;
    }
    for slave in dir_names(&sys_block.join(name).join("slaves")) {
        underlying(sys_block, &slave, out, depth + 1);
    }
}

/// The kernel device name a mount source refers to: `/dev/sdb1` -> `sdb1`; a symlink under
/// the device directory (`/dev/mapper/root` -> `../dm-0`) is followed when it exists.
fn source_device(roots: &Roots, source: &str) -> Option<String> {
    let rest = source.strip_prefix("/dev/")?;
    let in_root = roots.dev.join(rest);
    let resolved = fs::canonicalize(&in_root).unwrap_or(in_root);
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// Lists the whole disks under `roots.sys_block`, with their partitions, holders and mounts.
/// RAM disks (`ram*`, `zram*`) are left out; loop devices are listed (a test stands in with
/// one) and are never removable.
pub fn list(roots: &Roots) -> std::io::Result<Vec<Disk>> {
    let mounts = parse_mounts(&fs::read_to_string(&roots.mounts)?);
    // For each mount, every kernel device under it.
    let mount_devices: Vec<(Mount, BTreeSet<String>)> = mounts
        .into_iter()
        .filter_map(|m| {
            let dev = source_device(roots, &m.source)?;
            let mut set = BTreeSet::new();
            underlying(&roots.sys_block, &dev, &mut set, 0);
            Some((m, set))
        })
        .collect();
    let mut disks = Vec::new();
    for name in dir_names(&roots.sys_block) {
        if name.starts_with("ram") || name.starts_with("zram") {
            continue;
        }
        let dir = roots.sys_block.join(&name);
        let sectors: u64 = read_trim(&dir.join("size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let model = [
            read_trim(&dir.join("device/vendor")),
            read_trim(&dir.join("device/model")),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        let partitions: Vec<String> = dir_names(&dir)
            .into_iter()
            .filter(|p| dir.join(p).join("partition").is_file())
            .collect();
        let mut holders = dir_names(&dir.join("holders"));
        for p in &partitions {
            holders.extend(dir_names(&dir.join(p).join("holders")));
        }
        let own: BTreeSet<&str> = std::iter::once(name.as_str())
            .chain(partitions.iter().map(String::as_str))
            .collect();
        let disk_mounts: Vec<Mount> = mount_devices
            .iter()
            .filter(|(_, devs)| devs.iter().any(|d| own.contains(d.as_str())))
            .map(|(m, _)| m.clone())
            .collect();
        let holds_root = disk_mounts.iter().any(|m| m.target == "/");
        disks.push(Disk {
            removable: read_trim(&dir.join("removable")).as_deref() == Some("1"),
            read_only: read_trim(&dir.join("ro")).as_deref() == Some("1"),
            size_bytes: sectors * 512,
            model,
            partitions,
            holders,
            mounts: disk_mounts,
            holds_root,
            name,
        });
    }
    Ok(disks)
}

/// A size for people: `14.9 GiB`, `512 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_escapes() {
        let m =
            parse_mounts("/dev/sdb1 /media/My\\040Stick vfat rw 0 0\noverlay / overlay rw 0 0\n");
        assert_eq!(m[0].target, "/media/My Stick");
        assert_eq!(m[1].source, "overlay");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(16 << 30), "16.0 GiB");
        assert_eq!(human_size(1536 << 10), "1.5 MiB");
    }
}
