//! 2-D compressible Euler equations on `[0,1]^2` from four-quadrant Riemann problems.
//!
//! Conserved variables `U = (rho, rho u, rho v, E)` with
//! `E = p / (gamma - 1) + rho (u^2 + v^2) / 2`. The scheme is the unsplit
//! MUSCL-Hancock finite-volume method (Toro, *Riemann Solvers and Numerical
//! Methods for Fluid Dynamics*, 3rd ed., section 14.4): van Leer-limited slopes of
//! the primitive variables, a half-step predictor in primitive form, and the HLLC
//! flux (Toro section 10.4) with Davis wave-speed estimates.
//!
//! The update is written so that the x and y directions use the same floating
//! point operations in the same order, combined with commutative sums: on a
//! square grid, transposing the initial condition (and swapping u and v)
//! transposes the solution bit for bit.

use crate::rng::SplitMix64;
use crate::{Boundary, Error, Trajectory, invalid, par};
use std::sync::atomic::{AtomicBool, Ordering};

/// Ratios of specific heats that [`generate`] draws from (those of The Well's data).
pub const GAMMAS: [f64; 10] = [1.13, 1.22, 1.3, 1.33, 1.365, 1.4, 1.404, 1.453, 1.597, 1.76];

/// Ranges of the random initial states. Chosen so that generated data (64^2,
/// 101 frames, both boundary types) has density about 0.9 +- 0.65 and pressure
/// about 0.9 +- 0.8 like The Well's `euler_multi_quadrants`: shocks widen the
/// density spread beyond that of the initial states, hence the narrow density
/// range (measured 0.95 +- 0.70 and 0.96 +- 0.73 over 200 trajectories at 16^2;
/// see the `generated_statistics_match_the_well` test).
pub const DENSITY_RANGE: (f64, f64) = (0.45, 1.9);
pub const PRESSURE_RANGE: (f64, f64) = (0.03, 4.5);
pub const VELOCITY_RANGE: (f64, f64) = (-0.5, 0.5);

const GHOST: usize = 2;

/// Settings of [`generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct EulerConfig {
    /// Cells along x (default 64).
    pub nx: usize,
    /// Cells along y (default 64).
    pub ny: usize,
    /// Stored frames including the initial condition (default 101).
    pub frames: usize,
    /// Time between stored frames (default 0.015).
    pub frame_dt: f64,
    /// Periodic boundaries on both axes instead of open ones (default false).
    pub periodic: bool,
    /// Courant number of the internal steps (default 0.4).
    pub cfl: f64,
}

impl Default for EulerConfig {
    fn default() -> Self {
        Self {
            nx: 64,
            ny: 64,
            frames: 101,
            frame_dt: 0.015,
            periodic: false,
            cfl: 0.4,
        }
    }
}

impl EulerConfig {
    pub fn validate(&self) -> Result<(), Error> {
        if self.nx < 2 {
            return Err(invalid("nx", self.nx, "need at least 2 cells"));
        }
        if self.ny < 2 {
            return Err(invalid("ny", self.ny, "need at least 2 cells"));
        }
        if self.frames == 0 {
            return Err(invalid("frames", self.frames, "need at least 1 frame"));
        }
        if !(self.frame_dt.is_finite() && self.frame_dt > 0.0) {
            return Err(invalid("frame_dt", self.frame_dt, "must be positive"));
        }
        validate_cfl(self.cfl)
    }

    fn boundaries(&self) -> [Boundary; 2] {
        let b = if self.periodic {
            Boundary::Periodic
        } else {
            Boundary::Open
        };
        [b, b]
    }
}

fn validate_cfl(cfl: f64) -> Result<(), Error> {
    // The unsplit scheme is stable up to a Courant number of 1/2 per direction.
    if !(cfl > 0.0 && cfl <= 0.5) {
        return Err(invalid("cfl", cfl, "must be in (0, 0.5]"));
    }
    Ok(())
}

