//! The truth panel: the built-in Euler solver, run frame by frame beside the emulator from the
//! same initial condition. Frames are kept at the emulator's stride (one per latent frame) in
//! the model's channel order, physical units, `[C, H, W]` with H along x.

use lemur_solvers::Boundary;
use lemur_solvers::euler::{EulerConfig, EulerSolver, Primitive, QuadrantIc};
use web_time::Instant;

use crate::error::{AppError, Result};

/// Where the initial condition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initial {
    /// A random four-quadrant problem, as `lemur generate euler` draws them (seed = index).
    Random(u64),
    /// One of [`NAMED`].
    Named(usize),
}

const fn prim(rho: f64, u: f64, v: f64, p: f64) -> Primitive {
    Primitive { rho, u, v, p }
}

/// Classic four-quadrant Riemann problems (Lax and Liu 1998, configurations 3, 6, 12 and a
/// slow one), scaled into the range of the training data (gamma 1.4, split at the centre).
/// States are `[x < 1/2 & y < 1/2, x >= 1/2 & y < 1/2, x < 1/2 & y >= 1/2, x >= 1/2 & y >= 1/2]`.
pub const NAMED: [(&str, [Primitive; 4]); 4] = [
    (
        "four shocks (Lax-Liu 3)",
        [
            prim(0.138, 1.206, 1.206, 0.029),
            prim(0.5323, 0.0, 1.206, 0.3),
            prim(0.5323, 1.206, 0.0, 0.3),
            prim(1.5, 0.0, 0.0, 1.5),
        ],
    ),
    (
        "four slip lines (Lax-Liu 6)",
        [
            prim(1.0, -0.75, 0.5, 1.0),
            prim(3.0, -0.75, -0.5, 1.0),
            prim(2.0, 0.75, 0.5, 1.0),
            prim(1.0, 0.75, -0.5, 1.0),
        ],
    ),
    (
        "shocks and slip lines (Lax-Liu 12)",
        [
            prim(0.8, 0.0, 0.0, 1.0),
            prim(1.0, 0.0, 0.7276, 1.0),
            prim(1.0, 0.7276, 0.0, 1.0),
            prim(0.5313, 0.0, 0.0, 0.4),
        ],
    ),
    (
        "gentle rarefactions",
        [
            prim(1.0, -0.3, -0.3, 1.0),
            prim(0.8, 0.3, -0.3, 0.6),
            prim(0.8, -0.3, 0.3, 0.6),
            prim(1.2, 0.3, 0.3, 1.2),
        ],
    ),
];

impl Initial {
    pub fn label(&self) -> String {
        match self {
            Initial::Random(seed) => format!("random problem {seed}"),
            Initial::Named(i) => NAMED
                .get(*i)
                .map_or_else(|| format!("setup {i}"), |(n, _)| (*n).to_string()),
        }
    }

    fn quadrants(&self) -> Result<QuadrantIc> {
        match *self {
            Initial::Random(seed) => Ok(QuadrantIc::random(seed)),
            Initial::Named(i) => {
                let (_, states) = NAMED.get(i).ok_or_else(|| AppError::Setting {
                    name: "setup",
                    value: i.to_string(),
                    detail: format!("there are {} named setups", NAMED.len()),
                })?;
                Ok(QuadrantIc {
                    split: [0.5, 0.5],
                    states: *states,
                    gamma: 1.4,
                })
            }
        }
    }
}

/// The solver and the frames it has produced so far.
pub struct Truth {
    solver: EulerSolver,
    cfg: EulerConfig,
    /// Solver frames per kept frame.
    stride: usize,
    /// Solver frames computed (frame 0 is the initial condition).
    computed: usize,
    /// Kept frames `[C, H, W]`, one per stride.
    pub frames: Vec<Vec<f32>>,
    /// Frames wanted in all (kept frames).
    pub wanted: usize,
    /// The model's conditioning labels: gamma and the boundary codes (open = 1).
    pub labels: Vec<f32>,
    /// Seconds spent in the solver and solver frames computed, for its speed.
    pub busy_s: f64,
    /// Channel order: indices into the solver's (energy, density, pressure, momentum x, y).
    order: Vec<usize>,
}

const SOLVER_CHANNELS: [&str; 5] = ["energy", "density", "pressure", "momentum_x", "momentum_y"];

