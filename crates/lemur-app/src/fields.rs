//! The fields the visualiser shows: the model's physical channels plus two derived from the
//! velocity where the channels give it: speed `|(u, v)|` and vorticity `dv/dx - du/dy`. Euler
//! data stores momentum, so `(u, v) = m / rho`; Rayleigh-Bénard data stores the velocity
//! (x across, the second component along z, so the vorticity is `dw/dx - du/dz`).
//!
//! Derivatives are central differences on the grid's own coordinates, x along the grid's
//! first axis (H) and y along the second (W): Euler cells tile the unit square; Rayleigh-Bénard
//! points are `LX / nx` apart in x and at the solver's Chebyshev cell centres in z. A
//! periodic axis wraps around; at a wall the difference is one-sided. The host (the solver's
//! truth) and the device (the emulated members) compute the same, so they compare point by point.
//!
//! Shape legend: N members, C stored channels, D = C (+ 2) display fields, H x W grid.

use lemur_solvers::rayleigh_benard;
use lemur_tensor::{Backend, Tensor};

use crate::error::Result;
use crate::truth::System;

/// Where the derived fields come from.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldLayout {
    /// Display names, stored channels first.
    pub names: Vec<String>,
    pub stored: usize,
    derived: Option<Velocity>,
    /// The first-derivative stencils along H and along W.
    axes: [Stencil; 2],
}

/// Which channels give the velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Velocity {
    /// Density, momentum x and momentum y (Euler).
    Momentum([usize; 3]),
    /// Velocity x and velocity y (Rayleigh-Bénard).
    Direct([usize; 2]),
}

/// `df/dc[i] = (f[ahead[i]] - f[behind[i]]) * scale[i]` along one axis.
#[derive(Clone, Debug, PartialEq)]
struct Stencil {
    periodic: bool,
    scale: Vec<f32>,
}

impl Stencil {
    /// `centres`: the points' coordinates (increasing); `period`: the domain's length along a
    /// periodic axis.
    fn new(centres: &[f64], period: Option<f64>) -> Self {
        let n = centres.len();
        // Coordinates one step past either end: wrapped, or the end point itself at a wall.
        let at = |i: isize| match period {
            Some(l) if i < 0 => centres[n - 1] - l,
            Some(l) if i as usize >= n => centres[0] + l,
            _ => centres[i.clamp(0, n as isize - 1) as usize],
        };
        let scale = (0..n as isize)
            .map(|i| match at(i + 1) - at(i - 1) {
                0.0 => 0.0,
                d => (1.0 / d) as f32,
            })
            .collect();
        Self {
            periodic: period.is_some(),
            scale,
        }
    }

    /// Cell centres `(i + 1/2) / n` of the unit interval.
    fn unit(n: usize, periodic: bool) -> Self {
        let c: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect();
        Self::new(&c, periodic.then_some(1.0))
    }

    fn len(&self) -> usize {
        self.scale.len()
    }

    fn ahead(&self, i: usize) -> usize {
        let n = self.len();
        match (i + 1 < n, self.periodic) {
            (true, _) => i + 1,
            (false, true) => 0,
            (false, false) => n - 1,
        }
    }

    fn behind(&self, i: usize) -> usize {
        match (i > 0, self.periodic) {
            (true, _) => i - 1,
            (false, true) => self.len() - 1,
            (false, false) => 0,
        }
    }
}

/// How a field is coloured by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// Positive quantities (density, energy, pressure, speed): a sequential map.
    Positive,
    /// Signed quantities (momentum, velocity, vorticity): a diverging map centred at 0.
    Signed,
}

impl FieldLayout {
    /// The display fields of `channels` of `system` on a `grid` of [H, W] points.
    pub fn new(channels: &[String], system: System, grid: [usize; 2]) -> Self {
        let find = |name: &str| channels.iter().position(|c| c == name);
        let derived = match (
            find("density"),
            find("momentum_x"),
            find("momentum_y"),
            find("velocity_x"),
            find("velocity_y"),
        ) {
            (Some(r), Some(mx), Some(my), _, _) => Some(Velocity::Momentum([r, mx, my])),
            (_, _, _, Some(u), Some(v)) => Some(Velocity::Direct([u, v])),
            _ => None,
        };
        let [h, w] = grid;
        let axes = match system {
            System::Euler { periodic } => [Stencil::unit(h, periodic), Stencil::unit(w, periodic)],
            System::RayleighBenard => {
                let lx = rayleigh_benard::LX;
                let x: Vec<f64> = (0..h).map(|i| lx * i as f64 / h as f64).collect();
                let z = rayleigh_benard::z_centres(w);
                [Stencil::new(&x, Some(lx)), Stencil::new(&z, None)]
            }
        };
        let mut names = channels.to_vec();
        if derived.is_some() {
            names.push("speed".into());
            names.push("vorticity".into());
        }
        Self {
            names,
            stored: channels.len(),
            derived,
            axes,
        }
    }

