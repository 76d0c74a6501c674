//! Seeded mutations of real `torch.save` archives fed to the state-dict reader: truncations,
//! bit flips and overwritten bytes of the archive, and (re-zipped with valid checksums, so
//! the pickle machine and the tensor checks are reached) bit flips, truncations, deleted and
//! repeated ranges of the pickle, integer operands replaced by other or huge values (sizes,
//! strides, offsets, element counts), storages cut or lengthened, entries dropped. Every
//! outcome must be a value or an error naming the file; a panic fails the test.
//!
//! `LEMUR_MUTATIONS` sets the count (default 10000), `LEMUR_MUTATION_SEED` the seed.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{pickle_of, rezip, runs_dir, unzip, with_pickle};
use lemur_lola::pth::read_state_bytes;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Integer operands a mutation may substitute: small, boundary and huge.
fn interesting(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => vec![b'K', rng.below(256) as u8],
        1 => {
            let mut v = vec![b'M'];
            v.extend((rng.below(65536) as u16).to_le_bytes());
            v
        }
        2 => {
            let mut v = vec![b'J'];
            v.extend([i32::MAX, i32::MIN, -1, 1 << 30][rng.below(4)].to_le_bytes());
            v
        }
        3 => {
            // LONG1 of 8 bytes: up to i64::MAX and negatives.
            let mut v = vec![0x8a, 8];
            v.extend([i64::MAX, i64::MIN, -1, 1 << 40, 1 << 62][rng.below(5)].to_le_bytes());
            v
        }
        4 => vec![0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        _ => vec![b'K', 0],
    }
}

enum Outcome {
    Read,
    Refused,
}

fn mutate(base: &[u8], entries: &[(String, Vec<u8>)], rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let pickle = pickle_of(entries);
    match rng.below(10) {
        0 => (base[..rng.below(base.len())].to_vec(), "archive truncated"),
        1 => {
            let mut b = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            (b, "archive bits flipped")
        }
        2 => {
            let mut b = base.to_vec();
            let i = rng.below(b.len());
            let n = 1 + rng.below(64);
            for j in i..(i + n).min(b.len()) {
                b[j] = rng.next() as u8;
            }
            (b, "archive bytes overwritten")
        }
        3 => {
            let mut p = pickle;
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(p.len());
                p[i] ^= 1 << rng.below(8);
            }
            (rezip(&with_pickle(entries, p)), "pickle bits flipped")
        }
        4 => {
            let n = rng.below(pickle.len());
            (
                rezip(&with_pickle(entries, pickle[..n].to_vec())),
                "pickle truncated",
            )
        }
        5 | 6 => {
            // Replace an integer opcode with its operand (a size, stride, offset or count).
            let ops: Vec<(usize, usize)> = pickle
                .iter()
                .enumerate()
                .filter_map(|(i, &b)| match b {
                    b'K' => Some((i, 2)),
                    b'M' => Some((i, 3)),
                    _ => None,
                })
                .collect();
            let (i, len) = ops[rng.below(ops.len())];
            let end = (i + len).min(pickle.len());
            let p = [&pickle[..i], &interesting(rng)[..], &pickle[end..]].concat();
            (rezip(&with_pickle(entries, p)), "integer operand replaced")
        }
        7 => {
            let i = rng.below(pickle.len());
            let n = 1 + rng.below(32);
            let end = (i + n).min(pickle.len());
            let p = if rng.below(2) == 0 {
                [&pickle[..i], &pickle[end..]].concat()
            } else {
                [&pickle[..end], &pickle[i..]].concat()
            };
            (
                rezip(&with_pickle(entries, p)),
                "pickle range deleted or repeated",
            )
        }
        8 => {
            let mut e = entries.to_vec();
            let k = rng.below(e.len());
            let d = &mut e[k].1;
            if rng.below(2) == 0 {
                let n = rng.below(d.len() + 1);
                d.truncate(n);
            } else {
                d.extend(std::iter::repeat_n(0u8, 1 + rng.below(16)));
            }
            (rezip(&e), "entry cut or lengthened")
        }
        _ => {
            let mut e = entries.to_vec();
            e.remove(rng.below(e.len()));
            (rezip(&e), "entry dropped")
        }
    }
}

#[test]
fn mutated_archives_never_panic() {
    let count: usize = std::env::var("LEMUR_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("LEMUR_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    // The surrogate's archive is the smallest fixture (35 tensors, 330 kB).
    let base = std::fs::read(runs_dir().join("surrogate/state.pth")).unwrap();
    let entries = unzip(&base);
    let path = Path::new("mutant/state.pth");
    let clean = read_state_bytes(&base, path).unwrap();
    assert_eq!(clean.tensors.len(), 35);
    let mut rng = Rng(seed);
    let start = Instant::now();
    let (mut read, mut refused) = (0usize, 0usize);
    let mut panics = Vec::new();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for n in 0..count {
        let (bytes, kind) = mutate(&base, &entries, &mut rng);
        let outcome = std::panic::catch_unwind(|| match read_state_bytes(&bytes, path) {
            Ok(_) => Outcome::Read,
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("mutant/state.pth"), "{msg}");
                Outcome::Refused
            }
        });
        match outcome {
            Ok(Outcome::Read) => read += 1,
            Ok(Outcome::Refused) => refused += 1,
            Err(_) => panics.push(format!("mutation {n} ({kind})")),
        }
    }
    std::panic::set_hook(quiet);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{count} mutations (seed {seed}) in {secs:.2} s: {read} read, {refused} refused, {} panics",
        panics.len()
    );
    assert!(panics.is_empty(), "panics: {panics:?}");
    assert_eq!(read + refused, count);
    // Most mutations must be caught; some (a flipped bit in a float) legitimately read.
    assert!(
        refused > count / 2 && read > 0,
        "{read} read, {refused} refused"
    );
}
