//! `atoll-flash` on the host against a fake sysfs tree, mount table and device directory, where
//! plain files stand in for the disks: every refusal (root disk, mounted partition, mount through
//! a device-mapper device, non-removable, partition instead of disk, too small, not confirmed)
//! leaves the "device" untouched, and a confirmed write lands byte for byte and is verified.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tools::flash::{self, FlashError, Roots};

/// A fake machine: `sys/block`, `mounts`, `dev` under a fresh directory.
struct Fake {
    root: PathBuf,
}

impl Fake {
    fn new(test: &str) -> Self {
        let root = std::env::temp_dir().join(format!("atoll-flash-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("sys/block")).unwrap();
        fs::create_dir_all(root.join("dev/mapper")).unwrap();
        let fake = Self { root };
        // sda: the system disk, `/` on sda2.
        fake.disk(
            "sda",
            500 << 30,
            false,
            "ATA Samsung SSD",
            &["sda1", "sda2"],
        );
        // sdb: a stick with a mounted partition.
        fake.disk("sdb", 16 << 30, true, "SanDisk Cruzer", &["sdb1"]);
        // sdc: a free stick, the one to write.
        fake.disk("sdc", 64 << 20, true, "Kingston DataTraveler", &["sdc1"]);
        // sdd: an internal disk, not mounted.
        fake.disk("sdd", 64 << 20, false, "WDC WD10EZEX", &[]);
        // sde: a stick whose partition is opened with dm-crypt (dm-0), mounted through it.
        fake.disk("sde", 8 << 30, true, "Generic Flash", &["sde1"]);
        fake.disk("dm-0", 8 << 30, false, "", &[]);
        fs::create_dir_all(fake.sys("sde/sde1/holders/dm-0")).unwrap();
        fs::create_dir_all(fake.sys("dm-0/slaves/sde1")).unwrap();
        symlink("../dm-0", fake.root.join("dev/mapper/secret")).unwrap();
        // sdf: a stick too small for the image.
        fake.disk("sdf", 1 << 20, true, "Tiny", &[]);
        fs::write(
            fake.root.join("mounts"),
            "overlay /work overlay rw 0 0\n/dev/sda2 / ext4 rw 0 0\n/dev/sda1 /boot/efi vfat rw 0 0\n\
             /dev/sdb1 /media/user/My\\040Stick vfat rw 0 0\n/dev/mapper/secret /secret ext4 rw 0 0\n\
             proc /proc proc rw 0 0\n",
        )
        .unwrap();
        fake
    }

    fn sys(&self, rel: &str) -> PathBuf {
        self.root.join("sys/block").join(rel)
    }

    fn disk(&self, name: &str, bytes: u64, removable: bool, model: &str, parts: &[&str]) {
        let dir = self.sys(name);
        fs::create_dir_all(dir.join("device")).unwrap();
        fs::create_dir_all(dir.join("holders")).unwrap();
        fs::write(dir.join("size"), format!("{}\n", bytes / 512)).unwrap();
        fs::write(dir.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
        fs::write(dir.join("ro"), "0\n").unwrap();
        if !model.is_empty() {
            fs::write(dir.join("device/model"), format!("{model}   \n")).unwrap();
        }
        for p in parts {
            fs::create_dir_all(dir.join(p)).unwrap();
            fs::write(dir.join(p).join("partition"), "1\n").unwrap();
        }
        // The device node: a plain file holding a marker, to show it was not touched.
        fs::write(self.root.join("dev").join(name), b"untouched").unwrap();
    }

    fn roots(&self) -> Roots {
        Roots {
            sys_block: self.root.join("sys/block"),
            mounts: self.root.join("mounts"),
            dev: self.root.join("dev"),
        }
    }

    fn image(&self, len: usize) -> PathBuf {
        let mut x: u32 = 0x1234_5678;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as u8 | 1
            })
            .collect();
        let path = self.root.join("atoll-bios.img");
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs the tool with the fake roots; returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atoll-flash"))
            .args(args)
            .arg("--sys-block")
            .arg(self.root.join("sys/block"))
            .arg("--mounts")
            .arg(self.root.join("mounts"))
            .arg("--dev")
            .arg(self.root.join("dev"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn untouched(&self, name: &str) -> bool {
        fs::read(self.root.join("dev").join(name)).unwrap() == b"untouched"
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn list_shows_every_disk_and_why_it_is_refused() {
    let fake = Fake::new("list");
    let (code, out, err) = fake.run(&["--list"], b"");
    assert_eq!(code, 0, "{err}");
    let line = |disk: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(disk))
            .unwrap_or_else(|| panic!("no line for {disk}:\n{out}"))
            .to_owned()
    };
    assert!(
        line("sda").contains("holds /") && line("sda").contains("sda1,sda2"),
        "{out}"
    );
    assert!(
        line("sda").contains("500.0 GiB") && line("sda").contains("Samsung"),
        "{out}"
    );
    assert!(
        line("sdb").contains("mounted on /media/user/My Stick"),
        "{out}"
    );
    assert!(
        line("sdc").ends_with(" ok") && line("sdc").contains("yes"),
        "{out}"
    );
    assert!(line("sdd").contains("needs --force"), "{out}");
    assert!(line("sde").contains("mounted on /secret"), "{out}");
}

#[test]
fn refusals_leave_the_disks_untouched() {
    let fake = Fake::new("refuse");
    let image = fake.image(3 * 1024 * 1024 + 777);
    let img = path_str(&image);
    for (device, extra, want) in [
        ("sda", &[][..], "holds the root file system"),
        (
            "/dev/sdb",
            &[],
            "is mounted (/dev/sdb1 on /media/user/My Stick)",
        ),
        ("sde", &[], "is mounted (/dev/mapper/secret on /secret)"),
        ("sdd", &[], "not a removable disk"),
        ("sdc1", &[], "is a partition of sdc"),
        ("sdz", &[], "no disk `sdz`"),
        ("sdf", &["--force"], "holds 1048576 bytes, the image needs"),
        // --force does not override the root disk or a mount.
        ("sda", &["--force"], "holds the root file system"),
        ("sdb", &["--force"], "is mounted"),
    ] {
        let mut args = vec!["--device", device, "--image", img, "--yes"];
        args.extend_from_slice(extra);
        let (code, _, err) = fake.run(&args, b"");
        assert_eq!(code, 1, "{device} {extra:?} should be refused: {err}");
        assert!(
            err.contains("error: ") && err.contains(want),
            "{device}: want {want:?}, got {err}"
        );
    }
    for disk in ["sda", "sdb", "sdc", "sdd", "sde", "sdf"] {
        assert!(fake.untouched(disk), "{disk} was written");
    }
    // Not confirmed: the wrong name, or no answer.
    for answer in [&b"yes\n"[..], b"sdb\n", b""] {
        let (code, _, err) = fake.run(&["--device", "sdc", "--image", img], answer);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("type the disk name (sdc)") && err.contains("not confirmed"),
            "{err}"
        );
        assert!(fake.untouched("sdc"));
    }
}

#[test]
fn confirmed_write_lands_and_is_verified() {
    let fake = Fake::new("write");
    let image = fake.image(5 * 1024 * 1024 + 123);
    let (code, out, err) = fake.run(&["--device", "sdc", "--image", path_str(&image)], b"sdc\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("ALL DATA ON") && err.contains("Kingston DataTraveler"),
        "{err}"
    );
    assert!(err.contains("verified 5.0 MiB of 5.0 MiB (100%)"), "{err}");
    assert!(
        out.contains(&format!(
            "wrote and verified {} bytes",
            5 * 1024 * 1024 + 123
        )),
        "{out}"
    );
    assert_eq!(
        fs::read(fake.root.join("dev/sdc")).unwrap(),
        fs::read(&image).unwrap()
    );
    // A non-removable disk with --force --yes.
    let (code, _, err) = fake.run(
        &[
            "--device",
            "sdd",
            "--image",
            path_str(&image),
            "--force",
            "--yes",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fs::read(fake.root.join("dev/sdd")).unwrap(),
        fs::read(&image).unwrap()
    );
}

#[test]
fn verification_catches_a_changed_or_short_device() {
    let fake = Fake::new("verify");
    let image = fake.image(9 * 1024 * 1024);
    let device = fake.root.join("dev/sdc");
    let mut quiet = |_: u64, _: u64, _: &str| {};
    flash::write(&image, &device, &mut quiet).unwrap();
    assert_eq!(
        flash::verify(&image, &device, &mut quiet).unwrap().bytes,
        9 * 1024 * 1024
    );
    // One byte changed past the first block: reported at its offset.
    let mut bytes = fs::read(&device).unwrap();
    let at = 4 * 1024 * 1024 + 4097;
    bytes[at] ^= 0x40;
    fs::write(&device, &bytes).unwrap();
    match flash::verify(&image, &device, &mut quiet) {
        Err(FlashError::VerifyMismatch { offset }) => assert_eq!(offset, at as u64),
        other => panic!("expected a mismatch at {at}, got {other:?}"),
    }
    // A device shorter than the image (the write was cut off): a mismatch where it ends.
    bytes[at] ^= 0x40;
    bytes.truncate(1_000_000);
    fs::write(&device, &bytes).unwrap();
    match flash::verify(&image, &device, &mut quiet) {
        Err(FlashError::VerifyMismatch { offset }) => assert_eq!(offset, 1_000_000),
        other => panic!("expected a mismatch at 1000000, got {other:?}"),
    }
    // And the library's checks agree with the CLI's.
    let roots = fake.roots();
    assert!(matches!(
        flash::check_target(&roots, "sdb", 10, true),
        Err(FlashError::Mounted { .. })
    ));
    assert!(flash::check_target(&roots, "sdc", 10, false).is_ok());
}
