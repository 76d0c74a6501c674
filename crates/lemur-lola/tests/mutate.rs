//! Seeded mutations of real `torch.save` archives fed to the state-dict reader: truncations,
//! bit flips and overwritten bytes of the archive, and (re-zipped with valid checksums, so
//! the pickle machine and the tensor checks are reached) bit flips, truncations, deleted and
//! repeated ranges of the pickle, integer operands replaced by other or huge values (sizes,
//! strides, offsets, element counts), storages cut or lengthened, entries dropped. Every
//! outcome must be a value or an error naming the file; a panic fails the test, and so does
//! any single allocation above the shared harness's cap (`tests/support/mutate.rs`: one seed
//! per case, `LEMUR_MUTATIONS` for the count, 10,000 by default, `LEMUR_MUTATION_SEED` to
//! rerun one case).

mod common;
#[path = "../../../tests/support/mutate.rs"]
mod support;

use std::path::Path;

use common::{pickle_of, rezip, runs_dir, unzip, with_pickle};
use lemur_lola::pth::read_state_bytes;

#[global_allocator]
static ALLOC: support::Capped = support::Capped;

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

fn mutate(base: &[u8], entries: &[(String, Vec<u8>)], rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let pickle = pickle_of(entries);
    match rng.below(11) {
        0 => (base[..rng.below(base.len())].to_vec(), "archive truncated"),
        10 => {
            let mut r = support::Rng::new(rng.next());
            (
                support::mutate_bytes(&mut r, base),
                "archive mutated (shared harness)",
            )
        }
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
    // The surrogate's archive is the smallest fixture (35 tensors, 330 kB).
    let base = std::fs::read(runs_dir().join("surrogate/state.pth")).unwrap();
    let entries = unzip(&base);
    let path = Path::new("mutant/state.pth");
    let clean = read_state_bytes(&base, path).unwrap();
    assert_eq!(clean.tensors.len(), 35);
    let report = support::campaign("torch.save state dict", &support::seeds(10_000), |seed| {
        let mut rng = Rng(seed ^ 0x6c6f_6c61);
        let (bytes, kind) = mutate(&base, &entries, &mut rng);
        match read_state_bytes(&bytes, path) {
            Ok(state) => {
                // Whatever was read is whole: every tensor's values fill its shape.
                for (name, (shape, values)) in &state.tensors {
                    assert_eq!(
                        shape.iter().product::<usize>(),
                        values.len(),
                        "{kind}: tensor {name}"
                    );
                }
                true
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("mutant/state.pth"), "{kind}: {msg}");
                false
            }
        }
    });
    report.assert_clean();
    // Most mutations must be caught; some (a flipped bit in a float) legitimately read.
    assert!(
        report.rejected > report.cases / 2 && report.accepted > 0,
        "{report:?}"
    );
}
