//! dirstat: walks a directory tree (default `.`) and prints every entry with its size, line
//! count and an FNV-1a checksum, then totals per file extension.
//!
//! `dirstat [DIR] [--max-depth N]`; `dirstat --sleep-ms N` sleeps with `std::thread::sleep`
//! (WASI `poll_oneoff`) and says whether the monotonic clock advanced at least that much;
//! `dirstat --vars` prints the environment (`std::env::vars`, WASI `environ_get`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

#[derive(Default)]
struct Totals {
    files: u64,
    dirs: u64,
    bytes: u64,
    by_ext: BTreeMap<String, (u64, u64)>,
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn walk(dir: &Path, depth: usize, max_depth: usize, t: &mut Totals) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = fs::metadata(&path)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let indent = "  ".repeat(depth);
        if meta.is_dir() {
            t.dirs += 1;
            println!("{indent}{name}/");
            if depth + 1 < max_depth {
                walk(&path, depth + 1, max_depth, t)?;
            }
        } else {
            let data = fs::read(&path)?;
            assert_eq!(data.len() as u64, meta.len(), "metadata and contents agree");
            let lines = data.iter().filter(|&&b| b == b'\n').count();
            println!(
                "{indent}{name:<24} {:>7} bytes {lines:>5} lines  {:016x}",
                data.len(),
                fnv1a(&data)
            );
            t.files += 1;
            t.bytes += meta.len();
            let ext = path
                .extension()
                .map_or_else(|| "(none)".to_string(), |x| x.to_string_lossy().into_owned());
            let slot = t.by_ext.entry(ext).or_default();
            slot.0 += 1;
            slot.1 += meta.len();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mut root = ".".to_string();
    let mut max_depth = usize::MAX;
    let mut i = 1;
    while i < args.len() {
        if args[i] == "--sleep-ms" {
            let Some(ms) = args.get(i + 1).and_then(|n| n.parse::<u64>().ok()) else {
                eprintln!("dirstat: --sleep-ms needs a number");
                return ExitCode::from(64);
            };
            let start = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let enough = start.elapsed() >= std::time::Duration::from_millis(ms);
            println!("slept {ms} ms: at least that long: {enough}");
            return if enough { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
        if args[i] == "--vars" {
            for (k, v) in std::env::vars() {
                println!("{k}={v}");
            }
            return ExitCode::SUCCESS;
        }
        if args[i] == "--max-depth" {
            match args.get(i + 1).and_then(|n| n.parse().ok()) {
                Some(n) => max_depth = n,
                None => {
                    eprintln!("dirstat: --max-depth needs a number");
                    return ExitCode::from(64);
                }
            }
            i += 2;
        } else {
            root = args[i].clone();
            i += 1;
        }
    }
    let mut t = Totals::default();
    println!("{root}/");
    if let Err(e) = walk(Path::new(&root), 1, max_depth, &mut t) {
        eprintln!("dirstat: {root}: {e}");
        return ExitCode::from(1);
    }
    println!("{} files in {} directories, {} bytes", t.files, t.dirs, t.bytes);
    for (ext, (n, bytes)) in &t.by_ext {
        let avg = *bytes as f64 / *n as f64;
        println!("  .{ext:<8} {n:>3} files {bytes:>8} bytes (avg {avg:.1})");
    }
    ExitCode::SUCCESS
}
