//! Assembly from the request in the kernel (`lazy on`): a task assembles only what its export
//! reaches; a later task of the same chunk first reaches other functions through their lazy
//! stubs. Checked here, against the host:
//! - two tasks started at once on two cores that first reach the same stubs get the reference
//!   result, and the kernel assembles exactly as many functions lazily as the host reference
//!   (the same sequence with atoll's native engine on the host) does: none twice;
//! - a lazily assembled function is an island that the relocation engine moves, and the next
//!   task runs through the moved copy with the reference result;
//! - `lazy startup` measures task-start latency both ways in one run (figures printed for the
//!   README, checked to be there and to favour assembly from the request).
//!
//! Run alone with `cargo test -p tools --release --test qemu_lazy -- --test-threads 2` after
//! `scripts/build.sh --firmware all --console`.

use std::sync::Arc;
use std::time::Duration;

use atoll_pae::reach;
use atoll_pae::runtime::{Instance, SigRegistry, VecMemory};
use chunk_image::Image;
use tools::chunkc::wast_host::HostCode;
use tools::qemu::reference::wait_tasks;
use tools::qemu::{Checks, Json, Machine, Options};

const CHUNK: &str = "json";
const FIRST: (&str, u64, &str) = ("json_max_depth", u64::MAX, "3");
const SECOND: (&str, u64, &str) = ("json_generate_and_count", 100, "1401");

fn u64_of(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(0)
}

fn command(task: (&str, u64, &str)) -> String {
    if task.1 == u64::MAX {
        format!("run {CHUNK}.{}", task.0)
    } else {
        format!("run {CHUNK}.{} {}", task.0, task.1)
    }
}

/// The host reference: the chunk assembled for FIRST's export, FIRST then SECOND run on one
/// instance; how many functions were assembled lazily.
fn host_lazy_count() -> usize {
    let image_path = tools::qemu::options::default_chunk_image();
    let bytes = std::fs::read(&image_path).expect("default chunk image (build it first)");
    let image = Image::parse(&bytes).expect("image parses");
    let wasm = image.chunk(CHUNK).expect("chunk").module;
    let (desc, graph) = reach::analyze(wasm).expect("analyzed");
    let first = desc.export_func(FIRST.0).expect("export");
    let eager = graph.reachable(&desc, &[first]);
    let options = atoll_pae::Options {
        block_counters: true,
        ..atoll_pae::Options::default()
    };
    let module = Arc::new(atoll_pae::compile_for(wasm, &options, None, &eager).expect("compile"));
    assert!(module.desc.imports.is_empty(), "{CHUNK} imports nothing");
    let code = Arc::new(HostCode::for_module(&module).expect("map"));
    let mut inst = Instance::new(
        module.clone(),
        Box::new(tools::chunkc::wast_host::SharedHostCode(code.clone())),
        Box::<VecMemory>::default(),
        &[],
        &mut SigRegistry::default(),
    )
    .expect("instantiate");
    let r = inst.invoke(first, &[]).expect("first");
    assert_eq!(r[0].to_string(), FIRST.2);
    let second = desc.export_func(SECOND.0).expect("export");
    let r = inst.invoke(second, &[SECOND.1]).expect("second");
    assert_eq!(r[0].to_string(), SECOND.2);
    code.lazy_count()
}

fn chunk_figures(c: &mut Checks, m: &mut Machine) -> Json {
    let out = m.command("lazy --json");
    let j = c.json("lazy --json", &out);
    j.get("chunks")
        .and_then(Json::as_array)
        .and_then(|l| {
            l.iter()
                .find(|x| x.get("chunk").and_then(Json::as_str) == Some(CHUNK))
        })
        .cloned()
        .unwrap_or(Json::Null)
}

