//! Physics checks of the Euler solver.

use lemur_solvers::euler::{EulerConfig, EulerSolver, Primitive, QuadrantIc, generate};
use lemur_solvers::{Boundary, Error};

const OPEN: [Boundary; 2] = [Boundary::Open, Boundary::Open];
const PERIODIC: [Boundary; 2] = [Boundary::Periodic, Boundary::Periodic];

fn prim(rho: f64, u: f64, v: f64, p: f64) -> Primitive {
    Primitive { rho, u, v, p }
}

/// Exact solution of the 1-D Riemann problem (Toro 2009, chapter 4), sampled at `s = x / t`.
struct ExactRiemann {
    l: [f64; 3],
    r: [f64; 3],
    g: f64,
    p_star: f64,
    u_star: f64,
}

impl ExactRiemann {
    fn new(l: [f64; 3], r: [f64; 3], g: f64) -> Self {
        let mut p = 0.5 * (l[2] + r[2]);
        for _ in 0..100 {
            let (fl, dl) = Self::f(p, l, g);
            let (fr, dr) = Self::f(p, r, g);
            let next = (p - (fl + fr + r[1] - l[1]) / (dl + dr)).max(1e-12);
            if (next - p).abs() < 1e-14 * p {
                p = next;
                break;
            }
            p = next;
        }
        let u = 0.5 * (l[1] + r[1]) + 0.5 * (Self::f(p, r, g).0 - Self::f(p, l, g).0);
        Self {
            l,
            r,
            g,
            p_star: p,
            u_star: u,
        }
    }

    /// Toro's pressure function and its derivative for one side `[rho, u, p]`.
    fn f(p: f64, k: [f64; 3], g: f64) -> (f64, f64) {
        let [rho, _, pk] = k;
        let a = (g * pk / rho).sqrt();
        if p > pk {
            let ak = 2.0 / ((g + 1.0) * rho);
            let bk = (g - 1.0) / (g + 1.0) * pk;
            let q = (ak / (p + bk)).sqrt();
            ((p - pk) * q, q * (1.0 - 0.5 * (p - pk) / (bk + p)))
        } else {
            let e = (g - 1.0) / (2.0 * g);
            (
                2.0 * a / (g - 1.0) * ((p / pk).powf(e) - 1.0),
                (p / pk).powf(-(g + 1.0) / (2.0 * g)) / (rho * a),
            )
        }
    }

    /// `[rho, u, p]` at speed `s`, for the left side; the right side by mirroring.
    fn sample(&self, s: f64) -> [f64; 3] {
        let g = self.g;
        let (ps, us) = (self.p_star, self.u_star);
        if s <= us {
            self.side(s, self.l, ps, us, 1.0)
        } else {
            let [rho, u, p] = self.side(-s, [self.r[0], -self.r[1], self.r[2]], ps, -us, 1.0);
            let _ = g;
            [rho, -u, p]
        }
    }

    fn side(&self, s: f64, k: [f64; 3], ps: f64, us: f64, _dir: f64) -> [f64; 3] {
        let g = self.g;
        let [rho, u, p] = k;
        let a = (g * p / rho).sqrt();
        if ps > p {
            let sk = u - a * ((g + 1.0) / (2.0 * g) * ps / p + (g - 1.0) / (2.0 * g)).sqrt();
            if s <= sk {
                k
            } else {
                let r = (ps / p + (g - 1.0) / (g + 1.0)) / ((g - 1.0) / (g + 1.0) * ps / p + 1.0);
                [rho * r, us, ps]
            }
        } else {
            let a_star = a * (ps / p).powf((g - 1.0) / (2.0 * g));
            let (head, tail) = (u - a, us - a_star);
            if s <= head {
                k
            } else if s >= tail {
                [rho * (ps / p).powf(1.0 / g), us, ps]
            } else {
                let c = 2.0 / (g + 1.0) + (g - 1.0) / ((g + 1.0) * a) * (u - s);
                [
                    rho * c.powf(2.0 / (g - 1.0)),
                    2.0 / (g + 1.0) * (a + (g - 1.0) / 2.0 * u + s),
                    p * c.powf(2.0 * g / (g - 1.0)),
                ]
            }
        }
    }
}

