//! A small deterministic generator of random chunks for the property tests.
#![allow(dead_code)]

use chunk_image::{
    CallEdge, Chunk, Export, FuncSig, Import, Manifest, Profile, Provider, Resources,
    TaskFrequency, Transition, ValType,
};

/// xorshift64*: tiny, deterministic, good enough for test data.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    pub fn name(&mut self, prefix: &str) -> String {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz_0123456789";
        let len = 1 + self.below(8);
        let tail: String = (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect();
        format!("{prefix}{tail}")
    }

    fn sig(&mut self) -> FuncSig {
        let types = [ValType::I32, ValType::I64, ValType::F32, ValType::F64];
        let params = (0..self.below(4)).map(|_| types[self.below(4)]).collect();
        let results = (0..self.below(3)).map(|_| types[self.below(4)]).collect();
        FuncSig { params, results }
    }
}

/// A random, valid set of chunks: chunk i only imports from chunks before it (no cycles).
pub fn random_chunks(rng: &mut Rng, max_chunks: usize) -> Vec<Chunk> {
    let count = rng.below(max_chunks + 1);
    let mut chunks: Vec<Chunk> = Vec::new();
    for i in 0..count {
        let name = rng.name(&format!("c{i}_"));
        let exports: Vec<Export> = (0..rng.below(4))
            .map(|j| Export {
                name: rng.name(&format!("e{j}_")),
                func_index: rng.next() as u32,
                sig: rng.sig(),
            })
            .collect();
        let mut imports = Vec::new();
        for _ in 0..rng.below(4) {
            if rng.below(2) == 0 || chunks.is_empty() {
                imports.push(Import {
                    module: "atoll".into(),
                    name: ["print", "cycles", "yield"][rng.below(3)].into(),
                    sig: rng.sig(),
                    provider: Provider::Kernel,
                });
            } else {
                let provider = &chunks[rng.below(chunks.len())];
                if let Some(export) = provider.manifest.exports.first() {
                    imports.push(Import {
                        module: provider.name.clone(),
                        name: export.name.clone(),
                        sig: export.sig.clone(),
                        provider: Provider::Chunk(provider.name.clone()),
                    });
                }
            }
        }
        let call_graph = (0..rng.below(6))
            .map(|_| CallEdge {
                caller: rng.below(10) as u32,
                callee: rng.below(10) as u32,
            })
            .collect();
        let resources = Resources {
            memory_pages: rng.below(100) as u32,
            max_memory_pages: (rng.below(2) == 0).then(|| rng.below(1000) as u32),
            stack_bytes: rng.next() as u32,
            cycles_per_call: rng.next(),
        };
        let tasks = (0..rng.below(4))
            .map(|_| TaskFrequency {
                task: rng.name(&format!("{name}.")),
                count: rng.next(),
            })
            .collect();
        let transitions = (0..rng.below(4))
            .map(|_| Transition {
                from: rng.name("t."),
                to: rng.name("t."),
                count: rng.next() >> 8,
            })
            .collect();
        let tags = (0..rng.below(3)).map(|_| rng.name("tag")).collect();
        let module_len = rng.below(300);
        chunks.push(Chunk {
            name,
            module: rng.bytes(module_len),
            manifest: Manifest {
                imports,
                exports,
                call_graph,
                resources,
                profile: Profile { tasks, transitions },
                tags,
                ..Manifest::default()
            },
        });
    }
    chunks
}
