//! 2-D Rayleigh-Bénard convection (Boussinesq) in free-fall units.
//!
//! ```text
//! du/dt + (u . grad) u = -grad p + nu lap u + b z^,   div u = 0,
//! db/dt + (u . grad) b = kappa lap b,   kappa = (Ra Pr)^-1/2,   nu = (Ra / Pr)^-1/2
//! ```
//! on `[0, 4) x [0, 1]`, periodic in x, no-slip walls, `b = 1` at `z = 0` and `b = 0` at `z = 1`.
//!
//! Numerics: Fourier in x (2/3-rule dealiasing of the nonlinear terms), second
//! order finite volumes on a staggered (MAC) grid in z whose faces are
//! Chebyshev-Gauss-Lobatto points, so cells shrink towards the walls where the
//! boundary layers are. `u`, `b`, `p` live at cell centres and `w` on faces
//! (zero on the walls). Nonlinear and buoyancy terms use variable-step
//! Adams-Bashforth 2, diffusion Crank-Nicolson (one real tridiagonal solve per
//! wavenumber and field), and an incremental pressure-correction projection
//! whose Poisson operator is exactly the discrete divergence of the discrete
//! gradient: one tridiagonal solve per wavenumber leaves the velocity
//! divergence-free to round-off. Advection is in flux form (central for the
//! velocity, van Leer-limited upwind in z for the buoyancy), so the horizontal
//! mean heat flux is discretely conserved and the wall and bulk Nusselt numbers
//! agree exactly in a steady state.

use crate::rng::SplitMix64;
use crate::{Boundary, Error, Trajectory, invalid, par};
use rustfft::num_complex::Complex64 as C64;
use rustfft::{Fft, FftPlanner};
use std::f64::consts::PI;
use std::sync::Arc;

/// Horizontal period of the domain (The Well's aspect ratio 4).
pub const LX: f64 = 4.0;
/// Rayleigh numbers [`generate`] draws from when `rayleigh` is `None`.
pub const RAYLEIGHS: [f64; 3] = [1e6, 3e6, 1e7];
/// Prandtl numbers [`generate`] draws from when `prandtl` is `None` (The Well's set).
pub const PRANDTLS: [f64; 7] = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];
/// Initial buoyancy contrasts `db0` of the linear initial profile.
pub const DB0S: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];

/// The first frame of [`generate`]'s trajectories (at the default `frame_dt`) past the onset
/// of convection: before it they hold a motionless conduction state, 50-80 frames of zero
/// velocity (later at low Rayleigh numbers), where a rollout shows nothing and VRMSE divides
/// by a spatial variance of 0. Viewers and evaluations start here.
pub const CONVECTION_FRAME: usize = 80;

/// Settings of [`generate`].
///
/// The default 128 x 32 grid with 200 frames every 0.25 free-fall times
/// (t up to 49.75, as in The Well) covers the growth of the instability from
/// the `1e-3` noise (about 10-20 time units at Ra = 1e6-1e7) and the
/// convection that follows.
#[derive(Clone, Debug, PartialEq)]
pub struct RbConfig {
    /// Grid points along x (even; default 128).
    pub nx: usize,
    /// Cells along z (default 32).
    pub nz: usize,
    /// Stored frames including the initial condition (default 200).
    pub frames: usize,
    /// Time between stored frames in free-fall units (default 0.25).
    pub frame_dt: f64,
    /// Rayleigh number; `None` draws from [`RAYLEIGHS`] with the seed.
    pub rayleigh: Option<f64>,
    /// Prandtl number; `None` draws from [`PRANDTLS`] with the seed.
    pub prandtl: Option<f64>,
    /// Advective Courant number of the internal steps (default 0.4).
    pub cfl: f64,
    /// Largest internal step (default 0.05), which keeps the explicit buoyancy term accurate.
    pub max_dt: f64,
}

impl Default for RbConfig {
    fn default() -> Self {
        Self {
            nx: 128,
            nz: 32,
            frames: 200,
            frame_dt: 0.25,
            rayleigh: None,
            prandtl: None,
            cfl: 0.4,
            max_dt: 0.05,
        }
    }
}

/// Physical and numerical parameters of an [`RbSolver`].
#[derive(Clone, Debug, PartialEq)]
pub struct RbParams {
    pub nx: usize,
    pub nz: usize,
    pub rayleigh: f64,
    pub prandtl: f64,
    pub cfl: f64,
    pub max_dt: f64,
}

impl RbParams {
    fn validate(&self) -> Result<(), Error> {
        if self.nx < 4 || !self.nx.is_multiple_of(2) {
            return Err(invalid("nx", self.nx, "must be even and at least 4"));
        }
        if self.nz < 4 {
            return Err(invalid("nz", self.nz, "need at least 4 cells"));
        }
        if !(self.rayleigh > 0.0 && self.rayleigh <= 1e8) {
            return Err(invalid("rayleigh", self.rayleigh, "must be in (0, 1e8]"));
        }
        if !(self.prandtl >= 0.01 && self.prandtl <= 100.0) {
            return Err(invalid("prandtl", self.prandtl, "must be in [0.01, 100]"));
        }
        if !(self.cfl > 0.0 && self.cfl <= 1.0) {
            return Err(invalid("cfl", self.cfl, "must be in (0, 1]"));
        }
        if !(self.max_dt > 0.0 && self.max_dt.is_finite()) {
            return Err(invalid("max_dt", self.max_dt, "must be positive"));
        }
        Ok(())
    }
}