fn sod_l1_density(nx: usize) -> f64 {
    let g = 1.4;
    let mut s = EulerSolver::new(nx, 1, g, OPEN, 0.4, |x, _| {
        if x < 0.5 {
            prim(1.0, 0.0, 0.0, 1.0)
        } else {
            prim(0.125, 0.0, 0.0, 0.1)
        }
    })
    .unwrap();
    s.advance_to(0.2).unwrap();
    assert_eq!(s.time(), 0.2);
    let exact = ExactRiemann::new([1.0, 0.0, 1.0], [0.125, 0.0, 0.1], g);
    (0..nx)
        .map(|i| {
            let x = (i as f64 + 0.5) / nx as f64;
            // Cell average of the exact solution by 8-point midpoint sampling.
            let avg: f64 = (0..8)
                .map(|k| {
                    exact.sample((x - 0.5 + ((k as f64 + 0.5) / 8.0 - 0.5) / nx as f64) / 0.2)[0]
                })
                .sum::<f64>()
                / 8.0;
            (s.primitive(i, 0).rho - avg).abs() / nx as f64
        })
        .sum()
}

#[test]
fn exact_riemann_solver_reproduces_toro_sod_star_state() {
    // Toro (2009) table 4.3, test 1: p* = 0.30313, u* = 0.92745.
    let e = ExactRiemann::new([1.0, 0.0, 1.0], [0.125, 0.0, 0.1], 1.4);
    assert!((e.p_star - 0.30313).abs() < 1e-5, "{}", e.p_star);
    assert!((e.u_star - 0.92745).abs() < 1e-5, "{}", e.u_star);
    // Toro table 4.3, density left of the contact 0.42632 and right of it 0.26557.
    assert!((e.sample(0.9)[0] - 0.42632).abs() < 1e-5);
    assert!((e.sample(1.0)[0] - 0.26557).abs() < 1e-5);
}

#[test]
fn sod_shock_tube_converges_to_exact_solution() {
    let errs: Vec<f64> = [100, 200, 400].iter().map(|&n| sod_l1_density(n)).collect();
    // First-order convergence is the best a discontinuous solution allows.
    assert!(errs[0] < 0.012, "{errs:?}");
    assert!(errs[1] < 0.75 * errs[0], "{errs:?}");
    assert!(errs[2] < 0.75 * errs[1], "{errs:?}");
    assert!(errs[2] < 0.005, "{errs:?}");
}

#[test]
fn periodic_run_conserves_mass_momentum_energy() {
    let ic = QuadrantIc::random(11);
    let mut s = EulerSolver::new(48, 48, ic.gamma, PERIODIC, 0.4, |x, y| ic.at(x, y)).unwrap();
    let before = s.totals();
    s.advance_to(0.3).unwrap();
    let after = s.totals();
    assert!(s.steps() > 20);
    for k in 0..4 {
        let scale = before[0].abs().max(before[k].abs());
        assert!(
            (after[k] - before[k]).abs() < 1e-13 * scale,
            "component {k}: {before:?} -> {after:?}"
        );
    }
    // The run did something: the density field is no longer four constant states.
    let moved = (0..48).filter(|&i| {
        (s.primitive(i, 24).rho - ic.at((i as f64 + 0.5) / 48.0, 0.51).rho).abs() > 1e-3
    });
    assert!(moved.count() > 5);
}

#[test]
fn transposed_initial_condition_gives_transposed_solution() {
    for (seed, bc) in [(3, OPEN), (4, PERIODIC)] {
        let ic = QuadrantIc::random(seed);
        let n = 40;
        let mut a = EulerSolver::new(n, n, ic.gamma, bc, 0.4, |x, y| ic.at(x, y)).unwrap();
        let mut b = EulerSolver::new(n, n, ic.gamma, bc, 0.4, |x, y| {
            let q = ic.at(y, x);
            prim(q.rho, q.v, q.u, q.p)
        })
        .unwrap();
        a.advance_to(0.2).unwrap();
        b.advance_to(0.2).unwrap();
        assert_eq!(a.steps(), b.steps());
        for i in 0..n {
            for j in 0..n {
                let (p, q) = (a.primitive(i, j), b.primitive(j, i));
                assert_eq!(
                    [p.rho, p.u, p.v, p.p],
                    [q.rho, q.v, q.u, q.p],
                    "cell ({i}, {j})"
                );
            }
        }
    }
}

