//! The fields the visualiser shows: the model's physical channels plus two derived from them
//! where the channels allow (Euler data): speed `|m| / rho` and vorticity
//! `dv/dx - du/dy` with `(u, v) = m / rho`. Derivatives are central differences with the edge
//! cells repeated (x along the grid's first axis, H; y along the second, W; the domain is the
//! unit square), computed the same way on the host (the solver's truth) and on the device
//! (the emulated members), so the two compare point by point.
//!
//! Shape legend: N members, C stored channels, D = C (+ 2) display fields, H x W grid.

use lemur_tensor::{Backend, Tensor};

use crate::error::Result;

/// Where the derived fields come from.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldLayout {
    /// Display names, stored channels first.
    pub names: Vec<String>,
    pub stored: usize,
    /// Channel indices of density, momentum x and momentum y, when all three exist.
    derived: Option<[usize; 3]>,
}

/// How a field is coloured by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// Positive quantities (density, energy, pressure, speed): a sequential map.
    Positive,
    /// Signed quantities (momentum, vorticity): a diverging map centred at 0.
    Signed,
}

impl FieldLayout {
    pub fn new(channels: &[String]) -> Self {
        let find = |name: &str| channels.iter().position(|c| c == name);
        let derived = match (find("density"), find("momentum_x"), find("momentum_y")) {
            (Some(r), Some(mx), Some(my)) => Some([r, mx, my]),
            _ => None,
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
    pub fn derive_host(&self, frames: &[f32], h: usize, w: usize) -> Vec<f32> {
        let plane = h * w;
        let c = self.stored;
        let t = frames.len() / (c * plane);
        let mut out = Vec::with_capacity(t * self.len() * plane);
        for f in frames.chunks_exact(c * plane) {
            out.extend_from_slice(f);
            if let Some([r, mx, my]) = self.derived {
                let ch = |k: usize| &f[k * plane..(k + 1) * plane];
                let (rho, px, py) = (ch(r), ch(mx), ch(my));
                let speed: Vec<f32> = (0..plane)
                    .map(|i| (px[i] * px[i] + py[i] * py[i]).sqrt() / rho[i])
                    .collect();
                let u: Vec<f32> = (0..plane).map(|i| px[i] / rho[i]).collect();
                let v: Vec<f32> = (0..plane).map(|i| py[i] / rho[i]).collect();
                let dvdx = diff_host(&v, h, w, 0);
                let dudy = diff_host(&u, h, w, 1);
                out.extend(speed);
                out.extend(dvdx.iter().zip(&dudy).map(|(a, b)| a - b));
            }
        }
        out
    }

    /// Device fields (N, C, H, W) to (N, D, H, W), with the arithmetic of
    /// [`derive_host`](Self::derive_host).
    pub fn derive<B: Backend>(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let Some([r, mx, my]) = self.derived else {
            return Ok(x.clone());
        };
        let rho = x.slice(1, r, 1)?;
        let px = x.slice(1, mx, 1)?;
        let py = x.slice(1, my, 1)?;
        let speed = px.square()?.add(&py.square()?)?.sqrt()?.div(&rho)?;
        let u = px.div(&rho)?;
        let v = py.div(&rho)?;
        let vort = diff(&v, 2)?.sub(&diff(&u, 3)?)?;
        Ok(Tensor::concat(&[x, &speed, &vort], 1)?)
    }
}

/// d/d(axis) on the unit square: `(f[i+1] - f[i-1]) * n / 2` with edge cells repeated.
fn diff_host(f: &[f32], h: usize, w: usize, axis: usize) -> Vec<f32> {
    let n = if axis == 0 { h } else { w };
    let half_n = n as f32 / 2.0;
    let mut out = vec![0.0f32; h * w];
    for i in 0..h {
        for j in 0..w {
            let (a, b) = if axis == 0 {
                (
                    f[(i + 1).min(h - 1) * w + j],
                    f[i.saturating_sub(1) * w + j],
                )
            } else {
                (
                    f[i * w + (j + 1).min(w - 1)],
                    f[i * w + j.saturating_sub(1)],
                )
            };
            out[i * w + j] = (a - b) * half_n;
        }
    }
    out
}

/// [`diff_host`] of a device tensor (N, 1, H, W) along `axis` (2 or 3).
fn diff<B: Backend>(f: &Tensor<B>, axis: usize) -> Result<Tensor<B>> {
    let n = f.dim(axis);
    let first = f.slice(axis, 0, 1)?;
    let last = f.slice(axis, n - 1, 1)?;
    let padded = Tensor::concat(&[&first, f, &last], axis)?;
    let ahead = padded.slice(axis, 2, n)?;
    let behind = padded.slice(axis, 0, n)?;
    Ok(ahead.sub(&behind)?.scale(n as f32 / 2.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lemur_tensor::CpuBackend;

    #[test]
    fn derived_fields_on_host_and_device_agree() {
        let names: Vec<String> = ["energy", "density", "pressure", "momentum_x", "momentum_y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let layout = FieldLayout::new(&names);
        assert_eq!(layout.len(), 7);
        let (n, h, w) = (2, 7, 5);
        let mut state = 0x1234_5678u64;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) + 0.5
        };
        let host: Vec<f32> = (0..n * 5 * h * w).map(|_| rnd()).collect();
        let want = layout.derive_host(&host, h, w);
        let be = CpuBackend;
        let x = Tensor::from_slice(&be, &host, &[n, 5, h, w]).unwrap();
        let got = layout.derive(&x).unwrap();
        assert_eq!(got.shape(), &[n, 7, h, w]);
        let got = got.to_vec().unwrap();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{i}: {a} vs {b}");
        }
        // Vorticity of a solid rotation u = -y, v = x (rho = 1) is 2 away from the edges.
        let mut rot = vec![0.0f32; 5 * h * w];
        for i in 0..h {
            for j in 0..w {
                let (x, y) = ((i as f32 + 0.5) / h as f32, (j as f32 + 0.5) / w as f32);
                rot[h * w + i * w + j] = 1.0;
                rot[3 * h * w + i * w + j] = -y;
                rot[4 * h * w + i * w + j] = x;
            }
        }
        let d = layout.derive_host(&rot, h, w);
        let vort = &d[6 * h * w..];
        assert!((vort[3 * w + 2] - 2.0).abs() < 1e-4, "{}", vort[3 * w + 2]);
    }
}