/// Per-mode storage layout: the state and the previous nonlinear terms of one
/// wavenumber sit together so a thread owns everything its solves touch.
#[derive(Clone, Copy, Debug)]
struct Layout {
    nz: usize,
}

impl Layout {
    fn len(self) -> usize {
        7 * self.nz + 2
    }
    fn u(self) -> std::ops::Range<usize> {
        0..self.nz
    }
    fn w(self) -> std::ops::Range<usize> {
        self.nz..2 * self.nz + 1
    }
    fn b(self) -> std::ops::Range<usize> {
        2 * self.nz + 1..3 * self.nz + 1
    }
    fn p(self) -> std::ops::Range<usize> {
        3 * self.nz + 1..4 * self.nz + 1
    }
    fn nu_prev(self) -> std::ops::Range<usize> {
        4 * self.nz + 1..5 * self.nz + 1
    }
    fn nw_prev(self) -> std::ops::Range<usize> {
        5 * self.nz + 1..6 * self.nz + 2
    }
    fn nb_prev(self) -> std::ops::Range<usize> {
        6 * self.nz + 2..7 * self.nz + 2
    }
}

/// Real-data FFTs of length `n` that transform two real signals per complex FFT.
#[derive(Clone)]
struct RealPairFft {
    n: usize,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for RealPairFft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RealPairFft({})", self.n)
    }
}

impl RealPairFft {
    fn new(n: usize) -> Self {
        let mut planner = FftPlanner::new();
        Self {
            n,
            fwd: planner.plan_fft_forward(n),
            inv: planner.plan_fft_inverse(n),
        }
    }

    /// Half spectra (`n/2 + 1` modes, normalised by `1/n`) of the real signals `a` and `b`.
    fn forward(&self, a: &[f64], b: &[f64], fa: &mut [C64], fb: &mut [C64]) {
        let n = self.n;
        let mut buf: Vec<C64> = a.iter().zip(b).map(|(&x, &y)| C64::new(x, y)).collect();
        self.fwd.process(&mut buf);
        let s = 1.0 / n as f64;
        for m in 0..=n / 2 {
            let c = buf[m];
            let d = buf[(n - m) % n].conj();
            fa[m] = (c + d) * (0.5 * s);
            fb[m] = (c - d) * C64::new(0.0, -0.5 * s);
        }
    }

    /// Real signals of the half spectra `fa` and `fb`.
    fn inverse(&self, fa: &[C64], fb: &[C64], a: &mut [f64], b: &mut [f64]) {
        let n = self.n;
        let i = C64::new(0.0, 1.0);
        let mut buf = vec![C64::new(0.0, 0.0); n];
        for m in 0..=n / 2 {
            buf[m] = fa[m] + i * fb[m];
            if m > 0 && m < n - m {
                buf[n - m] = fa[m].conj() + i * fb[m].conj();
            }
        }
        self.inv.process(&mut buf);
        for (k, c) in buf.iter().enumerate() {
            a[k] = c.re;
            b[k] = c.im;
        }
    }
}

/// Solves the tridiagonal system `lo[j] x[j-1] + di[j] x[j] + up[j] x[j+1] = d[j]` in place.
fn thomas(lo: &[f64], di: &[f64], up: &[f64], d: &mut [C64]) {
    let n = d.len();
    let mut c = vec![0.0; n];
    let mut beta = di[0];
    c[0] = up[0] / beta;
    d[0] /= beta;
    for j in 1..n {
        beta = di[j] - lo[j] * c[j - 1];
        c[j] = up[j] / beta;
        d[j] = (d[j] - d[j - 1] * lo[j]) / beta;
    }
    for j in (0..n - 1).rev() {
        d[j] -= d[j + 1] * c[j];
    }
}

/// Vertical grid derived from Chebyshev-Gauss-Lobatto faces.
#[derive(Clone, Debug)]
struct Grid {
    /// Cell centres, midpoints of the faces.
    zc: Vec<f64>,
    /// Cell heights.
    dz: Vec<f64>,
    /// Distance from each centre to the next one below (index 0: to the bottom wall).
    h_below: Vec<f64>,
    /// Distance from each centre to the next one above (last: to the top wall).
    h_above: Vec<f64>,
}

