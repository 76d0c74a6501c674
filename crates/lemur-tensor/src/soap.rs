//! SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam run in
//! the eigenbasis of Shampoo's preconditioner, following the semantics of the authors'
//! `soap.py`.
//!
//! Every parameter is viewed as a matrix G of (rows, cols). For each side whose size is in
//! `2..=max_precond_dim` SOAP keeps Shampoo's statistic (L = EMA of G G^T, R = EMA of G^T G,
//! rate `shampoo_beta`) and an orthogonal basis Q_L / Q_R of its eigenvectors; one step is
//!
//! ```text
//! G' = Q_L^T G Q_R                       rotate the gradient into the eigenbasis
//! m  = b1 m + (1 - b1) G'                moments live in the rotated basis
//! v  = b2 v + (1 - b2) G'^2
//! p -= lr sqrt(1 - b2^t) / (1 - b1^t) * Q_L (m / (sqrt(v) + eps)) Q_R^T
//! p -= lr wd p                           decoupled weight decay, after the update (as soap.py)
//! L, R <- EMA with G G^T, G^T G           every step
//! ```
//!
//! and every `precondition_frequency` Adam steps the bases are refreshed on the host: one
//! power-iteration step `Q <- qr(L Q)` after sorting Q's columns by the estimated eigenvalues
//! `diag(Q^T L Q)` (descending), with `v` permuted the same way and `m` rotated from the old
//! basis to the new one. The first call for a parameter only initialises L, R and Q (an exact
//! eigendecomposition) and does not move the parameter, so the projection never uses the
//! gradient it is applied to (as soap.py's first step).
//!
//! Choices where soap.py has options or where this differs in detail:
//! - 1-D parameters (biases, norm gains) and scalars get no preconditioner: plain Adam with
//!   SOAP's bias correction (soap.py's default `precondition_1d=False`).
//! - A side larger than `max_precond_dim` gets the identity (Adam along that axis), as in
//!   soap.py; a side of size 1 also gets the identity, since a 1x1 basis is +-1 and changes
//!   nothing. The default limit is 512 rather than soap.py's 10000, because the host
//!   eigendecomposition and QR are O(n^3) in f64 on one core.
//! - Parameters of rank > 2 (conv kernels `[O, I, kh, kw]`) are merged to `[O, I*kh*kw]`
//!   (soap.py's `merge_dims` idea, always merging every trailing axis into one), so a conv
//!   layer is preconditioned over its output channels and its input patch.
//! - soap.py rotates `m` back to the parameter basis and forward again on every step; since
//!   the basis is orthogonal that is the identity except on the steps where it changes, which
//!   are the only ones where it is done here.
//! - Gradient clipping (global norm, `max_norm`) is applied to the gradient before anything
//!   else, as the trainer does for AdamW; soap.py has none of its own.
//! - `state_to_host` saves the moments, statistics, bases and per-parameter Adam step, so a
//!   resumed run continues bit for bit.

use std::collections::{BTreeMap, HashMap};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::optim::{AdamW, CosineSchedule};
use crate::params::ParamStore;
use crate::tensor::{Tensor, no_grad};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoapConfig {
    /// Adam's betas in the rotated basis.
    pub betas: (f32, f32),
    /// The EMA rate of the L/R statistics; `None` takes `betas.1` (soap.py's `shampoo_beta=-1`).
    pub shampoo_beta: Option<f32>,
    pub eps: f32,
    pub weight_decay: f32,
    /// Clip the global gradient norm to this value (0 disables clipping).
    pub max_norm: f32,
    /// Refresh the eigenbases every this many Adam steps of a parameter.
    pub precondition_frequency: u32,
    /// Sides larger than this are not rotated (Adam along that axis).
    pub max_precond_dim: usize,
    pub schedule: CosineSchedule,
}

