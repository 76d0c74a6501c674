//! The truth panel: a built-in solver (Euler or Rayleigh-Bénard, whichever the models were
//! trained on), run frame by frame beside the emulator from the same initial condition, as
//! `lemur generate` would produce that trajectory. Frames are kept at the emulator's stride
//! (one per latent frame) in the model's channel order, physical units, `[C, H, W]` with H
//! along x.

use lemur_solvers::Boundary;
use lemur_solvers::euler::{EulerConfig, EulerSolver, Primitive, QuadrantIc};
use lemur_solvers::rayleigh_benard::{RbConfig, RbParams, RbSolver};
use web_time::Instant;

use crate::error::{AppError, Result};

pub use lemur_solvers::System;

/// The physics a set of runs emulates, from its dataset name: data no built-in solver makes
/// cannot be shown beside its truth.
pub fn system_of(dataset_name: &str) -> Result<System> {
    System::of(dataset_name).ok_or_else(|| AppError::Setting {
        name: "dataset",
        value: dataset_name.into(),
        detail: "the app's built-in solvers simulate Euler (`euler_*`) and \
                 `rayleigh_benard` data only"
            .into(),
    })
}

/// Whether the named Euler setups ([`NAMED`]) apply.
pub fn has_named_setups(system: System) -> bool {
    matches!(system, System::Euler { .. })
}

/// Where the initial condition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initial {
    /// A random problem as `lemur generate` draws them (seed = index): four quadrants for
    /// Euler; Rayleigh and Prandtl numbers, contrast and noise for Rayleigh-Bénard.
    Random(u64),
    /// One of [`NAMED`] (Euler only).
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

enum Solver {
    Euler(EulerSolver),
    // Boxed: its spectral state is far larger than the Euler solver's handle.
    Rb(Box<RbSolver>),
}

/// The solver and the frames it has produced so far.
pub struct Truth {
    solver: Solver,
    /// Grid points along x and y (z for Rayleigh-Bénard): the model's [H, W].
    grid: [usize; 2],
    frame_dt: f64,
    /// Solver frames per kept frame.
    stride: usize,
    /// The solver frame kept first.
    start: usize,
    /// Solver frames computed (frame 0 is the initial condition).
    computed: usize,
    /// Kept frames `[C, H, W]`, one per stride.
    pub frames: Vec<Vec<f32>>,
    /// Frames wanted in all (kept frames).
    pub wanted: usize,
    /// The model's conditioning labels, as `lemur_well::dataset::labels` computes them from
    /// the trajectory's file: its constant scalars (gamma; ln Ra and ln Pr) and the boundary
    /// codes per axis (wall 0, open 1, periodic 2).
    pub labels: Vec<f32>,
    /// The physical parameters drawn, for the controls (e.g. "Ra 1e6, Pr 0.5").
    pub description: String,
    /// Seconds spent in the solver and solver frames computed, for its speed.
    pub busy_s: f64,
    /// Channel order: indices into the solver's fields ([`System::channel_names`]).
    order: Vec<usize>,
}

/// Boundary codes of `lemur_well`'s `BoundaryType::code`.
fn code(b: Boundary) -> f32 {
    match b {
        Boundary::Wall => 0.0,
        Boundary::Open => 1.0,
        Boundary::Periodic => 2.0,
    }
}

/// The Rayleigh-Bénard solver `rayleigh_benard::generate(cfg, seed)` starts from, its
/// labels and a description.
fn rayleigh_benard(cfg: &RbConfig, seed: u64) -> Result<(RbSolver, Vec<f32>, String)> {
    let solver = lemur_solvers::rayleigh_benard::initial(cfg, seed)?;
    let RbParams {
        rayleigh, prandtl, ..
    } = *solver.params();
    // The file's scalars are `rayleigh` and `prandtl`, its boundaries periodic in x and
    // walls in z; `labels` takes the logarithm of Rayleigh and Prandtl numbers.
    let labels = vec![
        rayleigh.ln() as f32,
        prandtl.ln() as f32,
        code(Boundary::Periodic),
        code(Boundary::Wall),
    ];
    Ok((solver, labels, format!("Ra {rayleigh:.0e}, Pr {prandtl}")))
}

impl Truth {
    /// A solver of `system` on `grid` for `wanted` frames at `stride` solver frames apart,
    /// from the system's start frame ([`System::start_frame`]), in the order of `channels`
    /// (which must be the solver's fields).
    pub fn new(
        initial: Initial,
        system: System,
        grid: [usize; 2],
        stride: usize,
        wanted: usize,
        channels: &[String],
    ) -> Result<Self> {
        Self::starting_at(
            initial,
            system,
            grid,
            stride,
            system.start_frame(),
            wanted,
            channels,
        )
    }