/// A primitive state: density, velocity and pressure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Primitive {
    pub rho: f64,
    pub u: f64,
    pub v: f64,
    pub p: f64,
}

/// A four-quadrant initial condition.
#[derive(Clone, Debug, PartialEq)]
pub struct QuadrantIc {
    /// Split point `(x, y)`.
    pub split: [f64; 2],
    /// States in the quadrants `[x < sx & y < sy, x >= sx & y < sy, x < sx & y >= sy, x >= sx & y >= sy]`.
    pub states: [Primitive; 4],
    pub gamma: f64,
}

impl QuadrantIc {
    /// Draws the split point in the middle half of the domain, four states
    /// (log-uniform density and pressure, uniform velocities) and gamma.
    pub fn random(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let gamma = GAMMAS[rng.index(GAMMAS.len())];
        let split = [rng.range(0.25, 0.75), rng.range(0.25, 0.75)];
        let states = std::array::from_fn(|_| Primitive {
            rho: rng.log_range(DENSITY_RANGE.0, DENSITY_RANGE.1),
            u: rng.range(VELOCITY_RANGE.0, VELOCITY_RANGE.1),
            v: rng.range(VELOCITY_RANGE.0, VELOCITY_RANGE.1),
            p: rng.log_range(PRESSURE_RANGE.0, PRESSURE_RANGE.1),
        });
        Self {
            split,
            states,
            gamma,
        }
    }

    /// The state at `(x, y)`.
    pub fn at(&self, x: f64, y: f64) -> Primitive {
        let q = usize::from(x >= self.split[0]) + 2 * usize::from(y >= self.split[1]);
        self.states[q]
    }
}

/// The finite-volume solver. Cells are indexed `(i, j)` with `i` along x.
#[derive(Clone, Debug)]
pub struct EulerSolver {
    nx: usize,
    ny: usize,
    dx: f64,
    dy: f64,
    gamma: f64,
    cfl: f64,
    bc: [Boundary; 2],
    time: f64,
    steps: u64,
    /// Conserved variables with `GHOST` layers on every side, row-major in `(i, j)`.
    u: Vec<[f64; 4]>,
    u_new: Vec<[f64; 4]>,
    w: Vec<[f64; 4]>,
    /// Predicted primitive states on the faces of each cell: `[x-, x+, y-, y+]`.
    faces: Vec<[[f64; 4]; 4]>,
    /// Fluxes through the `+x` and `+y` faces of each cell.
    flux: Vec<[[f64; 4]; 2]>,
}

impl EulerSolver {
    /// A solver on an `nx` x `ny` grid over `[0,1]^2`, started from `init(x, y)`
    /// at cell centres. Boundaries must be [`Boundary::Open`] or [`Boundary::Periodic`].
    pub fn new(
        nx: usize,
        ny: usize,
        gamma: f64,
        bc: [Boundary; 2],
        cfl: f64,
        init: impl Fn(f64, f64) -> Primitive,
    ) -> Result<Self, Error> {
        if nx == 0 {
            return Err(invalid("nx", nx, "need at least 1 cell"));
        }
        if ny == 0 {
            return Err(invalid("ny", ny, "need at least 1 cell"));
        }
        if !(gamma > 1.0 && gamma.is_finite()) {
            return Err(invalid("gamma", gamma, "must be > 1"));
        }
        validate_cfl(cfl)?;
        for b in bc {
            if b == Boundary::Wall {
                return Err(invalid(
                    "boundary",
                    format!("{b:?}"),
                    "the Euler solver supports Open and Periodic only",
                ));
            }
        }
        let (px, py) = (nx + 2 * GHOST, ny + 2 * GHOST);
        let mut s = Self {
            nx,
            ny,
            dx: 1.0 / nx as f64,
            dy: 1.0 / ny as f64,
            gamma,
            cfl,
            bc,
            time: 0.0,
            steps: 0,
            u: vec![[0.0; 4]; px * py],
            u_new: vec![[0.0; 4]; px * py],
            w: vec![[0.0; 4]; px * py],
            faces: vec![[[0.0; 4]; 4]; px * py],
            flux: vec![[[0.0; 4]; 2]; px * py],
        };
        for i in 0..nx {
            for j in 0..ny {
                let q = init((i as f64 + 0.5) * s.dx, (j as f64 + 0.5) * s.dy);
                if !(q.rho > 0.0 && q.p > 0.0 && q.u.is_finite() && q.v.is_finite()) {
                    return Err(invalid(
                        "initial state",
                        format!("{q:?} at cell ({i}, {j})"),
                        "density and pressure must be positive and velocities finite",
                    ));
                }
                let k = s.idx(i + GHOST, j + GHOST);
                s.u[k] = to_conserved([q.rho, q.u, q.v, q.p], gamma);
            }
        }
        Ok(s)
    }

