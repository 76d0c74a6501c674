//! Reverse-diffusion samplers (DESIGN.md section 4), in the spirit of azula: a [`Schedule`]
//! gives (alpha_t, sigma_t) for continuous t, a [`Denoise`] gives the posterior mean
//! E[x | x_t], and a [`Sampler`] has [`init`](Sampler::init), a [`step`](SamplerState::step)
//! from t to s < t, and a loop ([`Sampler::sample`]) over `linspace(1, 0, steps + 1)`.
//!
//! Every update is one fused kernel (`shaders/sampler.wgsl`, [`Backend::sampler_update`]) whose
//! coefficients the host computes in f64; nothing is read back between steps. A step is one
//! update for most methods, but Heun makes two, PC one per Langevin correction plus the
//! predictor, and with an [`Observation`] each denoiser call is preceded by one more kernel
//! ([`Backend::sampler_observe`]). Below,
//! `z_t = (x_t - a_t m_t) / s_t` is the noise prediction of the mean `m_t` at `x_t`.
//!
//! Inpainting ([`Observation`]): before each denoiser call the observed positions of x_t are
//! replaced by `sqrt(a_t^2 + s_t^2) y`, and after it the mean there is replaced by y.
//!
//! Shape legend: x (B, C, L, H, W); N = numel(x).

use lemur_tensor::backend::{MAX_SAMPLER_SLOTS, SamplerUpdate};
use lemur_tensor::{Backend, Tensor};

use crate::diffusion::{Denoiser, Schedule};
use crate::error::{Error, Result};

/// A Gaussian denoiser: the posterior mean E[x | x_t] at time t, for the whole batch.
pub trait Denoise<B: Backend> {
    fn schedule(&self) -> Schedule;
    fn mean(&self, x_t: &Tensor<B>, t: f64) -> Result<Tensor<B>>;
}

/// The trained denoiser with its labels (B, F) and condition channels (the context mask,
/// (B, C, L, H, W), when the model is masked) fixed for a reverse process.
pub struct Conditioned<'a, B: Backend> {
    pub denoiser: &'a Denoiser<B>,
    pub label: Option<&'a Tensor<B>>,
    pub cond: Option<&'a Tensor<B>>,
}

impl<B: Backend> Denoise<B> for Conditioned<'_, B> {
    fn schedule(&self) -> Schedule {
        self.denoiser.schedule
    }

    fn mean(&self, x_t: &Tensor<B>, t: f64) -> Result<Tensor<B>> {
        let times = vec![t as f32; x_t.dim(0)];
        Ok(self.denoiser.forward(x_t, &times, self.label, self.cond)?.0)
    }
}

/// The exact denoiser of a Gaussian target `x ~ N(mu, diag(var))` (per element, broadcast to
/// the state): `E[x | x_t] = mu + a var / (a^2 var + s^2) (x_t - a mu)`. Samplers must turn
/// it into samples with that mean and variance, which the statistical tests check.
pub struct ExactGaussian<B: Backend> {
    pub schedule: Schedule,
    pub mu: Tensor<B>,
    pub var: Tensor<B>,
}

impl<B: Backend> Denoise<B> for ExactGaussian<B> {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn mean(&self, x_t: &Tensor<B>, t: f64) -> Result<Tensor<B>> {
        let (a, s) = self.schedule.alpha_sigma(t);
        let gain = self
            .var
            .scale(a as f32)?
            .div(&self.var.scale((a * a) as f32)?.add_scalar((s * s) as f32)?)?;
        Ok(self
            .mu
            .add(&gain.mul(&x_t.sub(&self.mu.scale(a as f32)?)?)?)?)
    }
}

/// Observed values y at the positions where `mask` is 1, packed as the kernels want them:
/// [2, N] (y, then the 0/1 mask).
pub struct Observation<B: Backend> {
    packed: B::Storage,
    shape: Vec<usize>,
}

impl<B: Backend> Observation<B> {
    /// `y` and `mask` of the state's shape (the mask may broadcast to it).
    pub fn new(y: &Tensor<B>, mask: &Tensor<B>) -> Result<Self> {
        let mask = mask.broadcast_to(y.shape())?;
        let be = y.backend();
        let n = y.numel();
        let packed = be.concat(&[(&y.storage(), n), (&mask.storage(), n)], 1, 1)?;
        Ok(Self {
            packed,
            shape: y.shape().to_vec(),
        })
    }
}

