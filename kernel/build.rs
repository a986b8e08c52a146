//! Generates the 256 interrupt entry stubs (one per vector, 16 bytes apart) as assembly, so
//! every vector enters through code we wrote and saves every register into one `TrapFrame`.

use std::fmt::Write as _;
use std::path::PathBuf;

/// Vectors for which the CPU pushes an error code.
const HAS_ERROR_CODE: [u8; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

fn main() {
    let mut s = String::new();
    s.push_str(".section .text.atoll_trap_stubs, \"ax\"\n");
    s.push_str(".balign 16\n.global atoll_trap_stubs\natoll_trap_stubs:\n");
    for vector in 0..=255u8 {
        s.push_str(".balign 16\n");
        if !HAS_ERROR_CODE.contains(&vector) {
            s.push_str("    push 0\n");
        }
        writeln!(s, "    push {vector}").unwrap();
        s.push_str("    jmp atoll_trap_common\n");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("trap_stubs.s");
    std::fs::write(out, s).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