    pub fn nx(&self) -> usize {
        self.nx
    }

    pub fn ny(&self) -> usize {
        self.ny
    }

    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    pub fn time(&self) -> f64 {
        self.time
    }

    /// Internal steps taken so far (for throughput measurements).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn idx(&self, i: usize, j: usize) -> usize {
        i * (self.ny + 2 * GHOST) + j
    }

    /// Conserved variables `(rho, rho u, rho v, E)` of cell `(i, j)`.
    pub fn conserved(&self, i: usize, j: usize) -> [f64; 4] {
        self.u[self.idx(i + GHOST, j + GHOST)]
    }

    /// Primitive variables of cell `(i, j)`.
    pub fn primitive(&self, i: usize, j: usize) -> Primitive {
        let [rho, u, v, p] = to_primitive(self.conserved(i, j), self.gamma);
        Primitive { rho, u, v, p }
    }

    /// Domain integrals of `(rho, rho u, rho v, E)`.
    pub fn totals(&self) -> [f64; 4] {
        let mut t = [0.0; 4];
        for i in 0..self.nx {
            for j in 0..self.ny {
                let c = self.conserved(i, j);
                for k in 0..4 {
                    t[k] += c[k];
                }
            }
        }
        t.map(|x| x * self.dx * self.dy)
    }

    /// The largest step the CFL condition allows in the current state.
    pub fn stable_dt(&self) -> f64 {
        let (idx, idy, g) = (1.0 / self.dx, 1.0 / self.dy, self.gamma);
        let py = self.ny + 2 * GHOST;
        let smax = par::max_over(self.nx, |i| {
            let row = &self.u[(i + GHOST) * py..(i + GHOST + 1) * py];
            row[GHOST..GHOST + self.ny]
                .iter()
                .map(|&c| {
                    let [rho, u, v, p] = to_primitive(c, g);
                    let a = (g * p / rho).sqrt();
                    f64::max((u.abs() + a) * idx, (v.abs() + a) * idy)
                })
                .fold(0.0, f64::max)
        });
        self.cfl / smax
    }

    fn fill_ghosts(u: &mut [[f64; 4]], nx: usize, ny: usize, bc: [Boundary; 2]) {
        let py = ny + 2 * GHOST;
        let at = |i: usize, j: usize| i * py + j;
        for j in GHOST..GHOST + ny {
            for g in 0..GHOST {
                let (lo_src, hi_src) = match bc[0] {
                    Boundary::Periodic => (nx + g, GHOST + g),
                    _ => (GHOST, GHOST + nx - 1),
                };
                u[at(g, j)] = u[at(lo_src, j)];
                u[at(GHOST + nx + g, j)] = u[at(hi_src, j)];
            }
        }
        // Ghost rows along x are already filled, so this pass also fills the corners.
        for i in 0..nx + 2 * GHOST {
            for g in 0..GHOST {
                let (lo_src, hi_src) = match bc[1] {
                    Boundary::Periodic => (ny + g, GHOST + g),
                    _ => (GHOST, GHOST + ny - 1),
                };
                u[at(i, g)] = u[at(i, lo_src)];
                u[at(i, GHOST + ny + g)] = u[at(i, hi_src)];
            }
        }
    }

    /// One MUSCL-Hancock step of length `dt`; `first_order` drops the slopes
    /// everywhere. Returns false (leaving the state untouched) if the result
    /// would have a non-positive density or pressure.
    fn try_step(&mut self, dt: f64, first_order: bool) -> bool {
        let (nx, ny, g) = (self.nx, self.ny, self.gamma);
        let py = ny + 2 * GHOST;
        let px = nx + 2 * GHOST;
        Self::fill_ghosts(&mut self.u, nx, ny, self.bc);
        let u = &self.u;
        par::for_chunks(&mut self.w, py, |i, row| {
            for (j, w) in row.iter_mut().enumerate() {
                *w = to_primitive(u[i * py + j], g);
            }
        });

        // Predicted face states for the interior and one ring of ghost cells.
        let w = &self.w;
        let (hdx, hdy) = (0.5 * dt / self.dx, 0.5 * dt / self.dy);
        par::for_chunks(&mut self.faces, py, |i, row| {
            if i == 0 || i == px - 1 {
                return;
            }
            for j in 1..py - 1 {
                let c = w[i * py + j];
                if first_order {
                    row[j] = [c; 4];
                    continue;
                }
                let sx = limited_slope(w[(i - 1) * py + j], c, w[(i + 1) * py + j]);
                let sy = limited_slope(w[i * py + j - 1], c, w[i * py + j + 1]);
                let f = hancock_faces(c, sx, sy, hdx, hdy, g);
                let ok = f
                    .iter()
                    .all(|s| s[0] > 0.0 && s[3] > 0.0 && s.iter().all(|x| x.is_finite()));
                // A cell whose reconstruction is non-physical falls back to first order.
                row[j] = if ok { f } else { [c; 4] };
            }
        });

        let faces = &self.faces;
        par::for_chunks(&mut self.flux, py, |i, row| {
            if i == 0 || i >= px - 2 {
                return;
            }
            for j in 1..py - 2 {
                let here = faces[i * py + j];
                let fx = hllc(here[1], faces[(i + 1) * py + j][0], g);
                let fy = hllc(rotate(here[3]), rotate(faces[i * py + j + 1][2]), g);
                row[j] = [fx, [fy[0], fy[2], fy[1], fy[3]]];
            }
        });

        let flux = &self.flux;
        let bad = AtomicBool::new(false);
        let (ldx, ldy) = (dt / self.dx, dt / self.dy);
        par::for_chunks(&mut self.u_new, py, |i, row| {
            if !(GHOST..GHOST + nx).contains(&i) {
                return;
            }
            for j in GHOST..GHOST + ny {
                let k = i * py + j;
                let (fe, fw, fn_, fs) = (flux[k][0], flux[k - py][0], flux[k][1], flux[k - 1][1]);
                let old = u[k];
                let mut new = [0.0; 4];
                for c in 0..4 {
                    // One commutative sum of the x and y parts keeps the update transpose-exact.
                    new[c] = old[c] - ((fe[c] - fw[c]) * ldx + (fn_[c] - fs[c]) * ldy);
                }
                let [rho, _, _, p] = to_primitive(new, g);
                if !(rho > 0.0 && p > 0.0 && p.is_finite() && rho.is_finite()) {
                    bad.store(true, Ordering::Relaxed);
                }
                row[j] = new;
            }
        });
        if bad.load(Ordering::Relaxed) {
            return false;
        }
        std::mem::swap(&mut self.u, &mut self.u_new);
        true
    }

    /// Advances by `dt` (at most the stable step). If the second-order update
    /// would leave a non-positive density or pressure, the step is retried at
    /// first order (positive for HLLC under the CFL limit), then with halved steps.
    pub fn step(&mut self, dt: f64) -> Result<(), Error> {
        let mut h = dt;
        let mut left = dt;
        // Halved sub-steps still have to add up to `dt`.
        while left > 0.0 {
            let this = h.min(left);
            if self.try_step(this, false) || self.try_step(this, true) {
                self.steps += 1;
                left -= this;
                if left <= 1e-15 * dt {
                    break;
                }
                continue;
            }
            h *= 0.5;
            if h < 1e-12 * dt {
                return Err(Error::Diverged {
                    time: self.time,
                    reason: "no positive update even at first order".into(),
                });
            }
        }
        self.time += dt;
        Ok(())
    }

    /// Steps with the CFL-limited step until `t_end`, shrinking the last step to land on it exactly.
    pub fn advance_to(&mut self, t_end: f64) -> Result<(), Error> {
        while self.time < t_end {
            let dt = self.stable_dt();
            if !dt.is_finite() || dt <= 0.0 {
                return Err(Error::Diverged {
                    time: self.time,
                    reason: format!("stable step is {dt}"),
                });
            }
            if self.time + dt >= t_end {
                self.step(t_end - self.time)?;
                self.time = t_end;
            } else {
                self.step(dt)?;
            }
        }
        Ok(())
    }

    /// Appends the current state as `[nx, ny, 5]` channels energy, density, pressure, momentum x, momentum y.
    pub fn write_frame(&self, out: &mut Vec<f32>) {
        for i in 0..self.nx {
            for j in 0..self.ny {
                let c = self.conserved(i, j);
                let [rho, _, _, p] = to_primitive(c, self.gamma);
                out.extend_from_slice(&[
                    c[3] as f32,
                    rho as f32,
                    p as f32,
                    c[1] as f32,
                    c[2] as f32,
                ]);
            }
        }
    }
}

