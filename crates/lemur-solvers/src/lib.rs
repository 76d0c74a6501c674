//! Built-in CFD solvers that produce lemur's training data without any download.
//!
//! Two solvers, each writing trajectories in the layout of The Well:
//! - [`euler`]: 2-D compressible Euler on `[0,1]^2` started from four-quadrant
//!   Riemann problems (like `euler_multi_quadrants_{open,periodic}BC`);
//! - [`rayleigh_benard`]: 2-D Boussinesq Rayleigh-Bénard convection in
//!   free-fall units (like `rayleigh_benard`).
//!
//! Everything computes in `f64` and stores `f32`. On native targets loops run on
//! the current rayon pool (so callers choose the thread count with
//! `ThreadPool::install`); on `wasm32` they run serially with identical results,
//! because every cell is computed independently of the thread split.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod euler;
mod par;
pub mod rayleigh_benard;
pub mod rng;

/// Errors of this crate. Configuration errors name the offending field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of its allowed range.
    #[error("invalid config value `{name}` = {value}: {reason}")]
    InvalidConfig {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The simulation produced a non-finite or non-physical state it could not recover from.
    #[error("solver diverged at t = {time}: {reason}")]
    Diverged { time: f64, reason: String },
}

pub(crate) fn invalid(name: &'static str, value: impl ToString, reason: &'static str) -> Error {
    Error::InvalidConfig {
        name,
        value: value.to_string(),
        reason,
    }
}

pub(crate) fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The physics of a dataset the built-in solvers can produce, read from its Well name: what
/// a run's truth is simulated with when its data is not at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// `euler_multi_quadrants_openBC` or `euler_multi_quadrants_periodicBC`.
    Euler { periodic: bool },
    /// `rayleigh_benard`.
    RayleighBenard,
}

impl System {
    /// The system of a dataset name, `None` for data no built-in solver makes.
    pub fn of(dataset_name: &str) -> Option<Self> {
        if dataset_name.starts_with("euler") {
            Some(System::Euler {
                periodic: dataset_name.contains("periodic"),
            })
        } else if dataset_name.starts_with("rayleigh_benard") {
            Some(System::RayleighBenard)
        } else {
            None
        }
    }

    /// The name people call it by.
    pub fn title(self) -> &'static str {
        match self {
            System::Euler { .. } => "Euler",
            System::RayleighBenard => "Rayleigh-Bénard",
        }
    }

    /// The first frame worth starting a rollout or an evaluation from: Rayleigh-Bénard
    /// trajectories (built-in and The Well's) begin with a motionless conduction state.
    pub fn start_frame(self) -> usize {
        match self {
            System::Euler { .. } => 0,
            System::RayleighBenard => rayleigh_benard::CONVECTION_FRAME,
        }
    }

    /// The fields its solver writes: scalar fields, then vector fields (two channels each,
    /// x then y; for Rayleigh-Bénard y is the vertical).
    pub fn fields(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            System::Euler { .. } => (&["energy", "density", "pressure"], &["momentum"]),
            System::RayleighBenard => (&["buoyancy", "pressure"], &["velocity"]),
        }
    }

    /// Its channel names in the order the solver writes them, as The Well names them
    /// (`momentum_x`, `momentum_y`).
    pub fn channel_names(self) -> Vec<String> {
        let (scalars, vectors) = self.fields();
        let components = vectors
            .iter()
            .flat_map(|v| [format!("{v}_x"), format!("{v}_y")]);
        owned(scalars).into_iter().chain(components).collect()
    }

    /// The `lemur generate` command that makes data of this system.
    pub fn generate_command(self) -> &'static str {
        match self {
            System::Euler { periodic: true } => "lemur generate euler --periodic --out DIR",
            System::Euler { periodic: false } => "lemur generate euler --out DIR",
            System::RayleighBenard => "lemur generate rayleigh-benard --out DIR",
        }
    }
}

/// Boundary condition type along one axis, as in The Well's `bc_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    /// Zero-gradient extrapolation (outflow).
    Open,
    /// The domain wraps around.
    Periodic,
    /// A solid wall (no-slip, fixed temperature for Rayleigh-Bénard).
    Wall,
}

/// One simulated trajectory in The Well's channel layout.
#[derive(Clone, Debug)]
pub struct Trajectory {
    /// `euler_multi_quadrants_openBC`, `euler_multi_quadrants_periodicBC` or `rayleigh_benard`.
    pub dataset_name: String,
    /// Cell-centre coordinates along x (length `nx`).
    pub x: Vec<f64>,
    /// Cell-centre coordinates along y (length `ny`); for Rayleigh-Bénard this is the vertical z.
    pub y: Vec<f64>,
    /// Time of each stored frame (length `T`).
    pub times: Vec<f64>,
    /// Scalar field names, in channel order.
    pub t0_fields: Vec<String>,
    /// Vector field names, in channel order; each takes two channels (x, y).
    pub t1_fields: Vec<String>,
    /// `[T, nx, ny, C]` row-major, `C = t0 + 2 * t1`, scalar fields first.
    pub data: Vec<f32>,
    /// Constant scalars of the trajectory, e.g. `("gamma", 1.4)`.
    pub scalars: Vec<(String, f64)>,
    /// Boundary type along x, then along y.
    pub boundaries: [Boundary; 2],
}

impl Trajectory {
    pub fn nx(&self) -> usize {
        self.x.len()
    }

    pub fn ny(&self) -> usize {
        self.y.len()
    }

    /// Number of channels per cell.
    pub fn channels(&self) -> usize {
        self.t0_fields.len() + 2 * self.t1_fields.len()
    }

    /// Number of stored frames.
    pub fn frames(&self) -> usize {
        self.times.len()
    }

    /// Frame `t` as `[nx, ny, C]`. Panics when `t` is out of range.
    pub fn frame(&self, t: usize) -> &[f32] {
        let n = self.nx() * self.ny() * self.channels();
        &self.data[t * n..(t + 1) * n]
    }
}

#[cfg(test)]
mod tests {
    use super::System;

    #[test]
    fn systems_are_read_from_dataset_names() {
        let cases = [
            (
                "euler_multi_quadrants_periodicBC",
                Some(System::Euler { periodic: true }),
            ),
            (
                "euler_multi_quadrants_openBC",
                Some(System::Euler { periodic: false }),
            ),
            ("rayleigh_benard", Some(System::RayleighBenard)),
            ("shear_flow", None),
        ];
        for (name, want) in cases {
            assert_eq!(System::of(name), want, "{name}");
        }
        assert_eq!(System::RayleighBenard.start_frame(), 80);
        assert_eq!(System::Euler { periodic: true }.start_frame(), 0);
        assert_eq!(
            System::Euler { periodic: true }.generate_command(),
            "lemur generate euler --periodic --out DIR"
        );
        assert_eq!(
            System::Euler { periodic: false }.channel_names(),
            ["energy", "density", "pressure", "momentum_x", "momentum_y"]
        );
        assert_eq!(
            System::RayleighBenard.channel_names(),
            ["buoyancy", "pressure", "velocity_x", "velocity_y"]
        );
    }
}
