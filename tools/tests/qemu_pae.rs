//! The assembly engine in QEMU: every export of the default chunk set is assembled in the
//! kernel and run on a chunk thread through the console's `run`, and what it prints must be
//! exactly what the host reference gives (the expectations in `chunks/default.toml`, which the
//! host tests check against wasmi). Every trap kind (the `traps` chunk) ends its task with
//! `error: trap: ...` and the next command works.
//!
//! Run alone with `cargo test -p tools --release --test qemu_pae` after `./run-tests.sh` or
//! `scripts/build.sh` built the images.

use chunk_image::Image;
use tools::chunkc::manifest;
use tools::qemu::{Json, Machine, Options, parse_json};

/// The console line and the output the kernel must print for one expectation.
struct Case {
    command: String,
    prints: Vec<String>,
    /// Expected results line, or `None` when a trap is expected.
    results: Option<String>,
    trap: Option<String>,
    /// The chunk shares state with others (a linked group, whose instances live from task to
    /// task): `groups reset` first, as every expectation runs from fresh state.
    in_group: bool,
}

/// Runs one case's command (after resetting its group when it is in one).
fn run_case(m: &mut Machine, case: &Case) -> String {
    if case.in_group {
        let chunk = case.command["run ".len()..]
            .split('.')
            .next()
            .unwrap_or_default();
        m.command(&format!("groups reset {chunk}"));
    }
    m.command(&case.command)
}

fn cases() -> Vec<Case> {
    let root = tools::qemu::options::repo_root();
    let file = manifest::load(&root.join("chunks/default.toml")).expect("chunks/default.toml");
    let image_path = tools::qemu::options::default_chunk_image();
    let bytes = std::fs::read(&image_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run ./run-tests.sh or scripts/build.sh first)",
            image_path.display()
        )
    });
    let image = Image::parse(&bytes).expect("default image parses");
    let groups = chunk_image::linked_groups(image.chunks().iter().map(|c| (c.name, &c.manifest)));
    let mut cases = Vec::new();
    for entry in &file.chunks {
        let in_group = image
            .chunks()
            .iter()
            .position(|c| c.name == entry.name)
            .is_some_and(|i| groups[i].is_some());
        for expect in &entry.expect {
            let sig = &image
                .chunk(&entry.name)
                .and_then(|c| c.manifest.exports.iter().find(|e| e.name == expect.call))
                .unwrap_or_else(|| panic!("{}.{} is not exported", entry.name, expect.call))
                .sig;
            let args = expect
                .arg_values(&sig.params)
                .expect("arguments fit the signature");
            let mut command = format!("run {}.{}", entry.name, expect.call);
            for a in &args {
                command.push(' ');
                command.push_str(&a.to_string());
            }
            let results = match expect.trap {
                Some(_) => None,
                None => {
                    let values = expect.result_values(&sig.results).expect("results fit");
                    let texts: Vec<String> = values.iter().map(ToString::to_string).collect();
                    Some(texts.join(" "))
                }
            };
            cases.push(Case {
                command,
                prints: expect.prints.clone(),
                results,
                trap: expect.trap.clone(),
                in_group,
            });
        }
    }
    cases
}

fn check(case: &Case, output: &str) -> Result<(), String> {
    let lines: Vec<&str> = output.lines().map(str::trim_end).collect();
    let printed = lines.len().saturating_sub(1);
    if lines[..printed] != case.prints.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        return Err(format!(
            "`{}`: printed {:?}, expected {:?}",
            case.command,
            &lines[..printed],
            case.prints
        ));
    }
    let last = lines.last().copied().unwrap_or("");
    match (&case.results, &case.trap) {
        (Some(want), _) if last == want => Ok(()),
        (None, Some(trap)) if last.starts_with("error: trap: ") && last.contains(trap.as_str()) => {
            Ok(())
        }
        _ => Err(format!(
            "`{}`: got {last:?}, expected {}",
            case.command,
            case.results.clone().unwrap_or_else(|| format!(
                "error: trap: ...{}...",
                case.trap.clone().unwrap_or_default()
            ))
        )),
    }
}

#[test]
fn every_default_export_runs_in_the_kernel_assembled_from_the_request() {
    let cases = cases();
    let mut m = Machine::boot(Options::bios().smp(2));
    let mut failures = Vec::new();
    m.command("lazy on");
    for case in &cases {
        let out = run_case(&mut m, case);
        if let Err(e) = check(case, &out) {
            failures.push(e);
        }
    }
    // Tasks after a chunk's first reached functions that were stubs: some were assembled
    // lazily, and every result above is still the reference's.
    let lazy = parse_json(m.command("lazy --json").trim()).unwrap_or(Json::Null);
    let chunks = lazy
        .get("chunks")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    let sum = |key: &str| -> u64 {
        chunks
            .iter()
            .filter_map(|c| c.get(key).and_then(Json::as_u64))
            .sum()
    };
    if chunks.len() < 12 || sum("stubs") == 0 || sum("lazily_assembled") == 0 {
        failures.push(format!(
            "`lazy --json`: {} chunks, {} stubs, {} lazily assembled",
            chunks.len(),
            sum("stubs"),
            sum("lazily_assembled")
        ));
    }
    let status = m.poweroff_and_wait();
    assert!(
        failures.is_empty() && status == 0,
        "{} failures (exit {status}):\n{}\n--- serial log ---\n{}",
        failures.len(),
        failures.join("\n"),
        m.serial_log()
    );
}

#[test]
fn every_default_export_runs_in_the_kernel() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} expectations", cases.len());
    let mut m = Machine::boot(Options::bios().smp(2));
    let mut failures = Vec::new();
    for case in &cases {
        let out = run_case(&mut m, case);
        if let Err(e) = check(case, &out) {
            failures.push(e);
        }
    }
    // The engine's bookkeeping saw all of it, and the kernel is still fine.
    let pae = parse_json(m.command("pae --json").trim()).unwrap_or(Json::Null);
    let chunks = pae.get("chunks").and_then(Json::as_u64).unwrap_or(0);
    if chunks < 13 {
        failures.push(format!(
            "`pae --json`: {chunks} chunks assembled, expected all 13"
        ));
    }
    let tasks = parse_json(m.command("tasks --json").trim()).unwrap_or(Json::Null);
    let recorded = tasks
        .get("tasks")
        .and_then(Json::as_array)
        .map_or(0, Vec::len);
    if recorded != cases.len().min(64) {
        failures.push(format!("`tasks --json`: {recorded} tasks recorded"));
    }
    let per_function = parse_json(m.command("pae sort --json").trim()).unwrap_or(Json::Null);
    let functions = per_function
        .get("functions")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    let timed = functions
        .iter()
        .filter(|f| {
            f.get("lower_cycles")
                .and_then(Json::as_u64)
                .is_some_and(|c| c > 0)
        })
        .count();
    if functions.is_empty() || timed != functions.len() {
        failures.push(format!(
            "`pae sort --json`: {timed} of {} functions timed",
            functions.len()
        ));
    }
    let asm = m.command("asm fib.fib");
    if !(asm.contains("push rbp") && asm.contains(";; wasm 0x")) {
        failures.push(format!(
            "`asm fib.fib`: no prologue or wasm offsets in {asm:?}"
        ));
    }
    if !m.command("mem").contains("frames:") {
        failures.push("`mem` after the tasks did not answer".into());
    }
    let status = m.poweroff_and_wait();
    assert!(
        failures.is_empty() && status == 0,
        "{} failures (exit {status}):\n{}\n--- serial log ---\n{}",
        failures.len(),
        failures.join("\n"),
        m.serial_log()
    );
}
