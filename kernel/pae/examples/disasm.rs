//! Prints the machine code atoll's generator produces for a wasm file, per function, with the
//! wasm offset of each lowered operator:
//! `disasm [--explicit] [--no-reg-locals] [--no-fuse] [--no-inline] [--schedule] FILE [FUNC...]`
//! (FUNC: a function index or name; default every function). Guard-page mode is the default,
//! as in the kernel.

use atoll_pae::Options;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

fn main() {
    let mut options = Options {
        guard_pages: true,
        ..Options::default()
    };
    let mut file = None;
    let mut wanted = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--explicit" => options.guard_pages = false,
            "--no-reg-locals" => options.reg_locals = false,
            "--no-inline" => options.inline = false,
            "--schedule" => options.schedule = true,
            "--no-fuse" => options.fuse = false,
            _ if file.is_none() => file = Some(a),
            _ => wanted.push(a),
        }
    }
    let file = file.unwrap_or_else(|| fail("usage: disasm FILE [FUNC...]"));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| fail(&format!("{file}: {e}")));
    let bytes = wat_or_wasm(bytes);
    let module = atoll_pae::compile(&bytes, &options).unwrap_or_else(|e| fail(&format!("{e}")));
    let mut formatter = IntelFormatter::new();
    let mut text = String::new();
    for meta in &module.funcs {
        let name = meta.name.clone().unwrap_or_default();
        if !wanted.is_empty()
            && !wanted
                .iter()
                .any(|w| *w == name || *w == meta.index.to_string())
        {
            continue;
        }
        let range = meta.code_range.start as usize..meta.code_range.end as usize;
        if range.is_empty() {
            continue;
        }
        println!(
            "func {} {name}: {} bytes, frame {}",
            meta.index,
            range.len(),
            meta.frame.frame_bytes
        );
        let code = &module.code[range.clone()];
        let mut decoder = Decoder::with_ip(64, code, range.start as u64, DecoderOptions::NONE);
        let mut insn = Instruction::default();
        let mut bounds = meta.insn_boundaries.iter().peekable();
        while decoder.can_decode() {
            decoder.decode_out(&mut insn);
            while let Some((c, w)) = bounds.peek() {
                if u64::from(*c) > insn.ip() {
                    break;
                }
                println!("    ;; wasm {w:#06x}");
                bounds.next();
            }
            text.clear();
            formatter.format(&insn, &mut text);
            println!("  {:6x}  {text}", insn.ip());
        }
    }
}

fn wat_or_wasm(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        wat::parse_bytes(&bytes)
            .unwrap_or_else(|e| fail(&format!("{e}")))
            .into_owned()
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