fn to_conserved([rho, u, v, p]: [f64; 4], g: f64) -> [f64; 4] {
    [
        rho,
        rho * u,
        rho * v,
        p / (g - 1.0) + 0.5 * rho * (u * u + v * v),
    ]
}

fn to_primitive([rho, mx, my, e]: [f64; 4], g: f64) -> [f64; 4] {
    let (u, v) = (mx / rho, my / rho);
    [rho, u, v, (g - 1.0) * (e - 0.5 * rho * (u * u + v * v))]
}

fn rotate([rho, u, v, p]: [f64; 4]) -> [f64; 4] {
    [rho, v, u, p]
}

/// Van Leer's harmonic limiter, componentwise.
fn limited_slope(l: [f64; 4], c: [f64; 4], r: [f64; 4]) -> [f64; 4] {
    std::array::from_fn(|k| {
        let (a, b) = (c[k] - l[k], r[k] - c[k]);
        if a * b > 0.0 {
            2.0 * a * b / (a + b)
        } else {
            0.0
        }
    })
}

/// Evolves the cell by half a step with the primitive-form equations, then
/// extrapolates to the four faces. `sx`, `sy` are slopes times the cell size;
/// `hdx = dt / (2 dx)`.
fn hancock_faces(
    c: [f64; 4],
    sx: [f64; 4],
    sy: [f64; 4],
    hdx: f64,
    hdy: f64,
    g: f64,
) -> [[f64; 4]; 4] {
    let [rho, u, v, p] = c;
    let [drx, dux, dvx, dpx] = sx;
    let [dry, duy, dvy, dpy] = sy;
    let half = [
        rho - ((u * drx + rho * dux) * hdx + (v * dry + rho * dvy) * hdy),
        u - ((u * dux + dpx / rho) * hdx + (v * duy) * hdy),
        v - ((u * dvx) * hdx + (v * dvy + dpy / rho) * hdy),
        p - ((u * dpx + g * p * dux) * hdx + (v * dpy + g * p * dvy) * hdy),
    ];
    let f = |s: [f64; 4], sign: f64| -> [f64; 4] {
        std::array::from_fn(|k| half[k] + sign * 0.5 * s[k])
    };
    [f(sx, -1.0), f(sx, 1.0), f(sy, -1.0), f(sy, 1.0)]
}