impl Truth {
    /// A solver on `grid` for `wanted` frames at `stride` solver frames apart, in the order of
    /// `channels` (which must be the Euler solver's fields).
    pub fn new(
        initial: Initial,
        grid: [usize; 2],
        stride: usize,
        wanted: usize,
        channels: &[String],
        periodic: bool,
    ) -> Result<Self> {
        let order = channels
            .iter()
            .map(|c| {
                SOLVER_CHANNELS
                    .iter()
                    .position(|s| s == c)
                    .ok_or_else(|| AppError::Setting {
                        name: "channels",
                        value: c.clone(),
                        detail: format!("the built-in Euler solver gives {SOLVER_CHANNELS:?} only"),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let cfg = EulerConfig {
            nx: grid[0],
            ny: grid[1],
            frames: (wanted.max(1) - 1) * stride + 1,
            periodic,
            ..Default::default()
        };
        cfg.validate()?;
        let ic = initial.quadrants()?;
        let bc = if periodic {
            Boundary::Periodic
        } else {
            Boundary::Open
        };
        let solver = EulerSolver::new(cfg.nx, cfg.ny, ic.gamma, [bc, bc], cfg.cfl, |x, y| {
            ic.at(x, y)
        })?;
        let code = if periodic { 2.0 } else { 1.0 };
        let mut t = Self {
            solver,
            cfg,
            stride: stride.max(1),
            computed: 1,
            frames: Vec::new(),
            wanted,
            labels: vec![ic.gamma as f32, code, code],
            busy_s: 0.0,
            order,
        };
        t.keep();
        Ok(t)
    }

    fn keep(&mut self) {
        let mut raw = Vec::with_capacity(self.cfg.nx * self.cfg.ny * 5);
        self.solver.write_frame(&mut raw);
        let plane = self.cfg.nx * self.cfg.ny;
        let mut frame = vec![0.0f32; self.order.len() * plane];
        for (c, &k) in self.order.iter().enumerate() {
            for p in 0..plane {
                frame[c * plane + p] = raw[p * 5 + k];
            }
        }
        self.frames.push(frame);
    }

    pub fn done(&self) -> bool {
        self.frames.len() >= self.wanted
    }

    /// Solver frames computed so far (the initial condition included).
    pub fn computed(&self) -> usize {
        self.computed
    }

    /// Takes the progress of a copy of this solver run elsewhere (see `crate::worker`).
    /// Frames from index `from` on replace this copy's.
    pub fn mirror(&mut self, from: usize, frames: Vec<Vec<f32>>, busy_s: f64, computed: usize) {
        self.frames.truncate(from);
        self.frames.extend(frames);
        self.busy_s = busy_s;
        self.computed = computed;
    }

    /// Solver frames computed per second of solver time.
    pub fn frames_per_s(&self) -> Option<f64> {
        (self.busy_s > 0.0).then(|| (self.computed - 1) as f64 / self.busy_s)
    }

    /// Advances by solver frames until `budget_s` seconds have passed (at least one frame).
    pub fn advance(&mut self, budget_s: f64) -> Result<()> {
        let start = Instant::now();
        while !self.done() {
            let t = self.computed as f64 * self.cfg.frame_dt;
            self.solver.advance_to(t)?;
            self.computed += 1;
            if (self.computed - 1).is_multiple_of(self.stride) {
                self.keep();
            }
            if start.elapsed().as_secs_f64() >= budget_s {
                break;
            }
        }
        self.busy_s += start.elapsed().as_secs_f64();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The truth stream is `lemur generate euler`'s trajectory, frame for frame.
    #[test]
    fn truth_matches_the_generator() {
        let names: Vec<String> = SOLVER_CHANNELS.iter().map(|s| s.to_string()).collect();
        let mut t = Truth::new(Initial::Random(3), [12, 10], 2, 4, &names, false).unwrap();
        while !t.done() {
            t.advance(0.0).unwrap();
        }
        let cfg = EulerConfig {
            nx: 12,
            ny: 10,
            frames: 7,
            ..Default::default()
        };
        let traj = lemur_solvers::euler::generate(&cfg, 3, &mut |_, _| {}).unwrap();
        let plane = 120;
        for (k, frame) in t.frames.iter().enumerate() {
            let raw = &traj.data[k * 2 * plane * 5..(k * 2 + 1) * plane * 5];
            for c in 0..5 {
                for p in 0..plane {
                    assert_eq!(
                        frame[c * plane + p],
                        raw[p * 5 + c],
                        "frame {k} channel {c}"
                    );
                }
            }
        }
        assert_eq!(t.labels, vec![QuadrantIc::random(3).gamma as f32, 1.0, 1.0]);
    }

    #[test]
    fn named_setups_run() {
        let names: Vec<String> = SOLVER_CHANNELS.iter().map(|s| s.to_string()).collect();
        for i in 0..NAMED.len() {
            let mut t = Truth::new(Initial::Named(i), [16, 16], 4, 3, &names, false).unwrap();
            while !t.done() {
                t.advance(1.0).unwrap();
            }
            assert!(t.frames.iter().flatten().all(|v| v.is_finite()));
        }
        assert!(Truth::new(Initial::Named(99), [16, 16], 4, 3, &names, false).is_err());
    }
}