impl Default for SoapConfig {
    /// soap.py's defaults (lr 3e-3, betas (0.95, 0.95), eps 1e-8, weight decay 0.01, refresh
    /// every 10 steps), no clipping, a constant learning rate, and `max_precond_dim` 512.
    fn default() -> Self {
        Self {
            betas: (0.95, 0.95),
            shampoo_beta: None,
            eps: 1e-8,
            weight_decay: 0.01,
            max_norm: 0.0,
            precondition_frequency: 10,
            max_precond_dim: 512,
            schedule: CosineSchedule {
                peak: 3e-3,
                min_lr: 3e-3,
                warmup: 0,
                total: 1,
            },
        }
    }
}

/// The (rows, cols) matrix a parameter of `shape` is preconditioned as: 1-D as one row,
/// higher ranks with every trailing axis merged into the columns.
pub fn matrix_shape(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [r, rest @ ..] => (*r, rest.iter().product()),
    }
}

/// Whether the left (side 0) and right (side 1) axes of a parameter of `shape` are rotated.
pub fn preconditioned_sides(shape: &[usize], max_precond_dim: usize) -> [bool; 2] {
    let (rows, cols) = matrix_shape(shape);
    let ok = |n: usize| shape.len() >= 2 && n > 1 && n <= max_precond_dim;
    [ok(rows), ok(cols)]
}

/// Shampoo's statistic of one side and its eigenbasis (columns), both (n, n).
struct Side<B: Backend> {
    gg: Tensor<B>,
    q: Tensor<B>,
}

struct State<B: Backend> {
    /// Adam's moments in the rotated basis, (rows, cols).
    exp_avg: Tensor<B>,
    exp_avg_sq: Tensor<B>,
    sides: [Option<Side<B>>; 2],
    /// Adam steps taken (soap.py's `state["step"]`): 0 after the initialising call.
    step: u32,
}

impl<B: Backend> State<B> {
    /// `Q_L^T x Q_R`.
    fn project(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let mut x = x.clone();
        if let Some(l) = &self.sides[0] {
            x = Tensor::mm(&l.q, &x, true, false, None)?;
        }
        if let Some(r) = &self.sides[1] {
            x = Tensor::mm(&x, &r.q, false, false, None)?;
        }
        Ok(x)
    }

    /// `Q_L x Q_R^T`.
    fn project_back(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let mut x = x.clone();
        if let Some(l) = &self.sides[0] {
            x = Tensor::mm(&l.q, &x, false, false, None)?;
        }
        if let Some(r) = &self.sides[1] {
            x = Tensor::mm(&x, &r.q, false, true, None)?;
        }
        Ok(x)
    }

    /// Refreshes both bases (sort by estimated eigenvalue, one QR power step), permuting `v`
    /// and rotating `m` to follow.
    async fn refresh(&mut self) -> Result<()> {
        let m = self.project_back(&self.exp_avg)?;
        for axis in 0..2 {
            let Some(side) = &mut self.sides[axis] else {
                continue;
            };
            let b = side.gg.backend().clone();
            let n = side.gg.dim(0);
            let gg = to_f64(&b.read(&side.gg.storage()).await?);
            let q = to_f64(&b.read(&side.q.storage()).await?);
            let (new_q, order) = refresh_basis(&gg, &q, n);
            if order.iter().enumerate().any(|(i, &o)| i != o) {
                // A 0/1 matrix product moves each value exactly: (P v)[i] = v[order[i]].
                let mut p = vec![0.0f32; n * n];
                for (i, &o) in order.iter().enumerate() {
                    p[i * n + o] = 1.0;
                }
                let p = Tensor::from_slice(&b, &p, &[n, n])?;
                self.exp_avg_sq = if axis == 0 {
                    Tensor::mm(&p, &self.exp_avg_sq, false, false, None)?
                } else {
                    Tensor::mm(&self.exp_avg_sq, &p, false, true, None)?
                };
            }
            side.q = Tensor::from_slice(&b, &to_f32(&new_q), &[n, n])?;
        }
        self.exp_avg = self.project(&m)?;
        Ok(())
    }
}

fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// SOAP state per parameter, by name; `step` counts calls (the schedule's step).
pub struct Soap<B: Backend> {
    pub config: SoapConfig,
    pub step: u32,
    state: HashMap<String, State<B>>,
}

impl<B: Backend> std::fmt::Debug for Soap<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Soap(step {}, {:?})", self.step, self.config)
    }
}