fn physical_flux([rho, u, v, p]: [f64; 4], e: f64) -> [f64; 4] {
    let m = rho * u;
    [m, m * u + p, m * v, u * (e + p)]
}

/// HLLC flux in x between primitive states `l` and `r` (Toro 2009, eqs. 10.37-10.39).
fn hllc(l: [f64; 4], r: [f64; 4], g: f64) -> [f64; 4] {
    let [rl, ul, vl, pl] = l;
    let [rr, ur, vr, pr] = r;
    let (al, ar) = ((g * pl / rl).sqrt(), (g * pr / rr).sqrt());
    let sl = f64::min(ul - al, ur - ar);
    let sr = f64::max(ul + al, ur + ar);
    let el = pl / (g - 1.0) + 0.5 * rl * (ul * ul + vl * vl);
    let er = pr / (g - 1.0) + 0.5 * rr * (ur * ur + vr * vr);
    if sl >= 0.0 {
        return physical_flux(l, el);
    }
    if sr <= 0.0 {
        return physical_flux(r, er);
    }
    let ml = rl * (sl - ul);
    let mr = rr * (sr - ur);
    let s = (pr - pl + ul * ml - ur * mr) / (ml - mr);
    let star = |rho: f64, u: f64, v: f64, p: f64, e: f64, sk: f64| -> [f64; 4] {
        let f = rho * (sk - u) / (sk - s);
        [
            f,
            f * s,
            f * v,
            f * (e / rho + (s - u) * (s + p / (rho * (sk - u)))),
        ]
    };
    if s >= 0.0 {
        let fl = physical_flux(l, el);
        let us = star(rl, ul, vl, pl, el, sl);
        let ul_c = [rl, rl * ul, rl * vl, el];
        std::array::from_fn(|k| fl[k] + sl * (us[k] - ul_c[k]))
    } else {
        let fr = physical_flux(r, er);
        let us = star(rr, ur, vr, pr, er, sr);
        let ur_c = [rr, rr * ur, rr * vr, er];
        std::array::from_fn(|k| fr[k] + sr * (us[k] - ur_c[k]))
    }
}