/// The update rule of a sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Euler / DDIM(eta = 0): `x_s = (a_s/a_t) x_t + a_s (s_s/a_s - s_t/a_t) z_t`.
    Euler,
    /// DDIM: `tau = clip(eta (1 - (a_t s_s / (a_s s_t))^2), 0, 1)`,
    /// `x_s = a_s m_t + s_s sqrt(1 - tau) z_t + s_s sqrt(tau) eps`; eta = 1 is DDPM.
    Ddim { eta: f64 },
    /// Heun: an Euler step to x_s, then the same step redone with `(z_t + z_s) / 2`.
    Heun,
    /// Adams-Bashforth of order n in rho = s/a: `x_s = (a_s/a_t) x_t + a_s sum_i c_i z_i`
    /// over the last n noise predictions, `c_i` the integral from rho_t to rho_s of the
    /// Lagrange basis polynomial of node i (an n x n Vandermonde solve in f64).
    Ab { order: usize },
    /// Exponential Adams-Bashforth of order n: the same in u = ln(s/a) with weight e^u
    /// (`c_i = int e^u l_i(u) du`), the multistep DPM-Solver.
    Eab { order: usize },
    /// Predictor-corrector: `corrections` Langevin steps
    /// `x += delta (a_t m - x) + sqrt(2 delta) s_t eps`, then the predictor
    /// `x_s = a_s m + (s_s/s_t)(x_t - a_t m)`.
    Pc { corrections: usize, delta: f64 },
}

impl Method {
    /// Parses `euler`, `ddim`, `ddpm`, `heun`, `ab`, `eab`, `pc` with their parameters.
    pub fn parse(
        name: &str,
        order: usize,
        eta: f64,
        corrections: usize,
        delta: f64,
    ) -> Result<Self> {
        let m = match name {
            "euler" => Self::Euler,
            "ddim" => Self::Ddim { eta },
            "ddpm" => Self::Ddim { eta: 1.0 },
            "heun" => Self::Heun,
            "ab" => Self::Ab { order },
            "eab" => Self::Eab { order },
            "pc" => Self::Pc { corrections, delta },
            other => {
                return Err(Error::Config(format!(
                    "unknown sampler `{other}` (euler, ddim, ddpm, heun, ab, eab, pc)"
                )));
            }
        };
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Ab { order } | Self::Eab { order }
                if !(1..=MAX_SAMPLER_SLOTS).contains(&order) =>
            {
                Err(Error::Config(format!(
                    "multistep order must be 1..={MAX_SAMPLER_SLOTS}, got {order}"
                )))
            }
            Self::Ddim { eta } if eta.is_nan() || eta < 0.0 => {
                Err(Error::Config(format!("DDIM eta must be >= 0, got {eta}")))
            }
            Self::Pc { delta, .. } if !(delta > 0.0 && delta < 1.0) => Err(Error::Config(format!(
                "predictor-corrector delta must be in (0, 1), got {delta}"
            ))),
            _ => Ok(()),
        }
    }

    /// Denoiser evaluations per step.
    pub fn evaluations_per_step(&self) -> usize {
        match *self {
            Self::Heun => 2,
            Self::Pc { corrections, .. } => corrections + 1,
            _ => 1,
        }
    }

    fn slots(&self) -> usize {
        match *self {
            Self::Heun => 2,
            Self::Ab { order } | Self::Eab { order } => order,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Euler => write!(f, "euler"),
            Self::Ddim { eta: 1.0 } => write!(f, "ddpm"),
            Self::Ddim { eta } => write!(f, "ddim(eta {eta})"),
            Self::Heun => write!(f, "heun"),
            Self::Ab { order } => write!(f, "ab{order}"),
            Self::Eab { order } => write!(f, "eab{order}"),
            Self::Pc { corrections, delta } => {
                write!(f, "pc({corrections} corrections, delta {delta})")
            }
        }
    }
}

/// A reverse process: a method, a number of steps and the seed of its noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    pub method: Method,
    pub steps: usize,
    pub seed: u64,
}

impl Sampler {
    pub fn new(method: Method, steps: usize, seed: u64) -> Result<Self> {
        method.validate()?;
        if steps == 0 {
            return Err(Error::Config("a sampler needs at least one step".into()));
        }
        Ok(Self {
            method,
            steps,
            seed,
        })
    }

    /// `linspace(1, 0, steps + 1)`.
    pub fn timesteps(&self) -> Vec<f64> {
        (0..=self.steps)
            .map(|i| 1.0 - i as f64 / self.steps as f64)
            .collect()
    }

