//! CPU models and scale: atoll boots on QEMU's `qemu64` (no SSSE3/SSE4, no RDRAND, no 1 GiB
//! pages), `Skylake-Client`, `EPYC` and `max`, and with 64 cores. On each, `hwinfo --json` must
//! report the model QEMU emulates, atoll's choices must follow CPUID (x2APIC only when offered,
//! generated SIMD only as far as the CPU goes, RDRAND only when present), and tasks must give the
//! same results (the SIMD chunk through its SSE2 forms on `qemu64`).
//!
//! Run alone with `cargo test -p tools --release --test qemu_cpus -- --test-threads 2`.

use tools::qemu::{Checks, Json, Machine, Options};

/// What a CPU model must show in `hwinfo --json`.
struct Model {
    name: &'static str,
    vendor: &'static str,
    /// (family, model), when QEMU fixes them for the model.
    signature: Option<(u64, u64)>,
    /// Features the model has (as QEMU's TCG provides them).
    has: &'static [&'static str],
    /// Features the model lacks.
    lacks: &'static [&'static str],
}

const MODELS: [Model; 4] = [
    Model {
        name: "qemu64",
        vendor: "AuthenticAMD",
        signature: Some((15, 107)),
        has: &["apic", "tsc", "nx", "sse2", "fxsr"],
        lacks: &["ssse3", "sse4_1", "rdrand", "pdpe1gb", "avx"],
    },
    Model {
        name: "Skylake-Client",
        vendor: "GenuineIntel",
        signature: Some((6, 94)),
        has: &["ssse3", "sse4_1", "sse4_2", "rdrand", "avx", "avx2", "nx"],
        lacks: &["pdpe1gb"],
    },
    Model {
        name: "EPYC",
        vendor: "AuthenticAMD",
        signature: Some((23, 1)),
        has: &["ssse3", "sse4_1", "sse4_2", "rdrand", "pdpe1gb", "nx"],
        lacks: &[],
    },
    Model {
        name: "max",
        vendor: "",
        signature: None,
        has: &["ssse3", "sse4_1", "nx", "rdrand"],
        lacks: &[],
    },
];

/// `simdsum.simdsum_bench 4096` (chunks/default.toml): the vector path on every CPU.
const SIMDSUM_4096: &str = "-1799959031";

