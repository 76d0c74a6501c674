//! Throughput measurements for `lemur bench solvers` (native only: they pin
//! the thread count with a local rayon pool).

use crate::euler::{EulerSolver, QuadrantIc};
use crate::rayleigh_benard::{RbParams, RbSolver};
use crate::{Boundary, Error};
use std::time::{Duration, Instant};

/// Which solver to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    Euler,
    RayleighBenard,
}

/// One timing: `cells * steps / seconds` cell updates per second.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    pub solver: Solver,
    pub nx: usize,
    pub ny: usize,
    pub threads: usize,
    pub steps: u64,
    pub seconds: f64,
}

impl Throughput {
    pub fn cell_updates_per_second(&self) -> f64 {
        (self.nx * self.ny) as f64 * self.steps as f64 / self.seconds
    }
}

/// Times internal steps of `solver` on an `n` x `n` grid with `threads` rayon
/// threads for at least `budget` (after a short warm-up).
pub fn measure(
    solver: Solver,
    n: usize,
    threads: usize,
    budget: Duration,
) -> Result<Throughput, Error> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|_| {
            crate::invalid(
                "threads",
                threads,
                "cannot build a thread pool with this many threads",
            )
        })?;
    pool.install(|| {
        let (steps, seconds) = match solver {
            Solver::Euler => {
                let ic = QuadrantIc::random(0);
                let bc = [Boundary::Periodic; 2];
                let mut s = EulerSolver::new(n, n, ic.gamma, bc, 0.4, |x, y| ic.at(x, y))?;
                time_steps(budget, || {
                    let dt = s.stable_dt();
                    s.step(dt)
                })?
            }
            Solver::RayleighBenard => {
                let params = RbParams {
                    nx: n,
                    nz: n,
                    rayleigh: 1e6,
                    prandtl: 1.0,
                    cfl: 0.4,
                    max_dt: 0.05,
                };
                let mut s = RbSolver::new(params, |x, z| {
                    1.0 - z
                        + 0.01 * (std::f64::consts::PI * x).cos() * (std::f64::consts::PI * z).sin()
                })?;
                // The cost of a step does not depend on its length.
                time_steps(budget, || {
                    s.step(1e-3);
                    Ok(())
                })?
            }
        };
        Ok(Throughput {
            solver,
            nx: n,
            ny: n,
            threads,
            steps,
            seconds,
        })
    })
}

fn time_steps(
    budget: Duration,
    mut step: impl FnMut() -> Result<(), Error>,
) -> Result<(u64, f64), Error> {
    for _ in 0..3 {
        step()?;
    }
    let start = Instant::now();
    let mut steps = 0;
    while start.elapsed() < budget {
        step()?;
        steps += 1;
    }
    Ok((steps, start.elapsed().as_secs_f64()))
}