    /// `x_1 = sqrt(a_1^2 + s_1^2) eps`, eps from stream `seed`.
    pub fn init<B: Backend>(
        &self,
        backend: &B,
        schedule: &Schedule,
        shape: &[usize],
        seed: u64,
    ) -> Result<Tensor<B>> {
        let (a, s) = schedule.alpha_sigma(1.0);
        Ok(Tensor::randn(backend, shape, seed, 0)?.scale((a * a + s * s).sqrt() as f32)?)
    }

    /// A fresh state for one reverse process over states of `shape`.
    pub fn start<B: Backend>(&self, backend: &B, shape: &[usize]) -> Result<SamplerState<B>> {
        let n: usize = shape.iter().product();
        Ok(SamplerState {
            method: self.method,
            seed: self.seed,
            backend: backend.clone(),
            shape: shape.to_vec(),
            ring: Some(backend.fill(self.method.slots() * n, 0.0)?),
            nodes: Vec::new(),
            noise: 0,
        })
    }

    /// Runs the whole reverse process from `x1` (see [`init`](Self::init)) to t = 0.
    pub fn sample<B: Backend>(
        &self,
        denoiser: &impl Denoise<B>,
        x1: Tensor<B>,
        obs: Option<&Observation<B>>,
    ) -> Result<Tensor<B>> {
        let mut state = self.start(x1.backend(), x1.shape())?;
        let times = self.timesteps();
        let mut x = x1;
        for w in times.windows(2) {
            x = state.step(denoiser, &x, w[0], w[1], obs)?;
        }
        Ok(x)
    }
}

/// The state a reverse process carries between steps: the ring of past noise predictions (and
/// the times they were taken at) for multistep methods, and the noise counter.
pub struct SamplerState<B: Backend> {
    method: Method,
    seed: u64,
    backend: B,
    shape: Vec<usize>,
    ring: Option<B::Storage>,
    /// Times of the noise predictions in the ring, oldest first (multistep methods).
    nodes: Vec<f64>,
    noise: u64,
}

impl<B: Backend> SamplerState<B> {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The posterior mean at x_t, with the observed positions of x_t set to
    /// `sqrt(a_t^2 + s_t^2) y` first.
    fn mean(
        &self,
        denoiser: &impl Denoise<B>,
        x_t: &Tensor<B>,
        t: f64,
        obs: Option<&Observation<B>>,
    ) -> Result<Tensor<B>> {
        let Some(obs) = obs else {
            return denoiser.mean(x_t, t);
        };
        let (a, s) = denoiser.schedule().alpha_sigma(t);
        let x_in = self.backend.sampler_observe(
            &x_t.storage(),
            &obs.packed,
            (a * a + s * s).sqrt() as f32,
        )?;
        denoiser.mean(&Tensor::from_storage(&self.backend, x_in, &self.shape)?, t)
    }

    /// One fused update (see [`SamplerUpdate`]).
    fn update(&mut self, u: Update<'_, B>, obs: Option<&Observation<B>>) -> Result<Tensor<B>> {
        let n = self.numel();
        let mut coef = [0.0f32; MAX_SAMPLER_SLOTS];
        for &(j, v) in u.c {
            coef[j] += v as f32;
        }
        let d = SamplerUpdate {
            a_t: u.at.0 as f32,
            s_t: u.at.1 as f32,
            slot: u.slot,
            slots: self.method.slots(),
            cx: u.cx as f32,
            cm: u.cm as f32,
            c: coef,
            cn: u.cn as f32,
            seed: self.seed,
            offset: self.noise,
        };
        if u.cn != 0.0 {
            self.noise += n as u64;
        }
        let ring = self
            .ring
            .take()
            .expect("ring is put back after every update");
        let (x_s, ring) = self.backend.sampler_update(
            ring,
            &u.x_z.storage(),
            &u.x_b.storage(),
            &u.mean.storage(),
            obs.map(|o| &o.packed),
            &d,
        )?;
        self.ring = Some(ring);
        Ok(Tensor::from_storage(&self.backend, x_s, &self.shape)?)
    }