impl Grid {
    fn new(nz: usize) -> Self {
        let zf: Vec<f64> = (0..=nz)
            .map(|k| 0.5 * (1.0 - (PI * k as f64 / nz as f64).cos()))
            .collect();
        let zc: Vec<f64> = (0..nz).map(|j| 0.5 * (zf[j] + zf[j + 1])).collect();
        let dz: Vec<f64> = (0..nz).map(|j| zf[j + 1] - zf[j]).collect();
        let h_below = (0..nz)
            .map(|j| if j == 0 { zc[0] } else { zc[j] - zc[j - 1] })
            .collect();
        let h_above = (0..nz)
            .map(|j| {
                if j == nz - 1 {
                    1.0 - zc[j]
                } else {
                    zc[j + 1] - zc[j]
                }
            })
            .collect();
        Self {
            zc,
            dz,
            h_below,
            h_above,
        }
    }
}

/// Cell-centre heights of an `nz`-cell grid (what [`RbSolver::z_coords`] returns), for readers
/// of stored fields that need their coordinates without a solver.
pub fn z_centres(nz: usize) -> Vec<f64> {
    Grid::new(nz).zc
}

/// The Rayleigh-Bénard solver; see the module documentation for the scheme.
#[derive(Clone, Debug)]
pub struct RbSolver {
    params: RbParams,
    nu: f64,
    kappa: f64,
    grid: Grid,
    nk: usize,
    lay: Layout,
    fft: RealPairFft,
    /// Spectral state, one `Layout` chunk per wavenumber `m = 0..=nx/2`.
    state: Vec<C64>,
    /// Physical rows: `[u, b, w_face]` for row `j = 0..=nz` (u and b unused in the last).
    phys: Vec<f64>,
    /// Nonlinear terms per row: `[N_u, N_b, N_w(face j)]`, each `nk` modes.
    rows: Vec<C64>,
    time: f64,
    steps: u64,
    dt_prev: Option<f64>,
}

impl RbSolver {
    /// A solver at rest with buoyancy `b_init(x, z)` at the cell centres and the
    /// hydrostatic pressure of that buoyancy's horizontal mean. Starting from the
    /// pressure that balances the initial buoyancy (rather than `p = 0`) avoids a
    /// spurious first-step impulse of the pressure-correction scheme; the
    /// velocity it leaves is zero either way.
    pub fn new(params: RbParams, b_init: impl Fn(f64, f64) -> f64) -> Result<Self, Error> {
        params.validate()?;
        let grid = Grid::new(params.nz);
        let dx = LX / params.nx as f64;
        let rows: Vec<f64> = grid
            .zc
            .iter()
            .flat_map(|&z| (0..params.nx).map(move |i| (i as f64 * dx, z)))
            .map(|(x, z)| b_init(x, z))
            .collect();
        Self::with_buoyancy(params, &rows)
    }

    /// Like [`RbSolver::new`] with the initial buoyancy given as `[nz][nx]` values at the cell centres.
    pub fn with_buoyancy(params: RbParams, b: &[f64]) -> Result<Self, Error> {
        params.validate()?;
        let (nx, nz) = (params.nx, params.nz);
        if b.len() != nx * nz {
            return Err(invalid("initial buoyancy", b.len(), "need nx * nz values"));
        }
        if let Some(v) = b.iter().find(|v| !v.is_finite()) {
            return Err(invalid("initial buoyancy", v, "must be finite"));
        }
        let nk = nx / 2 + 1;
        let lay = Layout { nz };
        let mut s = Self {
            nu: (params.rayleigh / params.prandtl).powf(-0.5),
            kappa: (params.rayleigh * params.prandtl).powf(-0.5),
            params,
            grid: Grid::new(nz),
            nk,
            lay,
            fft: RealPairFft::new(nx),
            state: vec![C64::new(0.0, 0.0); nk * lay.len()],
            phys: vec![0.0; (nz + 1) * 3 * nx],
            rows: vec![C64::new(0.0, 0.0); (nz + 1) * 3 * nk],
            time: 0.0,
            steps: 0,
            dt_prev: None,
        };
        let zero = vec![0.0; nx];
        let mut spec = vec![C64::new(0.0, 0.0); nk];
        let mut dummy = vec![C64::new(0.0, 0.0); nk];
        for j in 0..nz {
            s.fft
                .forward(&b[j * nx..(j + 1) * nx], &zero, &mut spec, &mut dummy);
            for m in 0..nk {
                if s.kept(m) {
                    s.state[m * lay.len() + lay.b().start + j] = spec[m];
                }
            }
        }
        s.set_hydrostatic_pressure();
        Ok(s)
    }

    fn x(&self, i: usize) -> f64 {
        LX * i as f64 / self.params.nx as f64
    }

    /// Modes that survive the 2/3 dealiasing rule.
    fn kept(&self, m: usize) -> bool {
        3 * m < self.params.nx
    }

    fn wavenumber(m: usize) -> f64 {
        2.0 * PI * m as f64 / LX
    }

    pub fn params(&self) -> &RbParams {
        &self.params
    }

    pub fn time(&self) -> f64 {
        self.time
    }

    /// Internal steps taken so far (for throughput measurements).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Viscosity `(Ra / Pr)^-1/2`.
    pub fn nu(&self) -> f64 {
        self.nu
    }

