//! Predictive assembly in QEMU: the shipped workload traces replayed with a small cache bound,
//! with prediction off and on from the same cold start.
//!
//! - every step's result equals the host reference's (wasmi on the same image);
//! - the bytes resident never exceed the bound (the cache's high-water mark);
//! - with prediction on, the worker pre-assembles chunks and more requests find their chunk
//!   resident; the order-2 model predicts the regular traces' next task at least 90% of the time;
//! - LRU and LFU evict differently on the trace built to separate them;
//! - live code is never evicted: a task that runs through a `cache clear` and a replay under a
//!   bound too small for everything keeps its chunk (pinned) and returns the reference's result;
//!   once it has ended, evicting its chunk unmaps the code (the page tables say so);
//! - the boot-time bound comes from the image's `[engine]` section;
//! - with `predict specialize on`, a chunk assembled after its export was called with one
//!   argument value is specialized on it, and every argument still gives the reference's result;
//! - `profile export` folded into the image by `chunkc profile merge` seeds the next boot.
//!
//! Run alone with `cargo test -p tools --release --test qemu_predict -- --test-threads 2`
//! after `scripts/build.sh --firmware all --console`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tools::qemu::options::{default_chunk_image, repo_root};
use tools::qemu::reference::result_in;
use tools::qemu::{Checks, Json, Machine, Options};

/// The bound the replays run under: smaller than the traces' working set.
const LIMIT: u64 = 40960;
const REPLAY_TIMEOUT: Duration = Duration::from_secs(600);

fn u64_of(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(0)
}

/// Host reference results of every step of a shipped trace, in order.
fn trace_reference(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(format!("chunks/traces/{name}.trace")))
        .expect("shipped trace");
    let steps = atoll_predict::trace::parse(&text).expect("trace parses");
    let image = std::fs::read(default_chunk_image()).expect("default chunk image");
    let mut memo: BTreeMap<(String, Vec<String>), String> = BTreeMap::new();
    steps
        .iter()
        .map(|s| {
            memo.entry((s.task.clone(), s.args.clone()))
                .or_insert_with(|| result_in(&image, &s.task, &s.args))
                .clone()
        })
        .collect()
}

/// Replays `trace` and checks results and the bound; returns the passes by mode.
fn replay(c: &mut Checks, m: &mut Machine, trace: &str, extra: &str) -> BTreeMap<String, Json> {
    let want = trace_reference(trace);
    let cmd = format!("replay {trace} --limit {LIMIT} --results --json {extra}");
    let out = m.command_within(&cmd, REPLAY_TIMEOUT);
    let j = c.json(&cmd, &out);
    let mut passes = BTreeMap::new();
    for p in j["passes"].as_array().cloned().unwrap_or_default() {
        let mode = p["predict"].as_str().unwrap_or("?").to_string();
        let results: Vec<String> = p["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        c.check(results == want, || {
            format!("`{cmd}` predict {mode}: results differ from the reference:\n{results:?}\nvs\n{want:?}")
        });
        c.check(u64_of(&p, "limit_bytes") == LIMIT, || {
            format!("`{cmd}`: the replay should run under its --limit: {p}")
        });
        c.check(u64_of(&p, "peak_bytes") <= LIMIT, || {
            format!("`{cmd}` predict {mode}: bytes resident passed the bound: {p}")
        });
        // `shift`'s two phases each fit the bound: it is about following a changed pattern.
        if trace != "shift" {
            c.check(u64_of(&p, "evictions") > 0, || {
                format!("`{cmd}` predict {mode}: the bound should force evictions: {p}")
            });
        }
        eprintln!("{cmd}: predict {mode}: {p}");
        passes.insert(mode, p);
    }
    passes
}

fn cache_entry(c: &mut Checks, m: &mut Machine, chunk: &str) -> Option<Json> {
    let out = m.command("cache --json");
    let j = c.json("cache --json", &out);
    c.check(
        u64_of(&j, "used_bytes") <= u64_of(&j, "limit_bytes"),
        || format!("cache over its bound: {out}"),
    );
    j["chunks"].as_array().and_then(|l| {
        l.iter()
            .find(|e| e["chunk"].as_str() == Some(chunk))
            .cloned()
    })
}