    /// Simulates the reverse process from t to s < t.
    pub fn step(
        &mut self,
        denoiser: &impl Denoise<B>,
        x_t: &Tensor<B>,
        t: f64,
        s: f64,
        obs: Option<&Observation<B>>,
    ) -> Result<Tensor<B>> {
        if x_t.shape() != self.shape.as_slice() || obs.is_some_and(|o| o.shape != self.shape) {
            return Err(Error::Input {
                model: "Sampler",
                got: x_t.shape().to_vec(),
                expected: format!(
                    "a state (and observation {:?}) of the shape the sampler started with, {:?}",
                    obs.map(|o| o.shape.clone()),
                    self.shape
                ),
            });
        }
        let sched = denoiser.schedule();
        let (a_t, s_t) = sched.alpha_sigma(t);
        let (a_s, s_s) = sched.alpha_sigma(s);
        let euler = a_s * (s_s / a_s - s_t / a_t);
        match self.method {
            Method::Euler => {
                let m = self.mean(denoiser, x_t, t, obs)?;
                let c = [(0, euler)];
                self.update(
                    Update {
                        cx: a_s / a_t,
                        c: &c,
                        ..Update::at(x_t, &m, (a_t, s_t))
                    },
                    obs,
                )
            }
            Method::Ddim { eta } => {
                let r = a_t * s_s / (a_s * s_t);
                let tau = (eta * (1.0 - r * r)).clamp(0.0, 1.0);
                let m = self.mean(denoiser, x_t, t, obs)?;
                let c = [(0, s_s * (1.0 - tau).sqrt())];
                let cn = s_s * tau.sqrt();
                self.update(
                    Update {
                        cm: a_s,
                        c: &c,
                        cn,
                        ..Update::at(x_t, &m, (a_t, s_t))
                    },
                    obs,
                )
            }
            Method::Heun => {
                let m = self.mean(denoiser, x_t, t, obs)?;
                let c = [(0, euler)];
                let x_e = self.update(
                    Update {
                        cx: a_s / a_t,
                        c: &c,
                        ..Update::at(x_t, &m, (a_t, s_t))
                    },
                    obs,
                )?;
                let m_e = self.mean(denoiser, &x_e, s, obs)?;
                // z of x_e at time s into slot 1, the step redone from x_t with both.
                let half = [(0, euler / 2.0), (1, euler / 2.0)];
                let u = Update {
                    x_z: &x_e,
                    x_b: x_t,
                    mean: &m_e,
                    at: (a_s, s_s),
                    slot: 1,
                    cx: a_s / a_t,
                    cm: 0.0,
                    c: &half,
                    cn: 0.0,
                };
                self.update(u, obs)
            }
            Method::Ab { order } | Method::Eab { order } => {
                let exponential = matches!(self.method, Method::Eab { .. });
                let var = |a: f64, s: f64| if exponential { (s / a).ln() } else { s / a };
                let k = self.nodes.len();
                // The ring slot of the i-th node of the run is i % order.
                self.nodes.push(var(a_t, s_t));
                let m = self.mean(denoiser, x_t, t, obs)?;
                let first = (k + 1).saturating_sub(order);
                let nodes = &self.nodes[first..];
                let w = multistep_weights(nodes, var(a_t, s_t), var(a_s, s_s), exponential)?;
                let c: Vec<(usize, f64)> = w
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| ((first + i) % order, a_s * w))
                    .collect();
                let u = Update {
                    slot: k % order,
                    cx: a_s / a_t,
                    c: &c,
                    ..Update::at(x_t, &m, (a_t, s_t))
                };
                self.update(u, obs)
            }
            Method::Pc { corrections, delta } => {
                let mut x = x_t.clone();
                for _ in 0..corrections {
                    let m = self.mean(denoiser, &x, t, obs)?;
                    let u = Update {
                        cx: 1.0 - delta,
                        cm: delta * a_t,
                        cn: (2.0 * delta).sqrt() * s_t,
                        ..Update::at(&x, &m, (a_t, s_t))
                    };
                    x = self.update(u, obs)?;
                }
                let m = self.mean(denoiser, &x, t, obs)?;
                let r = s_s / s_t;
                self.update(
                    Update {
                        cx: r,
                        cm: a_s - r * a_t,
                        ..Update::at(&x, &m, (a_t, s_t))
                    },
                    obs,
                )
            }
        }
    }
}

/// The coefficients of one fused update: z of `x_z` at `at` = (a, s) goes into ring `slot`,
/// and `x_s = cx x_b + cm m + sum_(j, c) c ring[j] + cn eps`.
struct Update<'a, B: Backend> {
    x_z: &'a Tensor<B>,
    x_b: &'a Tensor<B>,
    mean: &'a Tensor<B>,
    at: (f64, f64),
    slot: usize,
    cx: f64,
    cm: f64,
    c: &'a [(usize, f64)],
    cn: f64,
}

impl<'a, B: Backend> Update<'a, B> {
    /// z of `x` at `at` into slot 0, the step starting from `x`, all coefficients 0.
    fn at(x: &'a Tensor<B>, mean: &'a Tensor<B>, at: (f64, f64)) -> Self {
        Update {
            x_z: x,
            x_b: x,
            mean,
            at,
            slot: 0,
            cx: 0.0,
            cm: 0.0,
            c: &[],
            cn: 0.0,
        }
    }
}