    /// Thermal diffusivity `(Ra Pr)^-1/2`.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }

    /// Grid point coordinates along x.
    pub fn x_coords(&self) -> Vec<f64> {
        (0..self.params.nx).map(|i| self.x(i)).collect()
    }

    /// Cell-centre heights.
    pub fn z_coords(&self) -> &[f64] {
        &self.grid.zc
    }

    /// Cell heights (the quadrature weights of a vertical mean).
    pub fn cell_heights(&self) -> &[f64] {
        &self.grid.dz
    }

    fn mode(&self, m: usize) -> &[C64] {
        &self.state[m * self.lay.len()..(m + 1) * self.lay.len()]
    }

    /// Replaces the mean pressure profile by the hydrostatic balance of the mean
    /// buoyancy, integrating `dp/dz = b` with the same face averages the solver uses.
    pub fn set_hydrostatic_pressure(&mut self) {
        let (lay, nz) = (self.lay, self.params.nz);
        let b: Vec<f64> = self.mode(0)[lay.b()].iter().map(|c| c.re).collect();
        let mut p = vec![0.0; nz];
        for j in 1..nz {
            p[j] = p[j - 1] + self.grid.h_below[j] * 0.5 * (b[j - 1] + b[j]);
        }
        let mean: f64 = p.iter().zip(&self.grid.dz).map(|(p, d)| p * d).sum();
        for j in 0..nz {
            self.state[lay.p().start + j] = C64::new(p[j] - mean, 0.0);
        }
    }

    /// Fills `phys` with u, b and face w of the current state.
    fn refresh_physical(&mut self) {
        let mut phys = std::mem::take(&mut self.phys);
        self.physical_into(&mut phys);
        self.phys = phys;
    }

    /// Physical rows `[u, b, w_face]` for `j = 0..=nz` of the current state.
    fn physical_into(&self, phys: &mut [f64]) {
        let (nx, nz, nk, lay) = (self.params.nx, self.params.nz, self.nk, self.lay);
        let state = &self.state;
        let fft = &self.fft;
        let len = lay.len();
        par::for_chunks(phys, 3 * nx, |j, row| {
            let gather =
                |off: usize| -> Vec<C64> { (0..nk).map(|m| state[m * len + off]).collect() };
            let (ub, w) = row.split_at_mut(2 * nx);
            let (u, b) = ub.split_at_mut(nx);
            let zero = vec![C64::new(0.0, 0.0); nk];
            let mut scratch = vec![0.0; nx];
            // u and w share an FFT so that a fluid at rest stays exactly at rest
            // (pairing leaks round-off between the two signals).
            if j < nz {
                fft.inverse(&gather(lay.u().start + j), &gather(lay.w().start + j), u, w);
                fft.inverse(&gather(lay.b().start + j), &zero, b, &mut scratch);
            } else {
                fft.inverse(&gather(lay.w().start + j), &zero, w, &mut scratch);
            }
        });
    }

    /// The advective step limit of the state in `phys`.
    fn cfl_dt(&self) -> f64 {
        let (nx, nz) = (self.params.nx, self.params.nz);
        let dx = LX / nx as f64;
        let (phys, g) = (&self.phys, &self.grid);
        let rate = par::max_over(nz + 1, |j| {
            let row = &phys[j * 3 * nx..(j + 1) * 3 * nx];
            let mut r: f64 = 0.0;
            if j < nz {
                r = row[..nx].iter().fold(0.0f64, |a, u| a.max(u.abs())) / dx;
            }
            if j > 0 && j < nz {
                r = r.max(row[2 * nx..].iter().fold(0.0f64, |a, w| a.max(w.abs())) / g.h_below[j]);
            }
            r
        });
        if rate > 0.0 {
            (self.params.cfl / rate).min(self.params.max_dt)
        } else {
            self.params.max_dt
        }
    }

