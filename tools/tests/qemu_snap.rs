//! Predictive snapshots in the kernel (issue 14, `docs/snapshots.md`), against the host
//! reference (wasmi):
//! - several instances restored from one snapshot run at once on three cores, each writing
//!   every page of the table it restored: each result is the host's for its own writes alone
//!   (no instance sees another's), the snapshot's checksum is the same before and after, and
//!   the pages were copied on write (counted) while the snapshot stayed shared;
//! - refresh by hand and automatic (`snap auto on`): the likely segment taken in the
//!   background and restored by the next request; everything dropped above every weight;
//! - `snap verify`: a restored instance and one that ran the path compared byte for byte in
//!   the kernel (memory read through the shared mappings, globals, tables);
//! - a client's library: a client's session layer restored for its requests only (re-run with
//!   snapshots off), other clients and requests without one get the shared layer;
//! - layered restore (two independent layers), a chained layer preferred over them, dropping
//!   a layer (its chain goes with it, the path runs instead), `--snapshots off`: all with the
//!   reference result; bad input gets `error:` lines;
//! - under `--icount`, `snap bench` measures restoring against re-running the path in guest
//!   instructions (figures printed for the README; results equal both ways).
//!
//! Run alone with `cargo test -p tools --release --test qemu_snap -- --test-threads 2` after
//! `scripts/build.sh --firmware all --console`.

use std::time::{Duration, Instant};

use chunk_image::{Image, Value};
use tools::chunkc::run::{Outcome, run_values};
use tools::qemu::reference::{outcome_text, wait_tasks};
use tools::qemu::{Checks, Json, Machine, Options};

/// The host reference: `lexicon.EXPORT(args)` on a fresh instance (every export runs its
/// table's init first), as text.
fn reference(export: &str, args: &[i32]) -> String {
    let bytes = std::fs::read(tools::qemu::options::default_chunk_image())
        .expect("default chunk image (build it first)");
    let image = Image::parse(&bytes).expect("image parses");
    let args: Vec<Value> = args.iter().map(|&a| Value::I32(a)).collect();
    let r = run_values(&image, "lexicon", export, &args).expect("wasmi runs it");
    assert!(
        matches!(r.outcome, Outcome::Returned(_)),
        "{export}: {:?}",
        r.outcome
    );
    outcome_text(&r.outcome)
}

fn u64_of(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(u64::MAX)
}

fn ids_of(j: &Json, key: &str) -> Vec<u64> {
    j.get(key)
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default()
}

fn first_result(j: &Json) -> String {
    j.get("results")
        .and_then(Json::as_array)
        .and_then(|a| a.first())
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string()
}

fn checksum_of(c: &mut Checks, m: &mut Machine, id: u64) -> String {
    let out = m.command("snap list --json");
    let j = c.json("snap list --json", &out);
    j.get("snapshots")
        .and_then(Json::as_array)
        .and_then(|l| {
            l.iter()
                .find(|s| s.get("id").and_then(Json::as_u64) == Some(id))
        })
        .and_then(|s| s.get("checksum").and_then(Json::as_str))
        .unwrap_or("missing")
        .to_string()
}

fn run_json(c: &mut Checks, m: &mut Machine, cmd: &str) -> Json {
    let out = m.command(cmd);
    c.json(cmd, &out)
}

#[test]
fn instances_restored_from_one_snapshot_on_several_cores_see_only_their_own_writes() {
    isolation_and_layers(Options::bios().smp(4));
}

#[test]
fn instances_restored_from_one_snapshot_on_several_cores_uefi() {
    isolation_and_layers(Options::uefi().smp(4));
}