#[test]
fn diagonal_four_quadrant_configuration_stays_symmetric() {
    // Configuration 3 of Lax & Liu (1998), symmetric about x = y.
    let ic = QuadrantIc {
        split: [0.5, 0.5],
        states: [
            prim(0.138, 1.206, 1.206, 0.029),
            prim(0.5323, 0.0, 1.206, 0.3),
            prim(0.5323, 1.206, 0.0, 0.3),
            prim(1.5, 0.0, 0.0, 1.5),
        ],
        gamma: 1.4,
    };
    let n = 64;
    let mut s = EulerSolver::new(n, n, ic.gamma, OPEN, 0.4, |x, y| ic.at(x, y)).unwrap();
    s.advance_to(0.3).unwrap();
    let mut rho_range = (f64::MAX, 0.0f64);
    for i in 0..n {
        for j in 0..n {
            let (p, q) = (s.primitive(i, j), s.primitive(j, i));
            assert_eq!(
                [p.rho, p.u, p.v, p.p],
                [q.rho, q.v, q.u, q.p],
                "cell ({i}, {j})"
            );
            rho_range = (rho_range.0.min(p.rho), rho_range.1.max(p.rho));
        }
    }
    // The jet from the lower-left quadrant compresses gas above the initial maximum.
    assert!(rho_range.1 > 1.5, "{rho_range:?}");
    assert!(rho_range.0 > 0.0);
}

#[test]
fn mirror_symmetric_configuration_stays_mirror_symmetric() {
    // Mirror image in x of each state (u negated) on the other side of x = 1/2.
    let ic = QuadrantIc {
        split: [0.5, 0.5],
        states: [
            prim(0.5, -0.3, 0.2, 0.4),
            prim(0.5, 0.3, 0.2, 0.4),
            prim(1.0, 0.5, -0.4, 1.0),
            prim(1.0, -0.5, -0.4, 1.0),
        ],
        gamma: 1.4,
    };
    let n = 48;
    let mut s = EulerSolver::new(n, n, ic.gamma, OPEN, 0.4, |x, y| ic.at(x, y)).unwrap();
    s.advance_to(0.25).unwrap();
    let mut worst = 0.0f64;
    for i in 0..n {
        for j in 0..n {
            let (p, q) = (s.primitive(i, j), s.primitive(n - 1 - i, j));
            worst = worst
                .max((p.rho - q.rho).abs())
                .max((p.u + q.u).abs())
                .max((p.v - q.v).abs())
                .max((p.p - q.p).abs());
        }
    }
    assert!(worst < 1e-12, "largest mirror asymmetry {worst}");
    // Colliding flows at the centre line compress the gas.
    assert!(s.primitive(n / 2, n / 4).p > 0.45);
}

#[test]
fn strong_rarefaction_stays_positive() {
    // Two streams leaving each other at Mach ~ 7 nearly empty the middle (Toro test 2, harsher).
    let mut s = EulerSolver::new(64, 4, 1.4, OPEN, 0.4, |x, _| {
        if x < 0.5 {
            prim(1.0, -5.0, 0.0, 0.4)
        } else {
            prim(1.0, 5.0, 0.0, 0.4)
        }
    })
    .unwrap();
    s.advance_to(0.1).unwrap();
    let mid = s.primitive(32, 1);
    assert!(mid.rho > 0.0 && mid.p > 0.0 && mid.rho < 0.05, "{mid:?}");
}