    /// Flux-form advection terms of u, b (centres) and w (faces), per row, in spectral space.
    fn nonlinear(&mut self) {
        let (nx, nz, nk) = (self.params.nx, self.params.nz, self.nk);
        let (phys, g, fft) = (&self.phys, &self.grid, &self.fft);
        let u = |j: usize| &phys[j * 3 * nx..j * 3 * nx + nx];
        let w = |j: usize| &phys[j * 3 * nx + 2 * nx..(j + 1) * 3 * nx];
        par::for_chunks(&mut self.rows, 3 * nk, |j, out| {
            let (nu_out, rest) = out.split_at_mut(nk);
            let (nb_out, nw_out) = rest.split_at_mut(nk);
            let ik = |m: usize| C64::new(0.0, Self::wavenumber(m));
            let mut xs = vec![C64::new(0.0, 0.0); nk];
            let mut zs = vec![C64::new(0.0, 0.0); nk];
            // Face average of a centre field; walls carry no flux because w = 0 there.
            // Face average of u at interior face k.
            let face = |k: usize, i: usize| 0.5 * (u(k - 1)[i] + u(k)[i]);
            // Walls carry no advective flux because w = 0 there.
            let zflux = |k: usize, i: usize| {
                if k == 0 || k == nz {
                    0.0
                } else {
                    w(k)[i] * face(k, i)
                }
            };
            if j < nz {
                let uj = u(j);
                let bj = &phys[j * 3 * nx + nx..j * 3 * nx + 2 * nx];
                let uu: Vec<f64> = uj.iter().map(|v| v * v).collect();
                let zu: Vec<f64> = (0..nx)
                    .map(|i| (zflux(j + 1, i) - zflux(j, i)) / g.dz[j])
                    .collect();
                fft.forward(&uu, &zu, &mut xs, &mut zs);
                for m in 0..nk {
                    nu_out[m] = -(ik(m) * xs[m]) - zs[m];
                }
                let ub: Vec<f64> = uj.iter().zip(bj).map(|(a, c)| a * c).collect();
                let bflux = |k: usize, i: usize| {
                    if k == 0 || k == nz {
                        0.0
                    } else {
                        w(k)[i] * upwind_face_b(phys, g, nx, k, i)
                    }
                };
                let zb: Vec<f64> = (0..nx)
                    .map(|i| (bflux(j + 1, i) - bflux(j, i)) / g.dz[j])
                    .collect();
                fft.forward(&ub, &zb, &mut xs, &mut zs);
                for m in 0..nk {
                    nb_out[m] = -(ik(m) * xs[m]) - zs[m];
                }
            }
            if j > 0 && j < nz {
                let wj = w(j);
                let uw: Vec<f64> = (0..nx).map(|i| face(j, i) * wj[i]).collect();
                // w at the centres below and above face j, squared: the vertical flux of w.
                let wc2 = |c: usize, i: usize| {
                    let v = 0.5 * (w(c)[i] + w(c + 1)[i]);
                    v * v
                };
                let zw: Vec<f64> = (0..nx)
                    .map(|i| (wc2(j, i) - wc2(j - 1, i)) / g.h_below[j])
                    .collect();
                fft.forward(&uw, &zw, &mut xs, &mut zs);
                for m in 0..nk {
                    nw_out[m] = -(ik(m) * xs[m]) - zs[m];
                }
            }
        });
    }

    /// One step of length `dt`.
    pub fn step(&mut self, dt: f64) {
        self.refresh_physical();
        self.step_from_physical(dt);
    }