fn isolation_and_layers(options: Options) {
    const ROUNDS: i32 = 4000;
    let tags: Vec<(i32, u32)> = vec![(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3)];
    let expected: Vec<String> = tags
        .iter()
        .map(|(t, _)| reference("lex_mark", &[*t, ROUNDS]))
        .collect();
    let mut distinct = expected.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        tags.len(),
        "every tag gives its own checksum"
    );
    let checksum_ref = reference("lex_checksum", &[]);
    let prime_ref = reference("lex_prime_of", &[12345]);

    let mut m = Machine::boot(options);
    let mut c = Checks::new();
    let t = run_json(&mut c, &mut m, "snap take lexicon.lex_init --json");
    let lex = u64_of(&t, "id");
    let lex_pages = u64_of(&t, "pages");
    c.check((90..200).contains(&lex_pages), || {
        format!("lex_init dirtied {lex_pages} pages: {t:?}")
    });
    let before = checksum_of(&mut c, &mut m, lex);
    let stats0 = run_json(&mut c, &mut m, "snap stats --json");

    // Six restored instances at once, two per core on cores 1-3.
    let mut ids = Vec::new();
    for (tag, core) in &tags {
        let cmd = format!(
            "run lexicon.lex_mark {tag} {ROUNDS} --snapshots on --background --core {core} --json"
        );
        let j = run_json(&mut c, &mut m, &cmd);
        ids.push(u64_of(&j, "task_id"));
    }
    // They overlap: some are still running when the last has started.
    let out = m.command("tasks --json");
    let running = out.matches("\"running\"").count();
    println!("{running} of the six restored instances running at once after the last started");
    c.check(running >= 2, || format!("no overlap: {out}"));
    let done = wait_tasks(&mut c, &mut m, &ids);
    for ((id, (state, outcome)), want) in ids.iter().zip(&done).zip(&expected) {
        c.check(state == "done" && outcome == want, || {
            format!("task {id}: {state} {outcome:?}, the host gives {want}")
        });
    }
    let after = checksum_of(&mut c, &mut m, lex);
    c.check(before == after && before != "missing", || {
        format!("snapshot {lex} changed: checksum {before} before, {after} after")
    });
    let stats1 = run_json(&mut c, &mut m, "snap stats --json");
    let copied =
        u64_of(&stats1, "pages_copied_on_write") - u64_of(&stats0, "pages_copied_on_write");
    let shared = u64_of(&stats1, "pages_shared") - u64_of(&stats0, "pages_shared");
    println!("six restored instances: {shared} pages mapped shared, {copied} copied on write");
    c.check(shared == 6 * lex_pages, || {
        format!("{shared} pages shared, expected 6 x {lex_pages}")
    });
    c.check(copied >= 6 * 90 && copied <= shared, || {
        format!("{copied} pages copied on write (each instance writes ~96 table pages)")
    });

    // A reader restored afterwards sees the snapshot as taken, and copies nothing.
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_checksum --snapshots on --json",
    );
    c.check(
        first_result(&j) == checksum_ref && u64_of(&j, "pages_copied") == 0,
        || format!("reader after the writers: {j:?}, the host gives {checksum_ref}"),
    );
    c.check(ids_of(&j, "layers") == vec![lex], || format!("{j:?}"));

    // A client's library: alice's session (her own request, chained on the shared layer) is
    // restored for her requests only; off, it is re-run for her.
    let alice_ref = reference("lex_mark", &[7, 1]);
    let t = run_json(
        &mut c,
        &mut m,
        &format!("snap take lexicon.lex_mark 7 1 --on {lex} --client alice --json"),
    );
    let alice = u64_of(&t, "id");
    for (cmd, want, layers) in [
        (
            "run lexicon.lex_checksum --snapshots on --client alice --json",
            &alice_ref,
            vec![lex, alice],
        ),
        (
            "run lexicon.lex_checksum --snapshots off --client alice --json",
            &alice_ref,
            vec![],
        ),
        (
            "run lexicon.lex_checksum --snapshots on --client bob --json",
            &checksum_ref,
            vec![lex],
        ),
        (
            "run lexicon.lex_checksum --snapshots on --json",
            &checksum_ref,
            vec![lex],
        ),
    ] {
        let j = run_json(&mut c, &mut m, cmd);
        c.check(
            first_result(&j) == *want && ids_of(&j, "layers") == layers,
            || format!("{cmd}: {j:?}, expected {want} from layers {layers:?}"),
        );
    }
    c.check(alice_ref != checksum_ref, || {
        "alice's session changes the table".into()
    });

    // Two independent layers for a two-segment path.
    let t = run_json(&mut c, &mut m, "snap take lexicon.primes_init --json");
    let primes = u64_of(&t, "id");
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_prime_of 12345 --snapshots on --json",
    );
    c.check(
        first_result(&j) == prime_ref
            && ids_of(&j, "layers") == vec![lex, primes]
            && u64_of(&j, "covered") == 2
            && u64_of(&j, "ran_segments") == 0,
        || format!("layered: {j:?}, the host gives {prime_ref}"),
    );
    // In the kernel, byte for byte: restored (through its shared mappings) and ran.
    let j = run_json(&mut c, &mut m, "snap verify lexicon.lex_prime_of --json");
    c.check(
        j.get("equal").and_then(Json::as_bool) == Some(true)
            && ids_of(&j, "layers") == vec![lex, primes]
            && u64_of(&j, "bytes") >= 1 << 20,
        || format!("verify, independent layers: {j:?}"),
    );
    // A layer chained on the first is preferred to the independent one.
    let t = run_json(
        &mut c,
        &mut m,
        &format!("snap take lexicon.primes_init --on {lex} --json"),
    );
    let chained = u64_of(&t, "id");
    c.check(u64_of(&t, "parent") == lex, || format!("{t:?}"));
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_prime_of 12345 --snapshots on --json",
    );
    c.check(
        first_result(&j) == prime_ref && ids_of(&j, "layers") == vec![lex, chained],
        || format!("chained: {j:?}"),
    );
    let j = run_json(&mut c, &mut m, "snap verify lexicon.lex_prime_of --json");
    c.check(
        j.get("equal").and_then(Json::as_bool) == Some(true)
            && ids_of(&j, "layers") == vec![lex, chained],
        || format!("verify, chained layers: {j:?}"),
    );
    // Dropping the first layer drops the chain; the path's first segment now runs, and the
    // second's snapshot alone must not be used (it would skip the first).
    let out = m.command(&format!("snap drop {lex}"));
    c.check(
        out.trim() == format!("dropped {lex} {alice} {chained}"),
        || format!("the drop takes the chains on {lex} with it: {out}"),
    );
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_prime_of 12345 --snapshots on --json",
    );
    c.check(
        first_result(&j) == prime_ref
            && ids_of(&j, "layers").is_empty()
            && u64_of(&j, "ran_segments") == 2,
        || format!("after the drop: {j:?}"),
    );
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_prime_of 12345 --snapshots off --json",
    );
    c.check(first_result(&j) == prime_ref, || format!("off: {j:?}"));

    // Refresh: the analyzer saw lexicon requests reach lex_init (which has no snapshot now)
    // and primes_init (which has one): with low thresholds lex_init is taken in the
    // background; with a drop threshold above every weight, everything goes.
    let j = run_json(&mut c, &mut m, "snap refresh --take 1 --drop 1 --json");
    let taking: Vec<String> = j
        .get("taking")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    c.check(taking == vec!["lexicon.lex_init".to_string()], || {
        format!("refresh: {j:?}")
    });
    let start = Instant::now();
    let mut taken = false;
    while !taken && start.elapsed() < Duration::from_secs(300) {
        let out = m.command("snap list --json");
        taken = out.contains("\"segment\":\"lexicon.lex_init\"");
        if !taken {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    c.check(taken, || {
        "the background generator took no lex_init snapshot".into()
    });
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_lookup 12345 --snapshots on --json",
    );
    c.check(
        first_result(&j) == "12345" && ids_of(&j, "layers").len() == 1,
        || format!("restored from the refreshed snapshot: {j:?}"),
    );
    let j = run_json(
        &mut c,
        &mut m,
        "snap refresh --drop 1001 --take 1001 --json",
    );
    c.check(ids_of(&j, "dropped").len() == 2, || {
        format!("drop all: {j:?}")
    });
    let out = m.command("snap list --json");
    c.check(out.contains("\"snapshots\":[]"), || {
        format!("after dropping all: {out}")
    });

    // Automatic refresh: after each snapshot-aware request the policy runs; the segment the
    // request's path needs is taken in the background, and the next request restores it.
    let out = m.command("snap auto on --every 1 --take 1 --drop 0");
    c.check(out.contains("automatic refresh on: every 1"), || {
        out.clone()
    });
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_lookup 5 --snapshots on --json",
    );
    c.check(ids_of(&j, "layers").is_empty(), || {
        format!("nothing to restore yet: {j:?}")
    });
    let start = Instant::now();
    let mut taken = false;
    while !taken && start.elapsed() < Duration::from_secs(300) {
        let out = m.command("snap list --json");
        taken = out.contains("\"segment\":\"lexicon.lex_init\"");
        if !taken {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    c.check(taken, || {
        "automatic refresh took no lex_init snapshot".into()
    });
    let j = run_json(
        &mut c,
        &mut m,
        "run lexicon.lex_lookup 5 --snapshots on --json",
    );
    c.check(
        first_result(&j) == "5" && ids_of(&j, "layers").len() == 1,
        || format!("restored after the automatic refresh: {j:?}"),
    );
    let out = m.command("snap auto off");
    c.check(out.contains("automatic refresh off"), || out.clone());

    // Bad input.
    for bad in [
        "snap take nosuch.export",
        "snap take lexicon.lex_lookup",
        "snap take lexicon",
        "snap take pipeline.pipeline",
        "snap drop 999",
        "snap frobnicate",
        "run lexicon.lex_lookup 1 --snapshots maybe",
        "snap take lexicon.lex_init --on 999",
        "snap verify lexicon.lex_checksum_of_nothing",
        "snap verify crc32.crc32_fox",
        "snap take lexicon.lex_mark 7 1",
        "run lexicon.lex_lookup 1 --client alice",
        "snap auto maybe",
    ] {
        let out = m.command(bad);
        c.error_line(bad, &out);
    }
    let out = m.command("run lexicon.lex_lookup 12345");
    c.check(out.trim() == "12345", || {
        format!("the kernel goes on: {out:?}")
    });
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}

#[test]
fn restore_against_rerunning_the_path_under_icount() {
    let mut m = Machine::boot(Options::bios().smp(2).icount());
    let mut c = Checks::new();
    for seg in ["lex_init", "primes_init"] {
        let cmd = format!("snap take lexicon.{seg} --json");
        run_json(&mut c, &mut m, &cmd);
    }
    for (export, arg, path_len) in [
        ("lex_lookup", 12345, 1),
        ("primes_pi", 4_194_303, 1),
        ("lex_prime_of", 12345, 2),
    ] {
        let want = reference(export, &[arg]);
        let cmd = format!("snap bench lexicon.{export} {arg} --rounds 3 --json");
        let out = m.command_within(&cmd, Duration::from_secs(600));
        let j = c.json(&cmd, &out);
        let (rerun, restore) = (
            u64_of(&j, "rerun_path_instructions"),
            u64_of(&j, "restore_instructions"),
        );
        println!(
            "{export} {arg}: re-run path {rerun} guest instructions, restore {restore} ({}x); whole request {} vs {} cycles; pages shared {}, copied {}",
            j.get("path_speedup").and_then(Json::as_str).unwrap_or("?"),
            u64_of(&j, "rerun_total_cycles"),
            u64_of(&j, "restore_total_cycles"),
            u64_of(&j, "pages_shared"),
            u64_of(&j, "pages_copied"),
        );
        c.check(
            j.get("results").and_then(Json::as_str) == Some(want.as_str()),
            || format!("{cmd}: {out}, the host gives {want}"),
        );
        c.check(u64_of(&j, "covered") == path_len, || {
            format!("{cmd}: the path has {path_len} segment(s): {out}")
        });
        // Guest instructions repeat exactly under icount: restoring must be far cheaper
        // than re-running (the goal is 100x; this bound only catches a broken restore).
        c.check(restore > 0 && rerun > 20 * restore, || {
            format!("{cmd}: re-run {rerun}, restore {restore}")
        });
    }
    // A workload trace replayed with snapshots off and on: same outcomes (the command fails
    // otherwise), the lexicon requests restored, the others (no init path) run as they are.
    let out = m.command(
        "trace add lexmix lexicon.lex_lookup 5 ; lexicon.primes_pi 1000 ; crc32.crc32_fox ; lexicon.lex_prime_of 77 ; 3*[ lexicon.lex_lookup 9 ]",
    );
    c.check(!out.contains("error"), || format!("trace add: {out}"));
    let cmd = "replay lexmix --snapshots both --json";
    let out = m.command_within(cmd, Duration::from_secs(600));
    let j = c.json(cmd, &out);
    let passes = j
        .get("passes")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    println!("replay lexmix --snapshots both: {out}");
    c.check(passes.len() == 2, || format!("{cmd}: {out}"));
    if let [off, on] = &passes[..] {
        c.check(
            u64_of(off, "restored_requests") == 0 && u64_of(off, "segments_run") == 7,
            || format!("off: {off:?}"),
        );
        c.check(
            u64_of(on, "restored_requests") == 6 && u64_of(on, "segments_run") == 0,
            || format!("on: {on:?}"),
        );
        c.check(
            u64_of(off, "total_instructions") > 20 * u64_of(on, "total_instructions"),
            || format!("{cmd}: {out}"),
        );
    }
    c.finish(&m);
}