/// Checkpoint key suffixes of SOAP's state, after `<param>.`.
pub const STATE_SUFFIXES: [&str; 7] = [
    "exp_avg",
    "exp_avg_sq",
    "soap_step",
    "soap_gg_l",
    "soap_q_l",
    "soap_gg_r",
    "soap_q_r",
];
const SIDE_KEYS: [(&str, &str); 2] = [("soap_gg_l", "soap_q_l"), ("soap_gg_r", "soap_q_r")];

impl<B: Backend> Soap<B> {
    pub fn new(config: SoapConfig) -> Self {
        Self {
            config,
            step: 0,
            state: HashMap::new(),
        }
    }

    fn shampoo_beta(&self) -> f32 {
        self.config.shampoo_beta.unwrap_or(self.config.betas.1)
    }

    /// Applies one update to every parameter with a gradient, then clears the gradients.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self, params: &ParamStore<B>) -> Result<()> {
        pollster::block_on(self.step_async(params))
    }

    /// [`Soap::step`]; asynchronous because the basis refreshes read the statistics back.
    pub async fn step_async(&mut self, params: &ParamStore<B>) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let lr = c.schedule.lr(self.step);
        let sb = self.shampoo_beta();
        // min(1, max_norm / |g|) on the device, so clipping needs no readback.
        let clip = match c.max_norm > 0.0 {
            true => AdamW::grad_norm_sq(params)?
                .map(|sq| no_grad(|| sq.rsqrt()?.scale(c.max_norm)?.clamp(0.0, 1.0)))
                .transpose()?,
            false => None,
        };
        for (name, p) in params.iter() {
            let Some(g) = p.grad() else { continue };
            let (rows, cols) = matrix_shape(p.shape());
            let mut g = g.detach().reshape(&[rows, cols])?;
            if let Some(f) = &clip {
                g = g.mul(f)?;
            }
            let Some(st) = self.state.get_mut(name) else {
                let st =
                    init_state(&g, preconditioned_sides(p.shape(), c.max_precond_dim), sb).await?;
                self.state.insert(name.to_string(), st);
                continue;
            };
            st.step += 1;
            let (b1, b2) = c.betas;
            let gp = st.project(&g)?;
            st.exp_avg = st.exp_avg.scale(b1)?.add(&gp.scale(1.0 - b1)?)?;
            st.exp_avg_sq = st
                .exp_avg_sq
                .scale(b2)?
                .add(&gp.square()?.scale(1.0 - b2)?)?;
            let adam = st.exp_avg.div(&st.exp_avg_sq.sqrt()?.add_scalar(c.eps)?)?;
            let dir = st.project_back(&adam)?;
            let t = f64::from(st.step);
            let step_size = f64::from(lr) * (1.0 - f64::from(b2).powf(t)).sqrt()
                / (1.0 - f64::from(b1).powf(t));
            let mut np = p
                .detach()
                .sub(&dir.reshape(p.shape())?.scale(step_size as f32)?)?;
            if c.weight_decay > 0.0 {
                np = np.scale(1.0 - lr * c.weight_decay)?;
            }
            p.set_storage(np.storage())?;
            for (axis, side) in st.sides.iter_mut().enumerate() {
                if let Some(side) = side {
                    let outer = Tensor::mm(&g, &g, axis == 1, axis == 0, None)?;
                    side.gg = side.gg.scale(sb)?.add(&outer.scale(1.0 - sb)?)?;
                }
            }
            if st.step % c.precondition_frequency.max(1) == 0
                && st.sides.iter().any(Option::is_some)
            {
                st.refresh().await?;
            }
        }
        params.zero_grad();
        Ok(())
    }

    /// The state as host tensors named `<param>.<suffix>` for the suffixes in
    /// [`STATE_SUFFIXES`] (for checkpoints): the moments (in the rotated basis) with the
    /// parameter's shape, the statistics and bases that exist, and the Adam step as one value.
    pub async fn state_to_host(
        &self,
        params: &ParamStore<B>,
    ) -> Result<crate::params::HostTensors> {
        let mut out = BTreeMap::new();
        for (name, p) in params.iter() {
            let Some(st) = self.state.get(name) else {
                continue;
            };
            let b = p.backend();
            let shape = p.shape().to_vec();
            out.insert(
                format!("{name}.exp_avg"),
                (shape.clone(), b.read(&st.exp_avg.storage()).await?),
            );
            out.insert(
                format!("{name}.exp_avg_sq"),
                (shape, b.read(&st.exp_avg_sq.storage()).await?),
            );
            // Exact in f32 up to 2^24 steps.
            out.insert(format!("{name}.soap_step"), (vec![1], vec![st.step as f32]));
            for (side, (gk, qk)) in st.sides.iter().zip(SIDE_KEYS) {
                if let Some(s) = side {
                    out.insert(
                        format!("{name}.{gk}"),
                        (s.gg.shape().to_vec(), b.read(&s.gg.storage()).await?),
                    );
                    out.insert(
                        format!("{name}.{qk}"),
                        (s.q.shape().to_vec(), b.read(&s.q.storage()).await?),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Restores state saved by `state_to_host`; `step` is the schedule's step. A parameter
    /// with state must have every tensor its shape calls for under this configuration, with
    /// the right shape; errors name the tensor.
    pub fn load_state(
        &mut self,
        params: &ParamStore<B>,
        host: &crate::params::HostTensors,
        step: u32,
    ) -> Result<()> {
        self.state.clear();
        for (name, p) in params.iter() {
            let Some((_, st)) = host.get(&format!("{name}.soap_step")) else {
                continue;
            };
            let b = p.backend();
            let (rows, cols) = matrix_shape(p.shape());
            let get = |suffix: &str, shape: &[usize]| -> Result<Tensor<B>> {
                let key = format!("{name}.{suffix}");
                let (_, data) = host.get(&key).ok_or_else(|| Error::Invalid {
                    op: "Soap::load_state",
                    detail: format!("`{key}` is missing"),
                })?;
                if data.len() != shape.iter().product::<usize>() {
                    return Err(Error::Invalid {
                        op: "Soap::load_state",
                        detail: format!(
                            "`{key}` has {} values, expected shape {shape:?}",
                            data.len()
                        ),
                    });
                }
                Tensor::from_slice(b, data, shape)
            };
            let on = preconditioned_sides(p.shape(), self.config.max_precond_dim);
            let mut sides = [None, None];
            for (axis, (gk, qk)) in SIDE_KEYS.iter().enumerate() {
                let n = if axis == 0 { rows } else { cols };
                if on[axis] {
                    sides[axis] = Some(Side {
                        gg: get(gk, &[n, n])?,
                        q: get(qk, &[n, n])?,
                    });
                } else if host.contains_key(&format!("{name}.{gk}")) {
                    return Err(Error::Invalid {
                        op: "Soap::load_state",
                        detail: format!(
                            "`{name}.{gk}`: this configuration does not precondition that axis"
                        ),
                    });
                }
            }
            let adam_step = st.first().copied().unwrap_or(-1.0);
            if !(adam_step >= 0.0 && adam_step.fract() == 0.0) {
                return Err(Error::Invalid {
                    op: "Soap::load_state",
                    detail: format!("`{name}.soap_step` is {adam_step}, not a step count"),
                });
            }
            self.state.insert(
                name.to_string(),
                State {
                    exp_avg: get("exp_avg", &[rows, cols])?,
                    exp_avg_sq: get("exp_avg_sq", &[rows, cols])?,
                    sides,
                    step: adam_step as u32,
                },
            );
        }
        self.step = step;
        Ok(())
    }
}

/// The first call for a parameter: statistics from this gradient, exact eigenbases, zero
/// moments.
async fn init_state<B: Backend>(g: &Tensor<B>, on: [bool; 2], sb: f32) -> Result<State<B>> {
    let b = g.backend().clone();
    let (rows, cols) = (g.dim(0), g.dim(1));
    let mut sides = [None, None];
    for axis in 0..2 {
        if !on[axis] {
            continue;
        }
        let n = if axis == 0 { rows } else { cols };
        // soap.py lerps from zero: L = (1 - shampoo_beta) G G^T.
        let gg = Tensor::mm(g, g, axis == 1, axis == 0, None)?.scale(1.0 - sb)?;
        let (q, _) = eigh_desc(&to_f64(&b.read(&gg.storage()).await?), n);
        sides[axis] = Some(Side {
            gg,
            q: Tensor::from_slice(&b, &to_f32(&q), &[n, n])?,
        });
    }
    Ok(State {
        exp_avg: Tensor::zeros(&b, &[rows, cols])?,
        exp_avg_sq: Tensor::zeros(&b, &[rows, cols])?,
        sides,
        step: 0,
    })
}

/// Eigendecomposition of the symmetric (n, n) row-major matrix `a` by cyclic Jacobi
/// rotations: the eigenvectors as the columns of a row-major (n, n) matrix, and the
/// eigenvalues, both ordered by descending eigenvalue (soap.py flips `eigh`'s ascending order).
pub fn eigh_desc(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    // Jacobi converges quadratically once the off-diagonal part is small; 64 sweeps is far
    // beyond what any f64 input needs.
    for _ in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= total * 1e-32 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Numerical Recipes' jacobi).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    (permute_columns(&v, n, &order), values)
}

/// The orthogonal factor Q of `m = QR` for a row-major (n, n) matrix, by Householder
/// reflections (so a rank-deficient `m` still gives an orthogonal Q).
pub fn qr_q(m: &[f64], n: usize) -> Vec<f64> {
    let mut r = m.to_vec();
    let mut reflectors: Vec<Option<Vec<f64>>> = Vec::with_capacity(n);
    for k in 0..n {
        let norm = (k..n).map(|i| r[i * n + k].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            reflectors.push(None);
            continue;
        }
        let x0 = r[k * n + k];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..n).map(|i| r[i * n + k]).collect();
        v[0] -= alpha;
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if vn == 0.0 {
            reflectors.push(None);
            continue;
        }
        v.iter_mut().for_each(|x| *x /= vn);
        reflect(&mut r, n, k, &v);
        reflectors.push(Some(v));
    }
    // Q = H_0 H_1 ... H_{n-1}, applied to the identity from the last reflector back.
    let mut q = vec![0.0; n * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    for (k, v) in reflectors.iter().enumerate().rev() {
        if let Some(v) = v {
            reflect(&mut q, n, k, v);
        }
    }
    q
}

/// `x[k.., :] -= 2 v (v^T x[k.., :])` for a unit `v` of length n - k.
fn reflect(x: &mut [f64], n: usize, k: usize, v: &[f64]) {
    for j in 0..n {
        let s: f64 = v
            .iter()
            .enumerate()
            .map(|(i, vi)| vi * x[(k + i) * n + j])
            .sum();
        for (i, vi) in v.iter().enumerate() {
            x[(k + i) * n + j] -= 2.0 * s * vi;
        }
    }
}

/// Columns of a row-major (n, n) matrix reordered: output column j is input column `order[j]`.
fn permute_columns(x: &[f64], n: usize, order: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for (j, &o) in order.iter().enumerate() {
            out[i * n + j] = x[i * n + o];
        }
    }
    out
}

/// soap.py's basis refresh for one side: the columns of `q` sorted by the estimated
/// eigenvalues `diag(q^T gg q)` (descending), then one power step `qr(gg q)`. Returns the new
/// basis and the order (new column j came from old column `order[j]`), by which the second
/// moment's axis must be permuted too.
pub fn refresh_basis(gg: &[f64], q: &[f64], n: usize) -> (Vec<f64>, Vec<usize>) {
    let mut gq = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let a = gg[i * n + k];
            if a != 0.0 {
                for j in 0..n {
                    gq[i * n + j] += a * q[k * n + j];
                }
            }
        }
    }
    let est: Vec<f64> = (0..n)
        .map(|j| (0..n).map(|i| q[i * n + j] * gq[i * n + j]).sum())
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    // Stable, so tied columns (one eigenspace, in any order) stay where they are.
    order.sort_by(|&i, &j| est[j].total_cmp(&est[i]));
    (qr_q(&permute_columns(&gq, n, &order), n), order)
}