    fn step_from_physical(&mut self, dt: f64) {
        self.nonlinear();
        let (nz, nk, lay) = (self.params.nz, self.nk, self.lay);
        let (nu, kappa) = (self.nu, self.kappa);
        // Variable-step Adams-Bashforth 2; the first step is forward Euler.
        let (ab_new, ab_old) = match self.dt_prev {
            Some(prev) => {
                let r = dt / prev;
                (1.0 + 0.5 * r, -0.5 * r)
            }
            None => (1.0, 0.0),
        };
        let (rows, g) = (&self.rows, &self.grid);
        let nx = self.params.nx;
        par::for_chunks(&mut self.state, lay.len(), |m, st| {
            if 3 * m >= nx {
                st.fill(C64::new(0.0, 0.0));
                return;
            }
            let k = Self::wavenumber(m);
            let k2 = k * k;
            let ik = C64::new(0.0, k);
            let row = |j: usize, f: usize| rows[j * 3 * nk + f * nk + m];

            // Centre operator (u and b, Dirichlet walls) and face operator (w).
            let c_lo: Vec<f64> = (0..nz).map(|j| 1.0 / (g.dz[j] * g.h_below[j])).collect();
            let c_up: Vec<f64> = (0..nz).map(|j| 1.0 / (g.dz[j] * g.h_above[j])).collect();
            let f_lo: Vec<f64> = (1..nz)
                .map(|k| 1.0 / (g.h_below[k] * g.dz[k - 1]))
                .collect();
            let f_up: Vec<f64> = (1..nz).map(|k| 1.0 / (g.h_below[k] * g.dz[k])).collect();

            // Crank-Nicolson: (1 - dt/2 D A) x_new = (1 + dt/2 D A) x_old + dt F, A = lap_z - k^2.
            let cn =
                |x: &mut [C64], f: &[C64], lo: &[f64], up: &[f64], diff: f64, wall_bottom: f64| {
                    let n = x.len();
                    let h = 0.5 * dt * diff;
                    let diag: Vec<f64> = (0..n).map(|j| -(lo[j] + up[j]) - k2).collect();
                    let mut rhs: Vec<C64> = (0..n)
                        .map(|j| {
                            let mut ax = x[j] * diag[j];
                            if j > 0 {
                                ax += x[j - 1] * lo[j];
                            }
                            if j + 1 < n {
                                ax += x[j + 1] * up[j];
                            }
                            x[j] + ax * h + f[j] * dt
                        })
                        .collect();
                    // The bottom wall value enters both Crank-Nicolson halves.
                    rhs[0] += C64::new(dt * diff * lo[0] * wall_bottom, 0.0);
                    let mlo: Vec<f64> = lo.iter().map(|v| -h * v).collect();
                    let mup: Vec<f64> = up.iter().map(|v| -h * v).collect();
                    let mdi: Vec<f64> = diag.iter().map(|v| 1.0 - h * v).collect();
                    thomas(&mlo, &mdi, &mup, &mut rhs);
                    x.copy_from_slice(&rhs);
                };

            let p: Vec<C64> = st[lay.p()].to_vec();
            let b_old: Vec<C64> = st[lay.b()].to_vec();
            // Nonlinear + buoyancy terms, extrapolated with AB2, pressure gradient of step n.
            let mut fu = vec![C64::new(0.0, 0.0); nz];
            let mut fb = vec![C64::new(0.0, 0.0); nz];
            for j in 0..nz {
                let (nu_new, nb_new) = (row(j, 0), row(j, 1));
                fu[j] = nu_new * ab_new + st[lay.nu_prev().start + j] * ab_old - ik * p[j];
                fb[j] = nb_new * ab_new + st[lay.nb_prev().start + j] * ab_old;
                st[lay.nu_prev().start + j] = nu_new;
                st[lay.nb_prev().start + j] = nb_new;
            }
            let mut fw = vec![C64::new(0.0, 0.0); nz - 1];
            for f in 1..nz {
                let nw_new = row(f, 2) + (b_old[f - 1] + b_old[f]) * 0.5;
                fw[f - 1] = nw_new * ab_new + st[lay.nw_prev().start + f] * ab_old
                    - (p[f] - p[f - 1]) / g.h_below[f];
                st[lay.nw_prev().start + f] = nw_new;
            }

            let mut u = st[lay.u()].to_vec();
            cn(&mut u, &fu, &c_lo, &c_up, nu, 0.0);
            let mut w = st[lay.w().start + 1..lay.w().end - 1].to_vec();
            cn(&mut w, &fw, &f_lo, &f_up, nu, 0.0);
            let mut b = b_old;
            cn(
                &mut b,
                &fb,
                &c_lo,
                &c_up,
                kappa,
                if m == 0 { 1.0 } else { 0.0 },
            );

            // Projection: (D G - k^2) phi = div u* / dt with no flux through the walls.
            let wf = |f: usize| {
                if f == 0 || f == nz {
                    C64::new(0.0, 0.0)
                } else {
                    w[f - 1]
                }
            };
            let mut phi: Vec<C64> = (0..nz)
                .map(|j| (ik * u[j] + (wf(j + 1) - wf(j)) / g.dz[j]) / dt)
                .collect();
            let p_lo: Vec<f64> = (0..nz)
                .map(|j| if j == 0 { 0.0 } else { c_lo[j] })
                .collect();
            let p_up: Vec<f64> = (0..nz)
                .map(|j| if j == nz - 1 { 0.0 } else { c_up[j] })
                .collect();
            let mut p_di: Vec<f64> = (0..nz).map(|j| -(p_lo[j] + p_up[j]) - k2).collect();
            let mut p_up = p_up;
            if m == 0 {
                // The mean mode is defined up to a constant: pin phi_0 = 0 (the
                // system is compatible, so the dropped equation still holds).
                p_di[0] = 1.0;
                p_up[0] = 0.0;
                phi[0] = C64::new(0.0, 0.0);
            }
            thomas(&p_lo, &p_di, &p_up, &mut phi);
            for j in 0..nz {
                u[j] -= ik * phi[j] * dt;
            }
            for f in 1..nz {
                w[f - 1] -= (phi[f] - phi[f - 1]) / g.h_below[f] * dt;
            }
            let mut pn: Vec<C64> = (0..nz).map(|j| p[j] + phi[j]).collect();
            if m == 0 {
                let mean: f64 = pn.iter().zip(&g.dz).map(|(p, d)| p.re * d).sum();
                for v in &mut pn {
                    *v = C64::new(v.re - mean, 0.0);
                }
                // Mean-mode fields of real data are real.
                for v in u.iter_mut().chain(w.iter_mut()).chain(b.iter_mut()) {
                    v.im = 0.0;
                }
            }
            st[lay.u()].copy_from_slice(&u);
            st[lay.w().start + 1..lay.w().end - 1].copy_from_slice(&w);
            st[lay.b()].copy_from_slice(&b);
            st[lay.p()].copy_from_slice(&pn);
        });
        self.dt_prev = Some(dt);
        self.time += dt;
        self.steps += 1;
    }

    /// Steps with the CFL-limited step until `t_end`, shrinking the last step to land on it exactly.
    pub fn advance_to(&mut self, t_end: f64) -> Result<(), Error> {
        while self.time < t_end {
            self.refresh_physical();
            let mut dt = self.cfl_dt();
            if !dt.is_finite() || self.phys.iter().any(|v| !v.is_finite()) {
                return Err(Error::Diverged {
                    time: self.time,
                    reason: "non-finite velocity".into(),
                });
            }
            let last = self.time + dt >= t_end;
            if last {
                dt = t_end - self.time;
            }
            self.step_from_physical(dt);
            if last {
                self.time = t_end;
            }
        }
        Ok(())
    }