#[test]
fn generate_layout_and_frame_times() {
    let cfg = EulerConfig {
        nx: 24,
        ny: 16,
        frames: 5,
        periodic: true,
        ..EulerConfig::default()
    };
    let mut calls = Vec::new();
    let t = generate(&cfg, 5, &mut |d, n| calls.push((d, n))).unwrap();
    assert_eq!(t.dataset_name, "euler_multi_quadrants_periodicBC");
    assert_eq!((t.nx(), t.ny(), t.channels()), (24, 16, 5));
    assert_eq!(t.data.len(), 5 * 24 * 16 * 5);
    assert_eq!(t.times, vec![0.0, 0.015, 0.03, 0.045, 0.06]);
    assert_eq!(calls.last(), Some(&(5, 5)));
    assert_eq!(t.boundaries, [Boundary::Periodic; 2]);
    assert_eq!(t.scalars[0].0, "gamma");
    let ic = QuadrantIc::random(5);
    assert_eq!(t.scalars[0].1, ic.gamma);
    // Frame 0 cell (0, 0) holds the lower-left state: E, rho, p, rho u, rho v.
    let q = ic.states[0];
    let e = q.p / (ic.gamma - 1.0) + 0.5 * q.rho * (q.u * q.u + q.v * q.v);
    let want = [e, q.rho, q.p, q.rho * q.u, q.rho * q.v].map(|x| x as f32);
    assert_eq!(&t.frame(0)[..5], &want);
    assert!(t.data.iter().all(|x| x.is_finite()));
    // Same seed, same data.
    let again = generate(&cfg, 5, &mut |_, _| {}).unwrap();
    assert_eq!(t.data, again.data);
}

#[test]
fn generated_statistics_match_the_well() {
    // The Well's euler_multi_quadrants: density 0.90 +- 0.65, pressure 0.90 +- 0.80.
    let cfg = EulerConfig {
        nx: 16,
        ny: 16,
        frames: 101,
        ..EulerConfig::default()
    };
    let (mut n, mut sr, mut sr2, mut sp, mut sp2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for seed in 0..200 {
        let t = generate(
            &EulerConfig {
                periodic: seed % 2 == 0,
                ..cfg.clone()
            },
            seed,
            &mut |_, _| {},
        )
        .unwrap();
        for c in t.data.chunks(5) {
            let (r, p) = (c[1] as f64, c[2] as f64);
            assert!(r > 0.0 && p > 0.0);
            n += 1.0;
            sr += r;
            sr2 += r * r;
            sp += p;
            sp2 += p * p;
        }
    }
    let (mr, mp) = (sr / n, sp / n);
    let (vr, vp) = ((sr2 / n - mr * mr).sqrt(), (sp2 / n - mp * mp).sqrt());
    eprintln!("density {mr:.3} +- {vr:.3}, pressure {mp:.3} +- {vp:.3}");
    assert!(
        (mr - 0.90).abs() < 0.15 && (vr - 0.65).abs() < 0.15,
        "density {mr} +- {vr}"
    );
    assert!(
        (mp - 0.90).abs() < 0.15 && (vp - 0.80).abs() < 0.15,
        "pressure {mp} +- {vp}"
    );
}

#[test]
fn bad_configs_are_named_errors() {
    let bad = EulerConfig {
        cfl: 0.9,
        ..EulerConfig::default()
    };
    match generate(&bad, 0, &mut |_, _| {}) {
        Err(Error::InvalidConfig { name, .. }) => assert_eq!(name, "cfl"),
        other => panic!("{other:?}"),
    }
    let bad = EulerConfig {
        frame_dt: -1.0,
        ..EulerConfig::default()
    };
    assert!(matches!(
        generate(&bad, 0, &mut |_, _| {}),
        Err(Error::InvalidConfig {
            name: "frame_dt",
            ..
        })
    ));
    let wall = EulerSolver::new(8, 8, 1.4, [Boundary::Wall, Boundary::Open], 0.4, |_, _| {
        prim(1.0, 0.0, 0.0, 1.0)
    });
    assert!(matches!(
        wall,
        Err(Error::InvalidConfig {
            name: "boundary",
            ..
        })
    ));
}
