//! Code tailored to the CPU: with POPCNT, LZCNT, BMI1 and SSE4.1 the scalar `popcnt`, `clz`,
//! `ctz`, `ceil`, `floor`, `trunc` and `nearest` become one instruction each (`popcnt`,
//! `lzcnt`, `tzcnt`, `roundss/sd`); without them the portable forms (`bsr`/`bsf` with a zero
//! fix-up, runtime helpers) are used. Both give Rust's own results on edge values, and the
//! generated code holds the tailored instructions exactly when the feature is on.
#![cfg(target_arch = "x86_64")]

use std::collections::BTreeSet;

use atoll_pae::{CpuFeatures, Options};
use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use tools::chunkc::wast_host;

const WAT: &str = r#"(module
  (func (export "popcnt32") (param i32) (result i32) (i32.popcnt (local.get 0)))
  (func (export "popcnt64") (param i64) (result i64) (i64.popcnt (local.get 0)))
  (func (export "clz32") (param i32) (result i32) (i32.clz (local.get 0)))
  (func (export "clz64") (param i64) (result i64) (i64.clz (local.get 0)))
  (func (export "ctz32") (param i32) (result i32) (i32.ctz (local.get 0)))
  (func (export "ctz64") (param i64) (result i64) (i64.ctz (local.get 0)))
  (func (export "ceil64") (param f64) (result f64) (f64.ceil (local.get 0)))
  (func (export "floor32") (param f32) (result f32) (f32.floor (local.get 0)))
  (func (export "trunc64") (param f64) (result f64) (f64.trunc (local.get 0)))
  (func (export "nearest32") (param f32) (result f32) (f32.nearest (local.get 0))))"#;

fn mnemonics(code: &[u8]) -> BTreeSet<Mnemonic> {
    let mut decoder = Decoder::new(64, code, DecoderOptions::NONE);
    let mut seen = BTreeSet::new();
    while decoder.can_decode() {
        seen.insert(decoder.decode().mnemonic());
    }
    seen
}

const INTS: [u64; 8] = [
    0,
    1,
    0x8000_0000,
    0xFFFF_FFFF,
    0x0001_0000_0000,
    0x8000_0000_0000_0000,
    u64::MAX,
    0x00F0_0F00_1234_5678,
];
const FLOATS: [f64; 10] = [
    0.5,
    -0.5,
    1.5,
    2.5,
    -2.5,
    -0.0,
    1e300,
    -7.25,
    f64::INFINITY,
    4_503_599_627_370_497.0,
];

fn check(cpu: CpuFeatures) {
    let bytes = wat::parse_str(WAT).expect("wat");
    let options = Options {
        cpu,
        ..Options::default()
    };
    let module = wast_host::compile(&bytes, &options).expect("compile");
    let seen = mnemonics(&module.code);
    for (on, m) in [
        (cpu.popcnt, Mnemonic::Popcnt),
        (cpu.lzcnt, Mnemonic::Lzcnt),
        (cpu.bmi1, Mnemonic::Tzcnt),
        (cpu.sse41, Mnemonic::Roundsd),
        (cpu.sse41, Mnemonic::Roundss),
    ] {
        assert_eq!(seen.contains(&m), on, "{m:?} with {cpu:?}");
    }
    let mut inst = wast_host::instantiate(module, &[], &mut Default::default()).expect("inst");
    let mut call = |name: &str, arg: u64| -> u64 {
        let f = inst.module().desc.export_func(name).expect("export");
        inst.invoke(f, &[arg]).expect("runs")[0]
    };
    for &x in &INTS {
        let x32 = x as u32;
        assert_eq!(call("popcnt32", u64::from(x32)) as u32, x32.count_ones());
        assert_eq!(call("popcnt64", x), u64::from(x.count_ones()));
        assert_eq!(call("clz32", u64::from(x32)) as u32, x32.leading_zeros());
        assert_eq!(call("clz64", x), u64::from(x.leading_zeros()));
        assert_eq!(call("ctz32", u64::from(x32)) as u32, x32.trailing_zeros());
        assert_eq!(call("ctz64", x), u64::from(x.trailing_zeros()));
    }
    for &v in &FLOATS {
        let v32 = v as f32;
        let f64_of = |bits: u64| f64::from_bits(bits);
        let f32_of = |bits: u64| f32::from_bits(bits as u32);
        assert_eq!(
            f64_of(call("ceil64", v.to_bits())).to_bits(),
            v.ceil().to_bits()
        );
        assert_eq!(
            f64_of(call("trunc64", v.to_bits())).to_bits(),
            v.trunc().to_bits()
        );
        let arg32 = u64::from(v32.to_bits());
        assert_eq!(
            f32_of(call("floor32", arg32)).to_bits(),
            v32.floor().to_bits()
        );
        assert_eq!(
            f32_of(call("nearest32", arg32)).to_bits(),
            v32.round_ties_even().to_bits(),
            "nearest({v32})"
        );
    }
    assert!(f64_of_nan(call("ceil64", f64::NAN.to_bits())));
}

fn f64_of_nan(bits: u64) -> bool {
    f64::from_bits(bits).is_nan()
}

#[test]
fn tailored_and_portable_forms_agree_and_appear_exactly_when_enabled() {
    let host = CpuFeatures::detect();
    let none = CpuFeatures::SSE2;
    check(none);
    check(host);
    for cpu in host.each_alone() {
        check(cpu);
    }
}