fn check_hwinfo(c: &mut Checks, m: &mut Machine, cores: u64) -> Json {
    let out = m.command("hwinfo --json");
    let j = c.json("hwinfo --json", &out);
    let feature = |name: &str| j["features"][name].as_bool();
    // atoll's choices follow CPUID.
    let x2apic = feature("x2apic").unwrap_or(true);
    let mode = j["atoll"]["apic_mode"].as_str().unwrap_or("");
    c.check(mode == if x2apic { "x2apic" } else { "xapic" }, || {
        format!("APIC mode {mode:?} with CPUID x2apic {x2apic}")
    });
    let simd: Vec<&str> = j["atoll"]["simd"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    for (name, needed) in [
        ("ssse3", "ssse3"),
        ("sse4_1", "sse4_1"),
        ("sse4_2", "sse4_2"),
    ] {
        c.check(
            simd.contains(&name) == feature(needed).unwrap_or(false),
            || format!("generated SIMD {simd:?} must use {name} exactly when CPUID has it"),
        );
    }
    let rdrand = feature("rdrand").unwrap_or(false);
    let random = j["atoll"]["random"].as_str().unwrap_or("");
    c.check((random == "rdrand") == rdrand, || {
        format!("random source {random:?} with CPUID rdrand {rdrand}")
    });
    c.check(
        j["cores"]["online"] == cores && j["cores"]["madt"] == cores,
        || format!("cores: {}", j["cores"]),
    );
    c.check(
        j["memory"]["usable_bytes"].as_u64().unwrap_or(0) > 256 << 20,
        || format!("memory: {}", j["memory"]),
    );
    let tables: Vec<&str> = j["acpi"]["tables"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    c.check(tables.contains(&"APIC") && tables.contains(&"FACP"), || {
        format!("ACPI tables {tables:?} should include APIC (MADT) and FACP")
    });
    let text = m.command("hwinfo");
    for prefix in [
        "cpu:",
        "features:",
        "memory:",
        "acpi:",
        "cores:",
        "console:",
    ] {
        c.check(text.lines().any(|l| l.starts_with(prefix)), || {
            format!("`hwinfo` should have a `{prefix}` line: {text:?}")
        });
    }
    j
}

fn boot_model(model: &Model, options: Options) {
    let mut m = Machine::boot(options.arg("-cpu").arg(model.name));
    let mut c = Checks::new();
    let j = check_hwinfo(&mut c, &mut m, 2);
    let cpu = &j["cpu"];
    if !model.vendor.is_empty() {
        c.check(cpu["vendor"] == model.vendor, || {
            format!("{}: vendor {}", model.name, cpu["vendor"])
        });
    }
    if let Some((family, number)) = model.signature {
        c.check(cpu["family"] == family && cpu["model"] == number, || {
            format!(
                "{}: family/model {}/{}",
                model.name, cpu["family"], cpu["model"]
            )
        });
    }
    for name in model.has {
        c.check(j["features"][name] == true, || {
            format!(
                "{}: CPUID should have {name}: {}",
                model.name, j["features"]
            )
        });
    }
    for name in model.lacks {
        c.check(j["features"][name] == false, || {
            format!(
                "{}: CPUID should lack {name}: {}",
                model.name, j["features"]
            )
        });
    }
    c.check(j["features"]["x2apic"] == false, || {
        "QEMU 7.2's TCG offers no x2APIC".into()
    });
    let simd = m.command("run simdsum.simdsum_bench 4096");
    c.check(simd.trim() == SIMDSUM_4096, || {
        format!(
            "{}: simdsum_bench 4096 = {simd:?}, want {SIMDSUM_4096}",
            model.name
        )
    });
    let fib = m.command("run fib.fib 50 --core 1");
    c.check(fib.trim() == "12586269025", || format!("fib 50 = {fib:?}"));
    c.finish(&m);
    assert_eq!(m.poweroff_and_wait(), 0, "{}", model.name);
}

#[test]
fn qemu64() {
    boot_model(&MODELS[0], Options::bios());
}

#[test]
fn skylake_client() {
    boot_model(&MODELS[1], Options::bios());
}

#[test]
fn epyc_uefi() {
    boot_model(&MODELS[2], Options::uefi());
}

#[test]
fn max() {
    boot_model(&MODELS[3], Options::bios());
}

/// 64 cores (the most atoll drives: `smp::MAX_CORES`, a 64-bit core mask) under TCG on a small
/// host: every core comes online, a task runs on the last one, and `threads selftest` (sleep,
/// wake, join) works. The heavy stress commands are left out: 64 vCPUs on two host cores make
/// their cross-core timeouts fire.
#[test]
fn sixty_four_cores() {
    let mut m = Machine::boot(Options::bios().smp(64).mem("2G"));
    let mut c = Checks::new();
    check_hwinfo(&mut c, &mut m, 64);
    let cpus = m.command("cpus --json");
    let j = c.json("cpus --json", &cpus);
    let online: Vec<u64> = j["cpus"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["online"] == true)
                .filter_map(|c| c["core"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    c.check(
        online.len() == 64 && (0..64).all(|k| online.contains(&k)),
        || format!("cores 0..63 should all be online: {online:?}"),
    );
    let run = m.command("run fib.fib 50 --core 63 --json");
    let r = c.json("run --core 63", &run);
    c.check(r["core"] == 63 && r["results"][0] == "12586269025", || {
        format!("fib 50 on core 63: {run}")
    });
    let selftest = m.command("threads selftest");
    c.check(!selftest.lines().any(|l| l.starts_with("error: ")), || {
        format!("threads selftest: {selftest}")
    });
    c.finish(&m);
    assert_eq!(m.poweroff_and_wait(), 0);
}