    /// D, the number of display fields.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn sign(&self, field: usize) -> Sign {
        let name = &self.names[field];
        if name.starts_with("momentum") || name.starts_with("velocity") || name == "vorticity" {
            Sign::Signed
        } else {
            Sign::Positive
        }
    }

    /// Host frames `[T, C, H, W]` to display frames `[T, D, H, W]`.
    pub fn derive_host(&self, frames: &[f32]) -> Vec<f32> {
        let (h, w) = (self.axes[0].len(), self.axes[1].len());
        let plane = h * w;
        let c = self.stored;
        let t = frames.len() / (c * plane);
        let mut out = Vec::with_capacity(t * self.len() * plane);
        for f in frames.chunks_exact(c * plane) {
            out.extend_from_slice(f);
            let ch = |k: usize| &f[k * plane..(k + 1) * plane];
            let (u, v): (Vec<f32>, Vec<f32>) = match self.derived {
                None => continue,
                Some(Velocity::Momentum([r, mx, my])) => {
                    let (rho, px, py) = (ch(r), ch(mx), ch(my));
                    (0..plane).map(|i| (px[i] / rho[i], py[i] / rho[i])).unzip()
                }
                Some(Velocity::Direct([u, v])) => (ch(u).to_vec(), ch(v).to_vec()),
            };
            out.extend((0..plane).map(|i| (u[i] * u[i] + v[i] * v[i]).sqrt()));
            let dvdx = self.diff_host(&v, 0);
            let dudy = self.diff_host(&u, 1);
            out.extend(dvdx.iter().zip(&dudy).map(|(a, b)| a - b));
        }
        out
    }

    /// Device fields (N, C, H, W) to (N, D, H, W), with the arithmetic of
    /// [`derive_host`](Self::derive_host).
    pub fn derive<B: Backend>(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let (u, v) = match self.derived {
            None => return Ok(x.clone()),
            Some(Velocity::Momentum([r, mx, my])) => {
                let rho = x.slice(1, r, 1)?;
                (x.slice(1, mx, 1)?.div(&rho)?, x.slice(1, my, 1)?.div(&rho)?)
            }
            Some(Velocity::Direct([u, v])) => (x.slice(1, u, 1)?, x.slice(1, v, 1)?),
        };
        let speed = u.square()?.add(&v.square()?)?.sqrt()?;
        let vort = self.diff(&v, 0)?.sub(&self.diff(&u, 1)?)?;
        Ok(Tensor::concat(&[x, &speed, &vort], 1)?)
    }

    /// d/d(axis) of one host plane [H, W] (axis 0: along H, 1: along W).
    fn diff_host(&self, f: &[f32], axis: usize) -> Vec<f32> {
        let s = &self.axes[axis];
        let (h, w) = (self.axes[0].len(), self.axes[1].len());
        let mut out = vec![0.0f32; h * w];
        for i in 0..h {
            for j in 0..w {
                let (a, b, k) = if axis == 0 {
                    (s.ahead(i) * w + j, s.behind(i) * w + j, i)
                } else {
                    (i * w + s.ahead(j), i * w + s.behind(j), j)
                };
                out[i * w + j] = (f[a] - f[b]) * s.scale[k];
            }
        }
        out
    }

    /// [`diff_host`](Self::diff_host) of a device tensor (N, 1, H, W).
    fn diff<B: Backend>(&self, f: &Tensor<B>, axis: usize) -> Result<Tensor<B>> {
        let s = &self.axes[axis];
        let dim = axis + 2;
        let n = s.len();
        if n == 1 {
            return Ok(f.scale(0.0)?);
        }
        let (first, last) = (f.slice(dim, 0, 1)?, f.slice(dim, n - 1, 1)?);
        let (after_last, before_first) = if s.periodic {
            (&first, &last)
        } else {
            (&last, &first)
        };
        let ahead = Tensor::concat(&[&f.slice(dim, 1, n - 1)?, after_last], dim)?;
        let behind = Tensor::concat(&[before_first, &f.slice(dim, 0, n - 1)?], dim)?;
        let mut shape = [1, 1, 1, 1];
        shape[dim] = n;
        let scale = Tensor::from_slice(f.backend(), &s.scale, &shape)?;
        Ok(ahead.sub(&behind)?.mul(&scale)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lemur_tensor::CpuBackend;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) + 0.5
            })
            .collect()
    }

    fn host_and_device_agree(layout: &FieldLayout, c: usize, grid: [usize; 2]) {
        let (n, [h, w]) = (2, grid);
        let host = random(n * c * h * w, 0x1234_5678);
        let want = layout.derive_host(&host);
        let x = Tensor::from_slice(&CpuBackend, &host, &[n, c, h, w]).unwrap();
        let got = layout.derive(&x).unwrap();
        assert_eq!(got.shape(), &[n, c + 2, h, w]);
        let got = got.to_vec().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{i}: {a} vs {b}");
        }
    }

    #[test]
    fn euler_fields_on_host_and_device_agree() {
        let ch = names(&["energy", "density", "pressure", "momentum_x", "momentum_y"]);
        for periodic in [false, true] {
            let (h, w) = (7, 5);
            let layout = FieldLayout::new(&ch, System::Euler { periodic }, [h, w]);
            assert_eq!(layout.len(), 7);
            host_and_device_agree(&layout, 5, [h, w]);
            // Vorticity of a solid rotation u = -y, v = x (rho = 1) is 2: everywhere with
            // one-sided walls, away from the seam when periodic.
            let mut rot = vec![0.0f32; 5 * h * w];
            for i in 0..h {
                for j in 0..w {
                    let (x, y) = ((i as f32 + 0.5) / h as f32, (j as f32 + 0.5) / w as f32);
                    rot[h * w + i * w + j] = 1.0;
                    rot[3 * h * w + i * w + j] = -y;
                    rot[4 * h * w + i * w + j] = x;
                }
            }
            let d = layout.derive_host(&rot);
            let vort = &d[6 * h * w..];
            let cells: Vec<usize> = if periodic {
                vec![3 * w + 2]
            } else {
                (0..h * w).collect()
            };
            for k in cells {
                assert!((vort[k] - 2.0).abs() < 1e-4, "cell {k}: {}", vort[k]);
            }
        }
    }

    #[test]
    fn rayleigh_benard_fields_use_the_solver_grid() {
        let ch = names(&["buoyancy", "pressure", "velocity_x", "velocity_y"]);
        let (h, w) = (12, 7);
        let layout = FieldLayout::new(&ch, System::RayleighBenard, [h, w]);
        assert_eq!(
            layout.names[4..],
            ["speed".to_string(), "vorticity".to_string()]
        );
        host_and_device_agree(&layout, 4, [h, w]);

        // u = z on the stretched z cells and w = sin(2 pi x / LX) (periodic in x): the
        // vorticity dw/dx - du/dz is (2 pi / LX) cos(2 pi x / LX) - 1, to the central
        // difference's accuracy in x and exactly in z, walls included.
        let lx = rayleigh_benard::LX;
        let z = rayleigh_benard::z_centres(w);
        assert!(z.windows(2).all(|p| p[1] > p[0]) && z[0] > 0.0 && z[w - 1] < 1.0);
        let k = 2.0 * std::f64::consts::PI / lx;
        let (nx, plane) = (h as f64, h * w);
        let mut f = vec![0.0f32; 4 * plane];
        for i in 0..h {
            let x = lx * i as f64 / nx;
            for j in 0..w {
                f[2 * plane + i * w + j] = z[j] as f32;
                f[3 * plane + i * w + j] = (k * x).sin() as f32;
            }
        }
        let d = layout.derive_host(&f);
        let dx = lx / nx;
        for i in 0..h {
            let x = lx * i as f64 / nx;
            // The central difference of sin(k x) is cos(k x) sin(k dx) / dx.
            let want = (k * x).cos() * (k * dx).sin() / dx - 1.0;
            for j in 0..w {
                let got = d[5 * plane + i * w + j] as f64;
                assert!((got - want).abs() < 1e-4, "({i}, {j}): {got} vs {want}");
                let speed = d[4 * plane + i * w + j] as f64;
                assert!((speed - (z[j].powi(2) + (k * x).sin().powi(2)).sqrt()).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn fields_without_a_velocity_are_shown_as_stored() {
        let ch = names(&["buoyancy", "pressure"]);
        let layout = FieldLayout::new(&ch, System::RayleighBenard, [4, 3]);
        assert_eq!(layout.len(), 2);
        let x = random(2 * 12, 7);
        assert_eq!(layout.derive_host(&x), x);
    }
}