#[test]
fn lazy_functions_reached_at_once_by_two_cores_are_assembled_once_and_relocate() {
    let expected_lazy = host_lazy_count();
    assert!(expected_lazy > 0, "the second task must reach stubs");
    let mut m = Machine::boot(Options::bios().smp(3));
    let mut c = Checks::new();
    m.command("lazy on");
    let out = m.command(&command(FIRST));
    c.check(out.trim() == FIRST.2, || format!("first task: {out:?}"));
    let before = chunk_figures(&mut c, &mut m);
    c.check(
        u64_of(&before, "stubs") > 0 && u64_of(&before, "lazily_assembled") == 0,
        || format!("after the first task: {before:?}"),
    );
    // Two tasks on two cores at once, both reaching the same stubs first.
    let mut ids = Vec::new();
    for core in [1, 2] {
        let cmd = format!("{} --core {core} --background --json", command(SECOND));
        let out = m.command(&cmd);
        let j = c.json(&cmd, &out);
        ids.push(u64_of(&j, "task_id"));
    }
    for (id, (state, outcome)) in ids.iter().zip(wait_tasks(&mut c, &mut m, &ids)) {
        c.check(state == "done" && outcome == SECOND.2, || {
            format!("task {id}: {state} {outcome:?}, expected done {}", SECOND.2)
        });
    }
    let after = chunk_figures(&mut c, &mut m);
    c.check(
        u64_of(&after, "lazily_assembled") == expected_lazy as u64,
        || format!("{after:?}: the host reference assembles {expected_lazy} lazily"),
    );
    c.check(
        u64_of(&after, "code_bytes")
            == u64_of(&after, "up_front_bytes") + u64_of(&after, "lazy_bytes")
            && u64_of(&after, "lazy_bytes") > 0,
        || format!("{after:?}"),
    );
    // A lazily assembled function is an island of its own, outside the module's code: the
    // second island of a function name (the first is its stub). Move it.
    let out = m.command(&format!("islands {CHUNK} --json"));
    let j = c.json("islands --json", &out);
    let islands = j
        .get("islands")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let name = |i: &Json| {
        i.get("function")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string()
    };
    let lazy_island = islands
        .iter()
        .rev()
        .find(|i| islands.iter().filter(|o| name(o) == name(i)).count() == 2);
    match lazy_island {
        Some(island) => {
            let id = u64_of(island, "id");
            // Its calls are counted in the slots its module reserved for it.
            c.check(u64_of(island, "calls") > 0, || {
                format!("lazily assembled island {id} counted no calls: {island:?}")
            });
            let cmd = format!("relocate {id} small --json");
            let out = m.command(&cmd);
            let j = c.json(&cmd, &out);
            c.check(u64_of(&j, "to") != 0, || format!("`{cmd}`: {out}"));
            let out = m.command(&command(SECOND));
            c.check(out.trim() == SECOND.2, || {
                format!("after moving island {id} ({}): {out:?}", name(island))
            });
        }
        None => c.fail(format!("no lazily assembled island in {out}")),
    }
    let again = chunk_figures(&mut c, &mut m);
    c.check(
        u64_of(&again, "lazily_assembled") == expected_lazy as u64,
        || format!("nothing more to assemble: {again:?}"),
    );
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}

/// Task-start latency with whole-module assembly and from the request, in one run under
/// `-icount` (guest instructions): printed for the README.
#[test]
fn startup_figures_under_icount() {
    let mut m = Machine::boot(Options::bios().smp(2).icount());
    let mut c = Checks::new();
    for task in [
        "json.json_max_depth",
        "sort.median",
        "lz.lz_roundtrip",
        "forth._start",
        "wordfreq._start",
    ] {
        let cmd = format!("lazy startup {task} --rounds 3 --json");
        let out = m.command_within(&cmd, Duration::from_secs(600));
        let j = c.json(&cmd, &out);
        let whole = j.get("whole").cloned().unwrap_or(Json::Null);
        let reach = j.get("from_request").cloned().unwrap_or(Json::Null);
        // Where the request reaches (nearly) every function, nothing is saved and the
        // analysis costs (the C and Rust commands put most functions in their table, reachable
        // from any `call_indirect` of their type); where it leaves a quarter or more as stubs,
        // starting must be faster.
        let (rf, wf) = (u64_of(&reach, "functions"), u64_of(&whole, "functions"));
        c.check(
            rf <= wf
                && u64_of(&reach, "instructions") > 0
                && (rf * 4 > wf * 3 || u64_of(&reach, "cycles") < u64_of(&whole, "cycles")),
            || format!("`{cmd}`: {out}"),
        );
        eprintln!("{cmd}: {}", out.trim());
    }
    let out = m.command("lazy startup json.nope");
    c.error_line("lazy startup json.nope", &out);
    let out = m.command("lazy sideways");
    c.error_line("lazy sideways", &out);
    c.finish(&m);
}
