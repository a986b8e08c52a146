//! Compiles wasm files repeatedly on the host, for profiling the code generator
//! (`valgrind --tool=callgrind`, `perf record`):
//! `compile_loop [--guard] [--schedule] [--no-fuse] [--no-inline] [--no-jump-table] [-n N] FILE...`.
//! Prints the total wasm bytes, time and throughput (MB/s) per file.

use std::time::Instant;

use atoll_pae::Options;

fn main() {
    let mut options = Options::default();
    let mut iterations = 20u32;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-schedule" => options.schedule = false,
            "--schedule" => options.schedule = true,
            "--no-fuse" => options.fuse = false,
            "--no-jump-table" => options.jump_table = false,
            "--no-inline" => options.inline = false,
            "--guard" => options.guard_pages = true,
            "-n" => {
                iterations = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("-n needs a number"))
            }
            _ => files.push(a),
        }
    }
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| fail(&format!("{file}: {e}")));
        let mut code_bytes = 0;
        let start = Instant::now();
        for _ in 0..iterations {
            let module = atoll_pae::compile(&bytes, &options)
                .unwrap_or_else(|e| fail(&format!("{file}: {e}")));
            code_bytes = module.code.len();
        }
        let secs = start.elapsed().as_secs_f64() / f64::from(iterations);
        println!(
            "{file}: {} wasm bytes -> {code_bytes} code bytes, {:.3} ms per compile, {:.2} MB/s",
            bytes.len(),
            secs * 1e3,
            bytes.len() as f64 / secs / 1e6
        );
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