/// Cell-centre coordinates of `n` cells on `[0, 1]`.
pub(crate) fn centres(n: usize) -> Vec<f64> {
    (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect()
}

/// Simulates one trajectory from the random initial condition of `seed`.
///
/// Frames are stored at `k * frame_dt` for `k = 0..frames`. Fields: energy,
/// density, pressure, momentum (x, y); scalar `gamma`.
pub fn generate(
    cfg: &EulerConfig,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Trajectory, Error> {
    cfg.validate()?;
    let ic = QuadrantIc::random(seed);
    let mut solver = EulerSolver::new(
        cfg.nx,
        cfg.ny,
        ic.gamma,
        cfg.boundaries(),
        cfg.cfl,
        |x, y| ic.at(x, y),
    )?;
    let mut data = Vec::with_capacity(cfg.frames * cfg.nx * cfg.ny * 5);
    let mut times = Vec::with_capacity(cfg.frames);
    for k in 0..cfg.frames {
        let t = k as f64 * cfg.frame_dt;
        solver.advance_to(t)?;
        solver.write_frame(&mut data);
        times.push(t);
        progress(k + 1, cfg.frames);
    }
    let fields = crate::System::Euler {
        periodic: cfg.periodic,
    }
    .fields();
    let name = if cfg.periodic {
        "euler_multi_quadrants_periodicBC"
    } else {
        "euler_multi_quadrants_openBC"
    };
    Ok(Trajectory {
        dataset_name: name.into(),
        x: centres(cfg.nx),
        y: centres(cfg.ny),
        times,
        t0_fields: crate::owned(fields.0),
        t1_fields: crate::owned(fields.1),
        data,
        scalars: vec![("gamma".into(), ic.gamma)],
        boundaries: cfg.boundaries(),
    })
}