    /// Physical fields `[b, p, u, w]` at the cell centres, each `[nz][nx]`
    /// (w interpolated from the faces).
    pub fn fields(&mut self) -> [Vec<f64>; 4] {
        self.refresh_physical();
        let (nx, nz, nk, lay) = (self.params.nx, self.params.nz, self.nk, self.lay);
        let mut b = vec![0.0; nz * nx];
        let mut p = vec![0.0; nz * nx];
        let mut u = vec![0.0; nz * nx];
        let mut w = vec![0.0; nz * nx];
        let zero = vec![C64::new(0.0, 0.0); nk];
        let mut scratch = vec![0.0; nx];
        for j in 0..nz {
            let row = &self.phys[j * 3 * nx..(j + 1) * 3 * nx];
            let above = &self.phys[(j + 1) * 3 * nx + 2 * nx..(j + 2) * 3 * nx];
            for i in 0..nx {
                u[j * nx + i] = row[i];
                b[j * nx + i] = row[nx + i];
                w[j * nx + i] = 0.5 * (row[2 * nx + i] + above[i]);
            }
            let spec: Vec<C64> = (0..nk).map(|m| self.mode(m)[lay.p().start + j]).collect();
            self.fft
                .inverse(&spec, &zero, &mut p[j * nx..(j + 1) * nx], &mut scratch);
        }
        [b, p, u, w]
    }

    /// Largest absolute discrete divergence `du/dx + dw/dz` over the cells.
    pub fn divergence_max(&self) -> f64 {
        let (nx, nz, nk, lay) = (self.params.nx, self.params.nz, self.nk, self.lay);
        let zero = vec![C64::new(0.0, 0.0); nk];
        let (mut out, mut scratch) = (vec![0.0; nx], vec![0.0; nx]);
        let mut worst: f64 = 0.0;
        for j in 0..nz {
            let div: Vec<C64> = (0..nk)
                .map(|m| {
                    let s = self.mode(m);
                    let wf = |f: usize| s[lay.w().start + f];
                    C64::new(0.0, Self::wavenumber(m)) * s[lay.u().start + j]
                        + (wf(j + 1) - wf(j)) / self.grid.dz[j]
                })
                .collect();
            self.fft.inverse(&div, &zero, &mut out, &mut scratch);
            worst = out.iter().fold(worst, |a, v| a.max(v.abs()));
        }
        worst
    }

    /// Horizontal mean of the product of two real fields given by half spectra.
    fn mean_product(a: &[C64], b: &[C64]) -> f64 {
        a.iter()
            .zip(b)
            .enumerate()
            .map(|(m, (x, y))| {
                let v = (x * y.conj()).re;
                if m == 0 { v } else { 2.0 * v }
            })
            .sum()
    }

    fn column(&self, off: usize) -> Vec<C64> {
        (0..self.nk).map(|m| self.mode(m)[off]).collect()
    }

    /// Nusselt number from the conductive flux through the walls (mean of bottom and top).
    pub fn nusselt_wall(&self) -> f64 {
        let (lay, nz, g) = (self.lay, self.params.nz, &self.grid);
        let b = &self.mode(0)[lay.b()];
        let bottom = (1.0 - b[0].re) / g.h_below[0];
        let top = b[nz - 1].re / g.h_above[nz - 1];
        0.5 * (bottom + top)
    }

    /// Nusselt number `1 + <w b> / kappa` from the volume-averaged convective
    /// flux on the interior faces, with the same face values of b as the advection
    /// scheme, so that it equals [`RbSolver::nusselt_wall`] exactly in a steady state.
    pub fn nusselt_flux(&self) -> f64 {
        let (nx, nz, g) = (self.params.nx, self.params.nz, &self.grid);
        let mut phys = vec![0.0; (nz + 1) * 3 * nx];
        self.physical_into(&mut phys);
        let mut flux = 0.0;
        for f in 1..nz {
            let w = &phys[f * 3 * nx + 2 * nx..(f + 1) * 3 * nx];
            let mean: f64 = (0..nx)
                .map(|i| w[i] * upwind_face_b(&phys, g, nx, f, i))
                .sum::<f64>()
                / nx as f64;
            flux += g.h_below[f] * mean;
        }
        1.0 + flux / self.kappa
    }

    /// Volume-averaged kinetic energy `<u^2 + w^2> / 2`.
    pub fn kinetic_energy(&self) -> f64 {
        let (lay, nz, g) = (self.lay, self.params.nz, &self.grid);
        let mut e = 0.0;
        for j in 0..nz {
            let u = self.column(lay.u().start + j);
            e += g.dz[j] * Self::mean_product(&u, &u);
        }
        for f in 1..nz {
            let w = self.column(lay.w().start + f);
            e += g.h_below[f] * Self::mean_product(&w, &w);
        }
        0.5 * e
    }
}