#[test]
fn replays_under_a_small_bound_predict_and_keep_live_code() {
    let mut m = Machine::boot(Options::bios().smp(2));
    let mut c = Checks::new();

    let out = m.command("cache --json");
    let j = c.json("cache --json", &out);
    c.check(u64_of(&j, "limit_bytes") == 4_194_304, || {
        format!("the boot-time bound should be the image's [engine] cache_limit: {out}")
    });

    for trace in ["regular", "branching", "shift"] {
        let passes = replay(&mut c, &mut m, trace, "");
        let (Some(off), Some(on)) = (passes.get("off"), passes.get("on")) else {
            c.fail(format!("replay {trace}: both passes expected: {passes:?}"));
            continue;
        };
        c.check(u64_of(off, "preassembled") == 0, || {
            format!("{trace}: nothing is pre-assembled with prediction off: {off}")
        });
        c.check(u64_of(on, "preassembled") > 0, || {
            format!("{trace}: the worker should pre-assemble with prediction on: {on}")
        });
        // `shift`'s phases each fit the bound: prediction can add at most a request or two
        // there, and only if the worker beats the request, so it must not lose any.
        let (hits_off, hits_on) = (u64_of(off, "hit_permille"), u64_of(on, "hit_permille"));
        let gained = if trace == "shift" {
            hits_on >= hits_off
        } else {
            hits_on > hits_off
        };
        c.check(gained, || {
            format!("{trace}: prediction should make more requests find their chunk: {off} vs {on}")
        });
        if trace != "shift" {
            c.check(u64_of(on, "top1_permille") >= 900, || {
                format!("{trace}: top-1 accuracy below 90%: {on}")
            });
        }
        c.check(
            u64_of(on, "top3_permille") >= u64_of(on, "top1_permille"),
            || format!("{trace}: top-3 below top-1: {on}"),
        );
    }

    // LRU against LFU on the trace built to separate them (no prediction: the same requests in
    // the same order, so the counts are the policies' alone).
    let lru = replay(&mut c, &mut m, "hotscan", "--predict off --policy lru");
    let lfu = replay(&mut c, &mut m, "hotscan", "--predict off --policy lfu");
    let (lru, lfu) = (
        lru.get("off").map_or(0, |p| u64_of(p, "evictions")),
        lfu.get("off").map_or(0, |p| u64_of(p, "evictions")),
    );
    c.check(lru > lfu, || {
        format!("hotscan: LRU should evict more than LFU ({lru} vs {lfu})")
    });

    // Live code: a long task keeps its chunk through a clear and a tight replay.
    let args = ["400", "18"];
    let image = std::fs::read(default_chunk_image()).unwrap();
    let want = result_in(
        &image,
        "hot.spin",
        &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    let out = m.command(&format!(
        "run hot.spin {} --background --json",
        args.join(" ")
    ));
    let started = c.json("run --background", &out);
    let task_id = u64_of(&started, "task_id");
    let out = m.command("cache clear");
    c.check(out.contains("1 pinned chunks stay"), || {
        format!("`cache clear` while hot.spin runs should keep its chunk: {out}")
    });
    match cache_entry(&mut c, &mut m, "hot") {
        Some(e) => c.check(u64_of(&e, "pins") >= 1, || {
            format!("the running task's chunk should be pinned: {e}")
        }),
        None => c.fail("the running task's chunk was evicted".into()),
    }
    replay(&mut c, &mut m, "regular", "--predict on");
    // Wait for the task, then check its result.
    let mut outcome = None;
    for _ in 0..600 {
        let out = m.command("tasks");
        if let Some(line) = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&task_id.to_string()))
            && line.contains(" done ")
        {
            outcome = line.split_whitespace().last().map(str::to_string);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    c.check(outcome.as_deref() == Some(want.as_str()), || {
        format!("hot.spin through the evictions returned {outcome:?}, the reference {want}")
    });

    // Evicted code is unmapped: note where `hot` is, evict it, ask the page tables.
    let out = m.command("islands hot --json");
    let j = c.json("islands hot --json", &out);
    let address = j["islands"]
        .as_array()
        .and_then(|l| l.first())
        .map_or(0, |i| u64_of(i, "address"));
    c.check(address != 0, || format!("hot should be resident: {out}"));
    let out = m.command(&format!("vm translate {address:#x} --json"));
    let t = c.json("vm translate", &out);
    c.check(t["mapped"].as_bool() == Some(true), || {
        format!("resident code should be mapped: {out}")
    });
    m.command("cache clear");
    let out = m.command(&format!("vm translate {address:#x} --json"));
    let t = c.json("vm translate", &out);
    c.check(t["mapped"].as_bool() == Some(false), || {
        format!("evicted code should be unmapped: {out}")
    });
    let out = m.command("islands hot --json");
    c.check(!out.contains("\"chunk\":\"hot\""), || {
        format!("an evicted chunk's islands should be gone: {out}")
    });
    // Profile-guided specialization: fib's argument was 50 in every recorded call, so the
    // next assembly folds it in behind a guard; other arguments take the general body.
    m.command("predict specialize on");
    for _ in 0..3 {
        m.command("run fib.fib 50");
    }
    m.command("cache clear");
    for args in [["fib.fib", "50"], ["fib.fib", "10"], ["fib.fib", "93"]] {
        let out = m.command(&format!("run {} {}", args[0], args[1]));
        let want = result_in(&image, args[0], &[args[1].to_string()]);
        c.check(out.trim() == want, || {
            format!(
                "specialized `run {} {}`: {out} (reference {want})",
                args[0], args[1]
            )
        });
    }
    match cache_entry(&mut c, &mut m, "fib") {
        Some(e) => c.check(
            e["specialized"]
                .as_array()
                .is_some_and(|l| l.iter().any(|s| u64_of(s, "bits") == 50)),
            || format!("fib should be assembled specialized on 50: {e}"),
        ),
        None => c.fail("fib should be resident".into()),
    }
    m.command("predict specialize off");
    // Bad input.
    for bad in [
        "cache limit lots",
        "cache policy mru",
        "replay nosuchtrace",
        "trace add bad nodot 1",
        "predict order 0",
        "predict thresholds 100 900",
        "predict specialize maybe",
    ] {
        let out = m.command(bad);
        c.error_line(bad, &out);
    }
    let out = m.command("trace add mine 3*[ fib.fib 10 ; matmul.matmul 3 ]");
    c.check(out.contains("6 steps"), || format!("trace add: {out}"));
    let out = m.command("replay mine --results --json");
    let j = c.json("replay mine", &out);
    let on = j["passes"].as_array().and_then(|p| p.last()).cloned();
    c.check(
        on.as_ref()
            .and_then(|p| p["results"].as_array())
            .is_some_and(|r| r.len() == 6 && r[0] == "55" && r[1] == "18.0"),
        || format!("a trace sent over the console replays: {out}"),
    );
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}

/// `profile export` from one boot, folded into the image by `chunkc profile merge`, is the next
/// boot's seed: the merged image's profile counts grow by exactly what the first boot ran.
#[test]
fn profile_export_seeds_the_next_boot() {
    let root = repo_root();
    let mut c = Checks::new();
    let mut m = Machine::boot(Options::bios().smp(2));
    for _ in 0..3 {
        m.command("run json.json_generate_and_count 10");
        m.command("run crc32.crc32_bench 64");
    }
    let record = m.command("profile export");
    c.check(record.starts_with("atoll-profile 1"), || {
        format!("profile export: {record}")
    });
    c.check(
        record
            .lines()
            .any(|l| l.starts_with("task json.json_generate_and_count 3 ")),
        || format!("profile export should count three json runs: {record}"),
    );
    c.check(
        record
            .lines()
            .any(|l| l == "transition json.json_generate_and_count crc32.crc32_bench 3"),
        || format!("profile export should count three json -> crc32 transitions: {record}"),
    );
    c.finish(&m);
    drop(m);

    let dir = root.join("target/test-chunks");
    std::fs::create_dir_all(&dir).unwrap();
    let record_path = dir.join("profile.rec");
    std::fs::write(&record_path, &record).unwrap();
    let merged: PathBuf = dir.join("merged.img");
    tools::chunkc::workload::profile_merge(&default_chunk_image(), &record_path, &merged)
        .expect("profile merge");
    let bios = root.join("target/images/merged-bios.img");
    let made = Command::new(root.join("target/boot/release/atoll-image"))
        .arg("--kernel")
        .arg(root.join("target/images/atoll-kernel.boot.elf"))
        .arg("--ramdisk")
        .arg(&merged)
        .arg("--bios")
        .arg(&bios)
        .output()
        .expect("running atoll-image (built by ./run-tests.sh)");
    assert!(
        made.status.success(),
        "atoll-image: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(
        bios.with_extension("ramdisk"),
        std::fs::canonicalize(&merged)
            .unwrap()
            .to_string_lossy()
            .as_bytes(),
    )
    .unwrap();

    let mut c = Checks::new();
    let mut m = Machine::boot(Options::bios().smp(2).chunks(&merged));
    let out = m.command("profile --json");
    let j = c.json("profile --json", &out);
    let seeded = |task: &str| {
        j["tasks"]
            .as_array()
            .and_then(|l| l.iter().find(|t| t["task"].as_str() == Some(task)))
            .map_or(0, |t| u64_of(t, "seeded"))
    };
    // chunks/default.toml seeds 120 json runs and 110 crc32 runs.
    c.check(seeded("json.json_generate_and_count") == 123, || {
        format!("the merged image should seed 120 + 3 json runs: {out}")
    });
    c.check(seeded("crc32.crc32_bench") == 113, || {
        format!("the merged image should seed 110 + 3 crc32 runs: {out}")
    });
    let transition = j["transitions"].as_array().and_then(|l| {
        l.iter()
            .find(|t| {
                t["from"].as_str() == Some("json.json_generate_and_count")
                    && t["to"].as_str() == Some("crc32.crc32_bench")
            })
            .cloned()
    });
    c.check(
        transition
            .as_ref()
            .is_some_and(|t| u64_of(t, "seeded") == 103),
        || format!("json -> crc32 should be seeded 100 + 3: {transition:?}"),
    );
    c.finish(&m);
}