/// Weights `w_i = int_{from}^{to} p(u) l_i(u) du` of the Lagrange basis l_i over `nodes`, with
/// `p(u) = 1` (Adams-Bashforth) or `e^u` (exponential AB): the solution of the Vandermonde
/// system `sum_i w_i nodes_i^k = int p(u) u^k du`, k < n, in f64.
pub fn multistep_weights(nodes: &[f64], from: f64, to: f64, exponential: bool) -> Result<Vec<f64>> {
    let n = nodes.len();
    // Moments int_{from}^{to} p(u) u^k du.
    let moments: Vec<f64> = (0..n)
        .map(|k| {
            if exponential {
                // int e^u u^k du = (-1)^k k! e^u sum_{j<=k} (-u)^j / j!.
                let prim = |u: f64| {
                    let (mut term, mut sum) = (1.0, 1.0);
                    for j in 1..=k {
                        term *= -u / j as f64;
                        sum += term;
                    }
                    let fact: f64 = (1..=k).map(|j| j as f64).product();
                    (if k % 2 == 0 { 1.0 } else { -1.0 }) * fact * u.exp() * sum
                };
                prim(to) - prim(from)
            } else {
                (to.powi(k as i32 + 1) - from.powi(k as i32 + 1)) / (k as f64 + 1.0)
            }
        })
        .collect();
    // Rows k: nodes_i^k.
    let mut a: Vec<Vec<f64>> = (0..n)
        .map(|k| nodes.iter().map(|&x| x.powi(k as i32)).collect())
        .collect();
    let mut b = moments;
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("non-empty");
        if a[piv][col].abs() < 1e-300 || !a[piv][col].is_finite() {
            return Err(Error::Config(format!(
                "multistep coefficients: singular Vandermonde system over nodes {nodes:?}"
            )));
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..n {
            let f = a[r][col] / a[col][col];
            for c in col..n {
                a[r][c] -= f * a[col][c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut w = vec![0.0; n];
    for r in (0..n).rev() {
        let acc: f64 = (r + 1..n).map(|c| a[r][c] * w[c]).sum();
        w[r] = (b[r] - acc) / a[r][r];
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_weights_integrate_polynomials_exactly() {
        // Order 1: the interval length (AB) or e^to - e^from (EAB).
        let w = multistep_weights(&[2.0], 2.0, 0.5, false).unwrap();
        assert!((w[0] + 1.5).abs() < 1e-14);
        let w = multistep_weights(&[0.3], 0.3, -1.0, true).unwrap();
        assert!((w[0] - ((-1.0f64).exp() - 0.3f64.exp())).abs() < 1e-14);
        // Order 3 integrates quadratics exactly: f(u) = 1 - 2u + 3u^2 over [1, 0.25].
        let nodes = [2.0, 1.5, 1.0];
        let f = |u: f64| 1.0 - 2.0 * u + 3.0 * u * u;
        let exact = |u: f64| u - u * u + u * u * u;
        let w = multistep_weights(&nodes, 1.0, 0.25, false).unwrap();
        let got: f64 = nodes.iter().zip(&w).map(|(&x, &w)| w * f(x)).sum();
        assert!((got - (exact(0.25) - exact(1.0))).abs() < 1e-12, "{got}");
        // EAB: int e^u (1 + u) du = u e^u.
        let nodes = [-0.5, -1.0];
        let w = multistep_weights(&nodes, -1.0, -2.0, true).unwrap();
        let got: f64 = nodes.iter().zip(&w).map(|(&x, &w)| w * (1.0 + x)).sum();
        let want = -2.0 * (-2.0f64).exp() - -(-1.0f64).exp();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Repeated nodes cannot be interpolated.
        assert!(multistep_weights(&[1.0, 1.0], 1.0, 0.0, false).is_err());
    }

    #[test]
    fn methods_parse_and_validate() {
        assert_eq!(
            Method::parse("ddpm", 3, 0.0, 1, 0.1).unwrap(),
            Method::Ddim { eta: 1.0 }
        );
        assert!(Method::parse("ab", 0, 0.0, 1, 0.1).is_err());
        assert!(Method::parse("ab", 9, 0.0, 1, 0.1).is_err());
        assert!(Method::parse("pc", 3, 0.0, 1, 1.5).is_err());
        let e = Method::parse("rk4", 3, 0.0, 1, 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rk4") && e.contains("euler"), "{e}");
        assert!(Sampler::new(Method::Euler, 0, 0).is_err());
    }
}