    fn starting_at(
        initial: Initial,
        system: System,
        grid: [usize; 2],
        stride: usize,
        start: usize,
        wanted: usize,
        channels: &[String],
    ) -> Result<Self> {
        let fields = system.channel_names();
        let order = channels
            .iter()
            .map(|c| {
                fields
                    .iter()
                    .position(|s| s == c)
                    .ok_or_else(|| AppError::Setting {
                        name: "channels",
                        value: c.clone(),
                        detail: format!("the built-in solver gives {fields:?} only"),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let stride = stride.max(1);
        let frames = start + (wanted.max(1) - 1) * stride + 1;
        let (solver, frame_dt, labels, description) = match system {
            System::Euler { periodic } => {
                let cfg = EulerConfig {
                    nx: grid[0],
                    ny: grid[1],
                    frames,
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
                let solver =
                    EulerSolver::new(cfg.nx, cfg.ny, ic.gamma, [bc, bc], cfg.cfl, |x, y| {
                        ic.at(x, y)
                    })?;
                let labels = vec![ic.gamma as f32, code(bc), code(bc)];
                let description = format!("gamma {:.3}", ic.gamma);
                (Solver::Euler(solver), cfg.frame_dt, labels, description)
            }
            System::RayleighBenard => {
                let Initial::Random(seed) = initial else {
                    return Err(AppError::Setting {
                        name: "setup",
                        value: initial.label(),
                        detail: "the named setups are Euler problems; Rayleigh-Bénard starts \
                                 from a random (seed) initial condition"
                            .into(),
                    });
                };
                let cfg = RbConfig {
                    nx: grid[0],
                    nz: grid[1],
                    frames,
                    ..Default::default()
                };
                let (solver, labels, description) = rayleigh_benard(&cfg, seed)?;
                (
                    Solver::Rb(Box::new(solver)),
                    cfg.frame_dt,
                    labels,
                    description,
                )
            }
        };
        let mut t = Self {
            solver,
            grid,
            frame_dt,
            stride,
            start,
            computed: 1,
            frames: Vec::new(),
            wanted,
            labels,
            description,
            busy_s: 0.0,
            order,
        };
        if start == 0 {
            t.keep();
        }
        Ok(t)
    }

    /// Appends the solver's current state as a frame `[C, H, W]`.
    fn keep(&mut self) {
        let [nx, ny] = self.grid;
        let plane = nx * ny;
        let mut raw = Vec::new();
        let k = match &mut self.solver {
            Solver::Euler(s) => {
                s.write_frame(&mut raw);
                5
            }
            Solver::Rb(s) => {
                // Fields are [z][x]; the generator stores them x-major, [nx, nz, 4].
                let f = s.fields();
                raw.reserve(plane * 4);
                for i in 0..nx {
                    for j in 0..ny {
                        raw.extend(f.iter().map(|c| c[j * nx + i] as f32));
                    }
                }
                4
            }
        };
        let mut frame = vec![0.0f32; self.order.len() * plane];
        for (c, &src) in self.order.iter().enumerate() {
            for p in 0..plane {
                frame[c * plane + p] = raw[p * k + src];
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
            // Every frame time is landed on exactly, as the generator does, so the
            // trajectories agree bit for bit.
            let t = self.computed as f64 * self.frame_dt;
            match &mut self.solver {
                Solver::Euler(s) => s.advance_to(t)?,
                Solver::Rb(s) => s.advance_to(t)?,
            }
            self.computed += 1;
            let frame = self.computed - 1;
            if frame >= self.start && (frame - self.start).is_multiple_of(self.stride) {
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
    use lemur_solvers::Trajectory;

    fn run(mut t: Truth) -> Truth {
        while !t.done() {
            t.advance(0.0).unwrap();
        }
        t
    }

    /// Kept frames `[C, H, W]` equal the trajectory's frames `start + k * stride`
    /// (`[nx, ny, C]`), value for value.
    fn assert_frames_match(t: &Truth, traj: &Trajectory, start: usize, stride: usize) {
        let (plane, c) = (traj.nx() * traj.ny(), traj.channels());
        assert_eq!(t.frames[0].len(), c * plane);
        for (k, frame) in t.frames.iter().enumerate() {
            let raw = traj.frame(start + k * stride);
            for ch in 0..c {
                for p in 0..plane {
                    assert_eq!(
                        frame[ch * plane + p],
                        raw[p * c + ch],
                        "frame {k} channel {ch} point {p}"
                    );
                }
            }
        }
    }

    /// The conditioning labels the training pipeline computes for `traj`: it is written as a
    /// Well file and read back, as `lemur generate` and `lemur encode` do.
    fn pipeline_labels(traj: Trajectory) -> Vec<f32> {
        let b = |b: Boundary| match b {
            Boundary::Open => lemur_well::BoundaryType::Open,
            Boundary::Periodic => lemur_well::BoundaryType::Periodic,
            Boundary::Wall => lemur_well::BoundaryType::Wall,
        };
        let data = lemur_well::TrajectoryData {
            boundaries: traj.boundaries.map(b),
            dataset_name: traj.dataset_name,
            x: traj.x,
            y: traj.y,
            times: traj.times,
            t0_fields: traj.t0_fields,
            t1_fields: traj.t1_fields,
            data: traj.data,
            scalars: traj.scalars,
        };
        let name = std::path::Path::new("truth.hdf5");
        let bytes = lemur_well::to_bytes(name, &[&data]).unwrap();
        let file = lemur_well::WellFile::from_bytes(name, bytes).unwrap();
        lemur_well::dataset::labels(file.meta())
    }

    /// The truth stream is `lemur generate euler`'s trajectory, frame for frame.
    #[test]
    fn truth_matches_the_generator() {
        let system = System::Euler { periodic: false };
        let t = run(Truth::new(
            Initial::Random(3),
            system,
            [12, 10],
            2,
            4,
            &system.channel_names(),
        )
        .unwrap());
        let cfg = EulerConfig {
            nx: 12,
            ny: 10,
            frames: 7,
            ..Default::default()
        };
        let traj = lemur_solvers::euler::generate(&cfg, 3, &mut |_, _| {}).unwrap();
        assert_frames_match(&t, &traj, 0, 2);
        assert_eq!(t.labels, vec![QuadrantIc::random(3).gamma as f32, 1.0, 1.0]);
        assert_eq!(t.labels, pipeline_labels(traj));
    }

    /// The Rayleigh-Bénard truth is `lemur generate rayleigh-benard`'s trajectory from its
    /// start frame on, frame for frame, and its labels are what training computed.
    #[test]
    fn rayleigh_benard_truth_matches_the_generator() {
        let system = System::RayleighBenard;
        let (start, stride, wanted) = (6, 2, 3);
        let t = Truth::starting_at(
            Initial::Random(5),
            system,
            [16, 8],
            stride,
            start,
            wanted,
            &system.channel_names(),
        )
        .unwrap();
        let t = run(t);
        assert_eq!(t.frames.len(), wanted);
        assert_eq!(t.computed(), start + (wanted - 1) * stride + 1);
        let cfg = RbConfig {
            nx: 16,
            nz: 8,
            frames: start + (wanted - 1) * stride + 1,
            ..Default::default()
        };
        let traj = lemur_solvers::rayleigh_benard::generate(&cfg, 5, &mut |_, _| {}).unwrap();
        assert_frames_match(&t, &traj, start, stride);
        assert_eq!(t.labels, pipeline_labels(traj));
        // The model's channel order may differ from the solver's.
        let swapped: Vec<String> = ["pressure", "buoyancy", "velocity_x", "velocity_y"]
            .map(String::from)
            .into();
        let u = run(Truth::starting_at(
            Initial::Random(5),
            system,
            [16, 8],
            stride,
            start,
            1,
            &swapped,
        )
        .unwrap());
        assert_eq!(u.frames[0][..128], t.frames[0][128..256]);
    }

    #[test]
    fn systems_follow_the_dataset_and_rb_refuses_named_setups() {
        assert_eq!(
            system_of("euler_multi_quadrants_periodicBC").unwrap(),
            System::Euler { periodic: true }
        );
        assert_eq!(
            system_of("rayleigh_benard").unwrap().start_frame(),
            lemur_solvers::rayleigh_benard::CONVECTION_FRAME
        );
        let err = system_of("shear_flow").unwrap_err().to_string();
        assert!(err.contains("shear_flow"), "{err}");
        let rb = System::RayleighBenard;
        let err = Truth::new(Initial::Named(0), rb, [16, 8], 4, 2, &rb.channel_names())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("setup"), "{err}");
        let err = Truth::new(
            Initial::Random(0),
            rb,
            [16, 8],
            4,
            2,
            &System::Euler { periodic: true }.channel_names(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("energy"), "{err}");
    }

    #[test]
    fn named_setups_run() {
        let system = System::Euler { periodic: false };
        let names = system.channel_names();
        for i in 0..NAMED.len() {
            let t = run(Truth::new(Initial::Named(i), system, [16, 16], 4, 3, &names).unwrap());
            assert!(t.frames.iter().flatten().all(|v| v.is_finite()));
        }
        assert!(Truth::new(Initial::Named(99), system, [16, 16], 4, 3, &names).is_err());
    }
}
