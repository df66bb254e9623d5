//! Generates `FUNCTIONS` distinct mixing functions and a table that makes every one reachable
//! from the `/mix` route, so the optimiser keeps them all: the component's size is real code.

use std::fmt::Write as _;

/// Tuned so the component is about 2 MB with the `guest` profile.
const FUNCTIONS: u64 = 5100;

fn main() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // splitmix64: deterministic constants, so the build is reproducible.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = String::new();
    for i in 0..FUNCTIONS {
        let c: Vec<u64> = (0..12).map(|_| next()).collect();
        let r = (c[0] % 63 + 1) as u32;
        let s = (c[1] % 63 + 1) as u32;
        writeln!(
            out,
            "#[inline(never)]\nfn f{i}(x: u64) -> u64 {{\n\
             let mut h = x ^ {c2:#x};\n\
             let rounds = x % 7 + 2;\n\
             let mut i = 0;\n\
             while i < rounds {{\n\
               h = h.rotate_left({r}).wrapping_mul({c3:#x}) ^ {c4:#x};\n\
               h = match h % 8 {{\n\
                 0 => h.wrapping_add({c5:#x}),\n\
                 1 => h ^ {c6:#x},\n\
                 2 => h.wrapping_mul({c7:#x}),\n\
                 3 => h.rotate_right({s}) ^ {c8:#x},\n\
                 4 => h.wrapping_sub({c9:#x}) ^ (h >> {s}),\n\
                 5 => (h ^ {c10:#x}).wrapping_mul(h | 1),\n\
                 6 => h.swap_bytes() ^ {c11:#x},\n\
                 _ => h.wrapping_add(h << {r}) ^ {c2:#x},\n\
               }};\n\
               i += 1;\n\
             }}\n\
             h\n}}",
            c2 = c[2],
            c3 = c[3] | 1,
            c4 = c[4],
            c5 = c[5],
            c6 = c[6],
            c7 = c[7] | 1,
            c8 = c[8],
            c9 = c[9],
            c10 = c[10],
            c11 = c[11],
            r = r % 64,
            s = s % 64,
        )
        .unwrap();
    }
    writeln!(out, "pub const FUNCTIONS: u64 = {FUNCTIONS};").unwrap();
    out.push_str("pub static TABLE: [fn(u64) -> u64; FUNCTIONS as usize] = [");
    for i in 0..FUNCTIONS {
        write!(out, "f{i},").unwrap();
    }
    out.push_str("];\n");
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("mix.rs");
    std::fs::write(path, out).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