/// Buoyancy on interior face `k` seen by the vertical advective flux: a van
/// Leer-limited linear reconstruction from the upwind cell. Central averages
/// overshoot badly where thin plumes are under-resolved (b reached 15 at
/// Ra = 1e7, Pr = 10 on 128 x 32); the limited upwind value keeps b bounded
/// while staying second order where the flow is resolved.
fn upwind_face_b(phys: &[f64], g: &Grid, nx: usize, k: usize, i: usize) -> f64 {
    let nz = g.zc.len();
    let b = |j: usize| phys[j * 3 * nx + nx + i];
    let w = phys[k * 3 * nx + 2 * nx + i];
    // (upwind value, downwind value, far-upwind value, distance far-up to up, half cell towards the face)
    let (up, down, far, h_far, half) = if w >= 0.0 {
        let far = if k >= 2 { b(k - 2) } else { 1.0 };
        (b(k - 1), b(k), far, g.h_below[k - 1], 0.5 * g.dz[k - 1])
    } else {
        let far = if k + 1 < nz { b(k + 1) } else { 0.0 };
        (b(k), b(k - 1), far, g.h_above[k], 0.5 * g.dz[k])
    };
    let s1 = (down - up) / g.h_below[k];
    let s2 = (up - far) / h_far;
    let slope = if s1 * s2 > 0.0 {
        2.0 * s1 * s2 / (s1 + s2)
    } else {
        0.0
    };
    up + slope * half
}

/// The solver at time 0 of [`generate`]'s trajectory `seed`: Rayleigh and Prandtl numbers
/// left `None` in the config, the initial contrast `db0` and the noise all come from `seed`
/// (drawn in that order, the noise cell by cell with z outer). A frame-by-frame viewer starts
/// here to show the same trajectory.
pub fn initial(cfg: &RbConfig, seed: u64) -> Result<RbSolver, Error> {
    let mut rng = SplitMix64::new(seed);
    // Draw everything unconditionally so a fixed Ra or Pr leaves the other draws unchanged.
    let ra_drawn = RAYLEIGHS[rng.index(RAYLEIGHS.len())];
    let pr_drawn = PRANDTLS[rng.index(PRANDTLS.len())];
    let db0 = DB0S[rng.index(DB0S.len())];
    let params = RbParams {
        nx: cfg.nx,
        nz: cfg.nz,
        rayleigh: cfg.rayleigh.unwrap_or(ra_drawn),
        prandtl: cfg.prandtl.unwrap_or(pr_drawn),
        cfl: cfg.cfl,
        max_dt: cfg.max_dt,
    };
    params.validate()?;
    let grid = Grid::new(cfg.nz);
    let b0: Vec<f64> = grid
        .zc
        .iter()
        .flat_map(|&z| (0..cfg.nx).map(move |_| z))
        .map(|z| db0 * (1.0 - z) + z * (1.0 - z) * 1e-3 * rng.range(-1.0, 1.0))
        .collect();
    RbSolver::with_buoyancy(params, &b0)
}

/// Simulates one trajectory from [`initial`]`(cfg, seed)`.
///
/// Frames are stored at `k * frame_dt`. Fields: buoyancy, pressure (zero mean,
/// hydrostatic part included), velocity (x, z); scalars `rayleigh`, `prandtl`.
pub fn generate(
    cfg: &RbConfig,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Trajectory, Error> {
    if cfg.frames == 0 {
        return Err(invalid("frames", cfg.frames, "need at least 1 frame"));
    }
    if !(cfg.frame_dt > 0.0 && cfg.frame_dt.is_finite()) {
        return Err(invalid("frame_dt", cfg.frame_dt, "must be positive"));
    }
    let mut solver = initial(cfg, seed)?;
    let params = solver.params().clone();
    let (nx, nz) = (cfg.nx, cfg.nz);
    let mut data = Vec::with_capacity(cfg.frames * nx * nz * 4);
    let mut times = Vec::with_capacity(cfg.frames);
    for k in 0..cfg.frames {
        let t = k as f64 * cfg.frame_dt;
        solver.advance_to(t)?;
        let [b, p, u, w] = solver.fields();
        for i in 0..nx {
            for j in 0..nz {
                let c = j * nx + i;
                data.extend_from_slice(&[b[c] as f32, p[c] as f32, u[c] as f32, w[c] as f32]);
            }
        }
        times.push(t);
        progress(k + 1, cfg.frames);
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(Error::Diverged {
            time: solver.time(),
            reason: "non-finite field".into(),
        });
    }
    let fields = crate::System::RayleighBenard.fields();
    Ok(Trajectory {
        dataset_name: "rayleigh_benard".into(),
        x: solver.x_coords(),
        y: solver.z_coords().to_vec(),
        times,
        t0_fields: crate::owned(fields.0),
        t1_fields: crate::owned(fields.1),
        data,
        scalars: vec![
            ("rayleigh".into(), params.rayleigh),
            ("prandtl".into(), params.prandtl),
        ],
        boundaries: [Boundary::Periodic, Boundary::Wall],
    })
}
