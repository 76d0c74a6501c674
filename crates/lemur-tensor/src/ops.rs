//! Differentiable ops on `Tensor`. Each validates its shapes (errors name the op and the
//! shapes), calls one or a few backend primitives, and records a backward closure written in
//! terms of other ops.

use crate::backend::*;
use crate::error::{Result, invalid, shape_err};
use crate::tensor::{Tensor, grad_enabled, numel};

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// NumPy broadcasting of two shapes.
fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(shape_err(op, format!("cannot broadcast {a:?} with {b:?}"))),
        };
    }
    Ok(out)
}

/// Strides reading `shape` as if broadcast to `out`.
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let pad = out.len() - shape.len();
    let c = contiguous_strides(shape);
    (0..out.len())
        .map(|d| {
            if d < pad || shape[d - pad] == 1 {
                0
            } else {
                c[d - pad]
            }
        })
        .collect()
}

/// Merges adjacent axes that are contiguous in every operand, so that any broadcast of
/// tensors of up to MAX_DIMS dims (and many larger ones) fits the kernels.
fn compact(shape: &[usize], strides: &[Vec<usize>]) -> Broadcast {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, os)| *os.last().unwrap() == s[d] * shape[d]);
        if mergeable {
            *out_shape.last_mut().unwrap() *= shape[d];
            for (s, os) in strides.iter().zip(out_strides.iter_mut()) {
                *os.last_mut().unwrap() = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (s, os) in strides.iter().zip(out_strides.iter_mut()) {
                os.push(s[d]);
            }
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for os in out_strides.iter_mut() {
            os.push(0);
        }
    }
    Broadcast {
        shape: out_shape,
        strides: out_strides,
    }
}

fn check_dims(op: &'static str, layout: &Broadcast) -> Result<()> {
    if layout.shape.len() > MAX_DIMS {
        return Err(invalid(
            op,
            format!(
                "broadcast over {} non-mergeable axes (max {MAX_DIMS})",
                layout.shape.len()
            ),
        ));
    }
    Ok(())
}

impl<B: Backend> Tensor<B> {
    // ---- views -------------------------------------------------------------------------

    /// Same data, new shape (free: no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.numel() {
            return Err(shape_err(
                "reshape",
                format!("{:?} -> {shape:?}", self.shape()),
            ));
        }
        let from = self.shape().to_vec();
        Ok(Tensor::from_op(
            self.backend(),
            self.storage(),
            shape.to_vec(),
            "reshape",
            &[self],
            move |dy| Ok(vec![Some(dy.reshape(&from)?)]),
        ))
    }

    // ---- elementwise ---------------------------------------------------------------------

    pub fn unary(&self, op: Unary) -> Result<Self> {
        let b = self.backend();
        let out = b.unary(op, &self.storage())?;
        let x = self.detach();
        Ok(Tensor::from_op(
            b,
            out,
            self.shape().to_vec(),
            "unary",
            &[self],
            move |dy| {
                let dx = x
                    .backend()
                    .unary_backward(op, &x.storage(), &dy.storage())?;
                Ok(vec![Some(Tensor::from_storage(
                    x.backend(),
                    dx,
                    x.shape(),
                )?)])
            },
        ))
    }

    pub fn neg(&self) -> Result<Self> {
        self.unary(Unary::Neg)
    }
    pub fn silu(&self) -> Result<Self> {
        self.unary(Unary::Silu)
    }
    pub fn exp(&self) -> Result<Self> {
        self.unary(Unary::Exp)
    }
    pub fn log(&self) -> Result<Self> {
        self.unary(Unary::Log)
    }
    pub fn sqrt(&self) -> Result<Self> {
        self.unary(Unary::Sqrt)
    }
    pub fn rsqrt(&self) -> Result<Self> {
        self.unary(Unary::Rsqrt)
    }
    /// `rsqrt(1 + x^2)` in one kernel.
    pub fn gate(&self) -> Result<Self> {
        self.unary(Unary::Gate)
    }
    pub fn square(&self) -> Result<Self> {
        self.unary(Unary::Square)
    }
    pub fn sin(&self) -> Result<Self> {
        self.unary(Unary::Sin)
    }
    pub fn cos(&self) -> Result<Self> {
        self.unary(Unary::Cos)
    }
    pub fn abs(&self) -> Result<Self> {
        self.unary(Unary::Abs)
    }
    /// `x * rsqrt(1 + (x/5)^2)`.
    pub fn softclip(&self) -> Result<Self> {
        self.unary(Unary::Softclip)
    }
    pub fn scale(&self, s: f32) -> Result<Self> {
        self.unary(Unary::Scale(s))
    }
    pub fn add_scalar(&self, s: f32) -> Result<Self> {
        self.unary(Unary::AddScalar(s))
    }
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Self> {
        self.unary(Unary::Clamp(lo, hi))
    }
    /// 1 where `x > s`, else 0 (no gradient flows through a comparison).
    pub fn gt(&self, s: f32) -> Result<Self> {
        self.detach().unary(Unary::Gt(s))
    }

    fn binary(&self, other: &Self, op: Binary) -> Result<Self> {
        let name = match op {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Max => "maximum",
            Binary::Min => "minimum",
        };
        let shape = broadcast_shape(name, self.shape(), other.shape())?;
        let layout = compact(
            &shape,
            &[
                bstrides(self.shape(), &shape),
                bstrides(other.shape(), &shape),
            ],
        );
        check_dims(name, &layout)?;
        let b = self.backend();
        let out = b.binary(op, &self.storage(), &other.storage(), &layout)?;
        let (x, y) = (self.detach(), other.detach());
        Ok(Tensor::from_op(
            b,
            out,
            shape,
            name,
            &[self, other],
            move |dy| {
                let (dx, dyy) = match op {
                    Binary::Add => (dy.clone(), dy.clone()),
                    Binary::Sub => (dy.clone(), dy.neg()?),
                    Binary::Mul => (dy.mul(&y)?, dy.mul(&x)?),
                    Binary::Div => (dy.div(&y)?, dy.mul(&x)?.div(&y.square()?)?.neg()?),
                    Binary::Max | Binary::Min => {
                        let diff = if op == Binary::Max {
                            x.sub(&y)?
                        } else {
                            y.sub(&x)?
                        };
                        let take_x = diff.gt(0.0)?;
                        let dx = dy.mul(&take_x)?;
                        (dx.clone(), dy.sub(&dx)?)
                    }
                };
                Ok(vec![
                    Some(dx.sum_to(x.shape())?),
                    Some(dyy.sum_to(y.shape())?),
                ])
            },
        ))
    }

    pub fn add(&self, other: &Self) -> Result<Self> {
        self.binary(other, Binary::Add)
    }
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.binary(other, Binary::Sub)
    }
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.binary(other, Binary::Mul)
    }
    pub fn div(&self, other: &Self) -> Result<Self> {
        self.binary(other, Binary::Div)
    }
    pub fn maximum(&self, other: &Self) -> Result<Self> {
        self.binary(other, Binary::Max)
    }
    pub fn minimum(&self, other: &Self) -> Result<Self> {
        self.binary(other, Binary::Min)
    }

    /// `mask != 0 ? a : b`, all three broadcast together; no gradient flows to the mask.
    pub fn select(mask: &Self, a: &Self, b: &Self) -> Result<Self> {
        let shape = broadcast_shape(
            "select",
            &broadcast_shape("select", mask.shape(), a.shape())?,
            b.shape(),
        )?;
        let layout = compact(
            &shape,
            &[
                bstrides(mask.shape(), &shape),
                bstrides(a.shape(), &shape),
                bstrides(b.shape(), &shape),
            ],
        );
        check_dims("select", &layout)?;
        let be = a.backend();
        let out = be.select(&mask.storage(), &a.storage(), &b.storage(), &layout)?;
        let (m, ash, bsh) = (mask.detach(), a.shape().to_vec(), b.shape().to_vec());
        Ok(Tensor::from_op(
            be,
            out,
            shape,
            "select",
            &[a, b],
            move |dy| {
                let zero = Tensor::zeros(dy.backend(), &[1])?;
                let da = Tensor::select(&m, dy, &zero)?.sum_to(&ash)?;
                let db = Tensor::select(&m, &zero, dy)?.sum_to(&bsh)?;
                Ok(vec![Some(da), Some(db)])
            },
        ))
    }

    // ---- data movement ---------------------------------------------------------------------

    fn gather(
        &self,
        desc: Strided,
        op: &'static str,
        backward: impl Fn(&Tensor<B>) -> Result<Tensor<B>> + 'static,
    ) -> Result<Self> {
        if desc.shape.len() > MAX_DIMS {
            return Err(invalid(
                op,
                format!("{} axes (max {MAX_DIMS})", desc.shape.len()),
            ));
        }
        let b = self.backend();
        let out = b.copy_strided(&self.storage(), &desc)?;
        Ok(Tensor::from_op(
            b,
            out,
            desc.shape.clone(),
            op,
            &[self],
            move |dy| Ok(vec![Some(backward(dy)?)]),
        ))
    }

    /// Reorders axes: output axis i is input axis `axes[i]`.
    pub fn permute(&self, axes: &[usize]) -> Result<Self> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if axes.len() != r
            || axes
                .iter()
                .any(|&a| a >= r || std::mem::replace(&mut seen[a], true))
        {
            return Err(shape_err(
                "permute",
                format!("axes {axes:?} for shape {:?}", self.shape()),
            ));
        }
        let c = contiguous_strides(self.shape());
        let desc = Strided {
            shape: axes.iter().map(|&a| self.shape()[a]).collect(),
            strides: axes.iter().map(|&a| c[a] as isize).collect(),
            offset: 0,
        };
        let mut inverse = vec![0; r];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        self.gather(desc, "permute", move |dy| dy.permute(&inverse))
    }

    pub fn transpose(&self, a: usize, b: usize) -> Result<Self> {
        let mut axes: Vec<usize> = (0..self.rank()).collect();
        if a >= axes.len() || b >= axes.len() {
            return Err(shape_err(
                "transpose",
                format!("axes ({a}, {b}) for shape {:?}", self.shape()),
            ));
        }
        axes.swap(a, b);
        self.permute(&axes)
    }

    /// Reverses the given axes.
    pub fn flip(&self, axes: &[usize]) -> Result<Self> {
        let c = contiguous_strides(self.shape());
        let mut desc = Strided {
            shape: self.shape().to_vec(),
            strides: c.iter().map(|&s| s as isize).collect(),
            offset: 0,
        };
        for &a in axes {
            if a >= self.rank() {
                return Err(shape_err(
                    "flip",
                    format!("axis {a} for shape {:?}", self.shape()),
                ));
            }
            desc.offset += (self.shape()[a].max(1) - 1) * c[a];
            desc.strides[a] = -desc.strides[a];
        }
        let axes = axes.to_vec();
        self.gather(desc, "flip", move |dy| dy.flip(&axes))
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Self> {
        let out = broadcast_shape("broadcast_to", self.shape(), shape)?;
        if out != shape {
            return Err(shape_err(
                "broadcast_to",
                format!("{:?} -> {shape:?}", self.shape()),
            ));
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let layout = compact(shape, &[bstrides(self.shape(), shape)]);
        let desc = Strided {
            shape: layout.shape,
            strides: layout.strides[0].iter().map(|&s| s as isize).collect(),
            offset: 0,
        };
        let from = self.shape().to_vec();
        let to = shape.to_vec();
        let flat = self.gather(desc, "broadcast_to", move |dy| {
            dy.reshape(&[numel(&to)])?.reshape(&to)?.sum_to(&from)
        })?;
        flat.reshape(shape)
    }

    /// `len` entries of `axis` starting at `start`.
    pub fn slice(&self, axis: usize, start: usize, len: usize) -> Result<Self> {
        if axis >= self.rank() || start + len > self.shape()[axis] {
            return Err(shape_err(
                "slice",
                format!(
                    "axis {axis} range {start}..{} of shape {:?}",
                    start + len,
                    self.shape()
                ),
            ));
        }
        let c = contiguous_strides(self.shape());
        let mut shape = self.shape().to_vec();
        shape[axis] = len;
        let desc = Strided {
            shape,
            strides: c.iter().map(|&s| s as isize).collect(),
            offset: start * c[axis],
        };
        let full = self.shape()[axis];
        self.gather(desc, "slice", move |dy| {
            dy.pad(axis, start, full - start - len)
        })
    }

    /// Zeros around this tensor along `axis`: `before` before and `after` after (the gradient
    /// of a slice, in one kernel).
    pub fn pad(&self, axis: usize, before: usize, after: usize) -> Result<Self> {
        if axis >= self.rank() {
            return Err(shape_err(
                "pad",
                format!("axis {axis} of shape {:?}", self.shape()),
            ));
        }
        let s = self.shape();
        let (outer, n, inner) = (numel(&s[..axis]), s[axis], numel(&s[axis + 1..]));
        let be = self.backend();
        let out = be.pad(&self.storage(), outer, n, inner, before, after)?;
        let mut shape = s.to_vec();
        shape[axis] = before + n + after;
        Ok(Tensor::from_op(be, out, shape, "pad", &[self], move |dy| {
            Ok(vec![Some(dy.slice(axis, before, n)?)])
        }))
    }

    /// Joins tensors along `axis`; all other dims must agree.
    pub fn concat(parts: &[&Self], axis: usize) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| invalid("concat", "no tensors"))?;
        let rank = first.rank();
        for p in parts {
            let ok = p.rank() == rank
                && axis < rank
                && (0..rank).all(|d| d == axis || p.shape()[d] == first.shape()[d]);
            if !ok {
                let shapes: Vec<_> = parts.iter().map(|p| p.shape().to_vec()).collect();
                return Err(shape_err(
                    "concat",
                    format!("shapes {shapes:?} along axis {axis}"),
                ));
            }
        }
        let outer = numel(&first.shape()[..axis]);
        let inner = numel(&first.shape()[axis + 1..]);
        let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[axis]).collect();
        let storages: Vec<B::Storage> = parts.iter().map(|p| p.storage()).collect();
        let refs: Vec<(&B::Storage, usize)> = storages.iter().zip(sizes.iter().copied()).collect();
        let b = first.backend();
        let out = b.concat(&refs, outer, inner)?;
        let mut shape = first.shape().to_vec();
        shape[axis] = sizes.iter().sum();
        Ok(Tensor::from_op(b, out, shape, "concat", parts, move |dy| {
            let mut start = 0;
            let mut grads = Vec::new();
            for &n in &sizes {
                grads.push(Some(dy.slice(axis, start, n)?));
                start += n;
            }
            Ok(grads)
        }))
    }

    // ---- reductions ----------------------------------------------------------------------

    /// Sums over `axis`, keeping it as size 1 when `keepdim`.
    pub fn sum(&self, axis: usize, keepdim: bool) -> Result<Self> {
        if axis >= self.rank() {
            return Err(shape_err(
                "sum",
                format!("axis {axis} of shape {:?}", self.shape()),
            ));
        }
        let s = self.shape();
        let (outer, r, inner) = (numel(&s[..axis]), s[axis], numel(&s[axis + 1..]));
        let b = self.backend();
        let out = b.sum_axis(&self.storage(), outer, r, inner)?;
        let mut kshape = s.to_vec();
        kshape[axis] = 1;
        let from = s.to_vec();
        let keep = kshape.clone();
        let t = Tensor::from_op(b, out, kshape, "sum", &[self], move |dy| {
            Ok(vec![Some(dy.reshape(&keep)?.broadcast_to(&from)?)])
        });
        if keepdim {
            Ok(t)
        } else {
            let mut shape = s.to_vec();
            shape.remove(axis);
            t.reshape(&shape)
        }
    }

    /// The sum of every element, shape [1].
    pub fn sum_all(&self) -> Result<Self> {
        self.reshape(&[self.numel()])?.sum(0, true)
    }

    pub fn mean_all(&self) -> Result<Self> {
        let n = self.numel().max(1) as f32;
        self.sum_all()?.scale(1.0 / n)
    }

    pub fn mean(&self, axis: usize, keepdim: bool) -> Result<Self> {
        let n = self.shape().get(axis).copied().unwrap_or(1).max(1) as f32;
        self.sum(axis, keepdim)?.scale(1.0 / n)
    }

    /// Variance over `axis` (divided by n - 1 when `unbiased`).
    pub fn var(&self, axis: usize, keepdim: bool, unbiased: bool) -> Result<Self> {
        let n = self.shape().get(axis).copied().unwrap_or(1);
        let d = self.sub(&self.mean(axis, true)?)?;
        let denom = if unbiased {
            n.saturating_sub(1).max(1)
        } else {
            n.max(1)
        } as f32;
        d.square()?.sum(axis, keepdim)?.scale(1.0 / denom)
    }

    /// Sums broadcast axes away so the result has `shape` (the adjoint of broadcasting).
    pub fn sum_to(&self, shape: &[usize]) -> Result<Self> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if shape.len() > self.rank() {
            return Err(shape_err(
                "sum_to",
                format!("{:?} -> {shape:?}", self.shape()),
            ));
        }
        let pad = self.rank() - shape.len();
        let mut t = self.clone();
        for d in 0..self.rank() {
            let target = if d < pad { 1 } else { shape[d - pad] };
            if target == 1 && t.shape()[d] != 1 {
                t = t.sum(d, true)?;
            } else if target != t.shape()[d] {
                return Err(shape_err(
                    "sum_to",
                    format!("{:?} -> {shape:?}", self.shape()),
                ));
            }
        }
        t.reshape(shape)
    }

    // ---- linear algebra ------------------------------------------------------------------

    /// `op(a) @ op(b)` over matching batch dims (or a rank-2 operand shared by the batch).
    pub(crate) fn mm(a: &Self, b: &Self, ta: bool, tb: bool, bias: Option<&Self>) -> Result<Self> {
        let err = || {
            shape_err(
                "matmul",
                format!(
                    "{:?}{} @ {:?}{}",
                    a.shape(),
                    if ta { "^T" } else { "" },
                    b.shape(),
                    if tb { "^T" } else { "" }
                ),
            )
        };
        if a.rank() < 2 || b.rank() < 2 {
            return Err(err());
        }
        let (ar, br) = (a.rank(), b.rank());
        let (m, ka) = if ta {
            (a.shape()[ar - 1], a.shape()[ar - 2])
        } else {
            (a.shape()[ar - 2], a.shape()[ar - 1])
        };
        let (kb, n) = if tb {
            (b.shape()[br - 1], b.shape()[br - 2])
        } else {
            (b.shape()[br - 2], b.shape()[br - 1])
        };
        let (abatch, bbatch) = (&a.shape()[..ar - 2], &b.shape()[..br - 2]);
        if ka != kb || (!abatch.is_empty() && !bbatch.is_empty() && abatch != bbatch) {
            return Err(err());
        }
        if let Some(bias) = bias
            && bias.shape() != [n]
        {
            return Err(shape_err(
                "matmul",
                format!("bias {:?} for {n} output columns", bias.shape()),
            ));
        }
        let batch_dims = if abatch.is_empty() {
            bbatch.to_vec()
        } else {
            abatch.to_vec()
        };
        let d = MatmulDesc {
            batch: numel(&batch_dims),
            m,
            n,
            k: ka,
            trans_a: ta,
            trans_b: tb,
            a_batched: !abatch.is_empty(),
            b_batched: !bbatch.is_empty(),
        };
        let be = a.backend();
        let out = be.matmul(
            &a.storage(),
            &b.storage(),
            bias.map(|b| b.storage()).as_ref(),
            &d,
        )?;
        let mut shape = batch_dims;
        shape.extend([m, n]);
        let (x, y) = (a.detach(), b.detach());
        let has_bias = bias.is_some();
        let mut parents = vec![a, b];
        if let Some(bias) = bias {
            parents.push(bias);
        }
        Ok(Tensor::from_op(
            be,
            out,
            shape,
            "matmul",
            &parents,
            move |dy| {
                // See DESIGN: each case is the transposed-operand matmul of dy with the other input.
                let (da, db) = match (ta, tb) {
                    (false, false) => (
                        Tensor::mm(dy, &y, false, true, None)?,
                        Tensor::mm(&x, dy, true, false, None)?,
                    ),
                    (false, true) => (
                        Tensor::mm(dy, &y, false, false, None)?,
                        Tensor::mm(dy, &x, true, false, None)?,
                    ),
                    (true, false) => (
                        Tensor::mm(&y, dy, false, true, None)?,
                        Tensor::mm(&x, dy, false, false, None)?,
                    ),
                    (true, true) => (
                        Tensor::mm(&y, dy, true, true, None)?,
                        Tensor::mm(dy, &x, true, true, None)?,
                    ),
                };
                // A shared (unbatched) operand's gradient sums over the batch.
                let da = if x.rank() < da.rank() {
                    da.sum(0, false)?
                } else {
                    da
                };
                let db = if y.rank() < db.rank() {
                    db.sum(0, false)?
                } else {
                    db
                };
                let da = da.reshape(x.shape())?;
                let db = db.reshape(y.shape())?;
                let mut g = vec![Some(da), Some(db)];
                if has_bias {
                    g.push(Some(
                        dy.reshape(&[dy.numel() / d.n.max(1), d.n])?.sum(0, false)?,
                    ));
                }
                Ok(g)
            },
        ))
    }

    /// Batched matmul: (..., M, K) @ (..., K, N), or @ (K, N) shared by the batch.
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        self.batched_mm(other, false)
    }

    /// Batched `self @ other^T`: (..., M, K) @ (..., N, K)^T.
    pub fn matmul_t(&self, other: &Self) -> Result<Self> {
        self.batched_mm(other, true)
    }

    /// `mm` over the leading batch axes of either operand, restoring them on the result.
    fn batched_mm(&self, other: &Self, transpose_other: bool) -> Result<Self> {
        let (a, b) = (self.flatten_batch()?, other.flatten_batch()?);
        let out = Tensor::mm(&a, &b, false, transpose_other, None)?;
        let batch = if self.rank() > 2 {
            &self.shape()[..self.rank() - 2]
        } else {
            &other.shape()[..other.rank() - 2]
        };
        let mut shape = batch.to_vec();
        shape.extend_from_slice(&out.shape()[out.rank() - 2..]);
        out.reshape(&shape)
    }

    /// Collapses leading batch axes into one (rank 3), leaving rank-2 tensors alone.
    fn flatten_batch(&self) -> Result<Self> {
        if self.rank() <= 3 {
            if self.rank() < 2 {
                return Err(shape_err(
                    "matmul",
                    format!("operand of shape {:?} needs rank >= 2", self.shape()),
                ));
            }
            return Ok(self.clone());
        }
        let r = self.rank();
        self.reshape(&[
            numel(&self.shape()[..r - 2]),
            self.shape()[r - 2],
            self.shape()[r - 1],
        ])
    }

    /// PyTorch's `Linear`: x (..., in) @ w^T (w: (out, in)) + bias (out).
    pub fn linear(&self, w: &Self, bias: Option<&Self>) -> Result<Self> {
        if w.rank() != 2 || self.rank() == 0 || self.shape()[self.rank() - 1] != w.shape()[1] {
            return Err(shape_err(
                "linear",
                format!("input {:?} with weight {:?}", self.shape(), w.shape()),
            ));
        }
        let cols = w.shape()[1];
        let x2 = self.reshape(&[self.numel() / cols, cols])?;
        let y = Tensor::mm(&x2, w, false, true, bias)?;
        let mut shape = self.shape().to_vec();
        *shape.last_mut().unwrap() = w.shape()[0];
        y.reshape(&shape)
    }

    /// Stride-1 "same" convolution: x (B, Cin, H, W), w (Cout, Cin, k, k) with k = 1 or 3,
    /// bias (Cout); zeros or circular padding along each of H and W (`circular`).
    pub fn conv2d(&self, w: &Self, bias: Option<&Self>, circular: [bool; 2]) -> Result<Self> {
        let (xs, ws) = (self.shape(), w.shape());
        let ok = xs.len() == 4
            && ws.len() == 4
            && ws[1] == xs[1]
            && ws[2] == ws[3]
            && (ws[2] == 1 || ws[2] == 3);
        if !ok || bias.is_some_and(|b| b.shape() != [ws[0]]) {
            return Err(shape_err(
                "conv2d",
                format!(
                    "input {xs:?}, weight {ws:?}, bias {:?} (want (B,Cin,H,W), (Cout,Cin,k,k) with k in {{1,3}}, (Cout))",
                    bias.map(|b| b.shape().to_vec())
                ),
            ));
        }
        let d = ConvDesc {
            batch: xs[0],
            cin: xs[1],
            cout: ws[0],
            h: xs[2],
            w: xs[3],
            kernel: ws[2],
            circular,
        };
        let be = self.backend();
        let out = be.conv2d(
            &self.storage(),
            &w.storage(),
            bias.map(|b| b.storage()).as_ref(),
            &d,
        )?;
        let (x, wt) = (self.detach(), w.detach());
        let has_bias = bias.is_some();
        let mut parents = vec![self, w];
        if let Some(b) = bias {
            parents.push(b);
        }
        Ok(Tensor::from_op(
            be,
            out,
            vec![d.batch, d.cout, d.h, d.w],
            "conv2d",
            &parents,
            move |dy| {
                let be = dy.backend();
                let dx = be.conv2d_input_grad(&dy.storage(), &wt.storage(), &d)?;
                let dw = be.conv2d_weight_grad(&x.storage(), &dy.storage(), &d)?;
                let mut g = vec![
                    Some(Tensor::from_storage(be, dx, x.shape())?),
                    Some(Tensor::from_storage(be, dw, wt.shape())?),
                ];
                if has_bias {
                    let db = be.sum_channels(&dy.storage(), d.batch, d.cout, d.h * d.w)?;
                    g.push(Some(Tensor::from_storage(be, db, &[d.cout])?));
                }
                Ok(g)
            },
        ))
    }

    // ---- normalisation, softmax, attention -------------------------------------------------

    /// The ViT's gated residual `(x + c * y) * rsqrt(1 + c^2)` in one kernel: x and y of one
    /// shape (B, ..., C), the gate c of C elements (shared) or of B * C (one row per batch
    /// element, e.g. (B, 1, C)).
    pub fn gated_residual(x: &Self, c: &Self, y: &Self) -> Result<Self> {
        let d = adaln_desc("gated_residual", x, &[y], &[c])?;
        let be = x.backend();
        let out = be.gated_residual(&x.storage(), &y.storage(), &c.storage(), &d)?;
        let (xd, yd, cd) = (x.detach(), y.detach(), c.detach());
        Ok(Tensor::from_op(
            be,
            out,
            x.shape().to_vec(),
            "gated_residual",
            &[x, c, y],
            move |dout| {
                let be = dout.backend();
                let (dx, dy, dc) = be.gated_residual_backward(
                    &xd.storage(),
                    &yd.storage(),
                    &cd.storage(),
                    &dout.storage(),
                    &d,
                )?;
                Ok(vec![
                    Some(Tensor::from_storage(be, dx, xd.shape())?),
                    Some(Tensor::from_storage(be, dc, cd.shape())?),
                    Some(Tensor::from_storage(be, dy, yd.shape())?),
                ])
            },
        ))
    }

    /// AdaLN's modulation `(1 + a) * x + b` in one kernel: x (B, ..., C), a and b of one shape
    /// with C elements (shared) or B * C (one row per batch element, e.g. (B, 1, C)).
    pub fn modulate(x: &Self, a: &Self, b: &Self) -> Result<Self> {
        let d = adaln_desc("modulate", x, &[], &[a, b])?;
        let be = x.backend();
        let out = be.modulate(&x.storage(), &a.storage(), &b.storage(), &d)?;
        let (xd, ad, bshape) = (x.detach(), a.detach(), b.shape().to_vec());
        Ok(Tensor::from_op(
            be,
            out,
            x.shape().to_vec(),
            "modulate",
            &[x, a, b],
            move |dout| {
                let be = dout.backend();
                let (dx, da, db) =
                    be.modulate_backward(&xd.storage(), &ad.storage(), &dout.storage(), &d)?;
                Ok(vec![
                    Some(Tensor::from_storage(be, dx, xd.shape())?),
                    Some(Tensor::from_storage(be, da, ad.shape())?),
                    Some(Tensor::from_storage(be, db, &bshape)?),
                ])
            },
        ))
    }

    /// Normalises over `axis` (no affine): layer norm (biased or unbiased variance) or RMS norm.
    pub fn norm(&self, axis: usize, kind: NormKind, eps: f32) -> Result<Self> {
        if axis >= self.rank() {
            return Err(shape_err(
                "norm",
                format!("axis {axis} of shape {:?}", self.shape()),
            ));
        }
        let s = self.shape();
        let d = NormDesc {
            outer: numel(&s[..axis]),
            c: s[axis],
            inner: numel(&s[axis + 1..]),
            eps,
            kind,
        };
        let be = self.backend();
        let (y, rstd) = be.norm(&self.storage(), &d)?;
        let yk = y.clone();
        let shape = s.to_vec();
        Ok(Tensor::from_op(
            be,
            y,
            s.to_vec(),
            "norm",
            &[self],
            move |dy| {
                let dx = dy.backend().norm_backward(&yk, &rstd, &dy.storage(), &d)?;
                Ok(vec![Some(Tensor::from_storage(dy.backend(), dx, &shape)?)])
            },
        ))
    }

    /// Softmax over the last axis.
    pub fn softmax(&self) -> Result<Self> {
        let n = *self
            .shape()
            .last()
            .ok_or_else(|| shape_err("softmax", "scalar input"))?;
        let rows = self.numel() / n.max(1);
        let be = self.backend();
        let y = be.softmax(&self.storage(), rows, n)?;
        let yk = y.clone();
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            be,
            y,
            shape.clone(),
            "softmax",
            &[self],
            move |dy| {
                let dx = dy.backend().softmax_backward(&yk, &dy.storage(), rows, n)?;
                Ok(vec![Some(Tensor::from_storage(dy.backend(), dx, &shape)?)])
            },
        ))
    }

    /// Rotary embedding of x (B, heads, T, D) by angles (T, heads*D/2) (DESIGN.md section 3).
    pub fn rope(&self, angles: &Self) -> Result<Self> {
        let s = self.shape();
        if s.len() != 4 || !s[3].is_multiple_of(2) || angles.shape() != [s[2], s[1] * s[3] / 2] {
            return Err(shape_err(
                "rope",
                format!(
                    "x {s:?} (want (B, heads, T, even D)) with angles {:?}",
                    angles.shape()
                ),
            ));
        }
        let d = RopeDesc {
            batch: s[0],
            heads: s[1],
            tokens: s[2],
            dim: s[3],
        };
        let be = self.backend();
        let y = be.rope(&self.storage(), &angles.storage(), &d, false)?;
        let (yk, ang) = (y.clone(), angles.detach());
        let shape = s.to_vec();
        Ok(Tensor::from_op(
            be,
            y,
            shape.clone(),
            "rope",
            &[self, angles],
            move |dy| {
                let be = dy.backend();
                let dx = be.rope(&dy.storage(), &ang.storage(), &d, true)?;
                let da = be.rope_angle_grad(&yk, &dy.storage(), &d)?;
                Ok(vec![
                    Some(Tensor::from_storage(be, dx, &shape)?),
                    Some(Tensor::from_storage(be, da, ang.shape())?),
                ])
            },
        ))
    }

    /// softmax(q k^T * scale) v for q, k, v (B, heads, T, D). Without gradients this is the
    /// fused kernel (no (T, T) buffer); with them the scores are materialised for backward.
    pub fn attention(q: &Self, k: &Self, v: &Self, scale: f32) -> Result<Self> {
        let s = q.shape();
        if s.len() != 4 || k.shape() != s || v.shape() != s {
            return Err(shape_err(
                "attention",
                format!(
                    "q {s:?}, k {:?}, v {:?} (want equal (B, heads, T, D))",
                    k.shape(),
                    v.shape()
                ),
            ));
        }
        let needs_grad =
            grad_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
        if needs_grad {
            let scores = q.matmul_t(k)?.scale(scale)?;
            return scores.softmax()?.matmul(v);
        }
        let d = AttentionDesc {
            bh: s[0] * s[1],
            tokens: s[2],
            dim: s[3],
            scale,
        };
        let be = q.backend();
        let out = be.attention(&q.storage(), &k.storage(), &v.storage(), &d)?;
        Tensor::from_storage(be, out, s)
    }

    // ---- model-specific rearrangements -------------------------------------------------------

    /// Space-to-depth by 2: (B, C, H, W) -> (B, 4C, H/2, W/2), channel `c*4 + dy*2 + dx`.
    pub fn pixel_unshuffle(&self) -> Result<Self> {
        let s = self.shape();
        if s.len() != 4 || !s[2].is_multiple_of(2) || !s[3].is_multiple_of(2) {
            return Err(shape_err(
                "pixel_unshuffle",
                format!("{s:?} (want (B, C, even H, even W))"),
            ));
        }
        let (b, c, h, w) = (s[0], s[1], s[2] / 2, s[3] / 2);
        self.reshape(&[b, c, h, 2, w, 2])?
            .permute(&[0, 1, 3, 5, 2, 4])?
            .reshape(&[b, c * 4, h, w])
    }

    /// Depth-to-space by 2: the inverse of `pixel_unshuffle`.
    pub fn pixel_shuffle(&self) -> Result<Self> {
        let s = self.shape();
        if s.len() != 4 || !s[1].is_multiple_of(4) {
            return Err(shape_err(
                "pixel_shuffle",
                format!("{s:?} (want (B, 4C, H, W))"),
            ));
        }
        let (b, c, h, w) = (s[0], s[1] / 4, s[2], s[3]);
        self.reshape(&[b, c, 2, 2, h, w])?
            .permute(&[0, 1, 4, 2, 5, 3])?
            .reshape(&[b, c, h * 2, w * 2])
    }

    /// `B C (L l) (H h) (W w) -> B (L H W) (C l h w)`: space-time tokens.
    pub fn patchify(&self, patch: [usize; 3]) -> Result<Self> {
        let s = self.shape();
        let [pl, ph, pw] = patch;
        if s.len() != 5
            || pl == 0
            || ph == 0
            || pw == 0
            || !s[2].is_multiple_of(pl)
            || !s[3].is_multiple_of(ph)
            || !s[4].is_multiple_of(pw)
        {
            return Err(shape_err("patchify", format!("{s:?} with patch {patch:?}")));
        }
        let (b, c, l, h, w) = (s[0], s[1], s[2] / pl, s[3] / ph, s[4] / pw);
        self.reshape(&[b, c, l, pl, h, ph, w, pw])?
            .permute(&[0, 2, 4, 6, 1, 3, 5, 7])?
            .reshape(&[b, l * h * w, c * pl * ph * pw])
    }

    /// The inverse of `patchify`, given the token grid (L, H, W) and the channels C.
    pub fn unpatchify(&self, grid: [usize; 3], channels: usize, patch: [usize; 3]) -> Result<Self> {
        let s = self.shape();
        let [l, h, w] = grid;
        let [pl, ph, pw] = patch;
        if s.len() != 3 || s[1] != l * h * w || s[2] != channels * pl * ph * pw {
            return Err(shape_err(
                "unpatchify",
                format!("{s:?} for grid {grid:?}, {channels} channels, patch {patch:?}"),
            ));
        }
        let b = s[0];
        self.reshape(&[b, l, h, w, channels, pl, ph, pw])?
            .permute(&[0, 4, 1, 5, 2, 6, 3, 7])?
            .reshape(&[b, channels, l * pl, h * ph, w * pw])
    }

    /// Inverted dropout with a counter-based mask: stream `seed`, counters from `offset`.
    pub fn dropout(&self, p: f32, seed: u64, offset: u64) -> Result<Self> {
        if p <= 0.0 {
            return Ok(self.clone());
        }
        if p >= 1.0 {
            return Err(invalid(
                "dropout",
                format!("probability {p} must be below 1"),
            ));
        }
        let keep = Tensor::rand(self.backend(), self.shape(), seed, offset)?.gt(p)?;
        self.mul(&keep)?.scale(1.0 / (1.0 - p))
    }
}

/// The [`GateDesc`] of an AdaLN op over x (B, ..., C): `same` must have x's shape, and the
/// per-channel `vectors` one shape with C elements (shared by the batch) or B * C.
fn adaln_desc<B: Backend>(
    op: &'static str,
    x: &Tensor<B>,
    same: &[&Tensor<B>],
    vectors: &[&Tensor<B>],
) -> Result<GateDesc> {
    let s = x.shape();
    let channels = s.last().copied().unwrap_or(0);
    let batch = s.first().copied().unwrap_or(0);
    let v = vectors[0].shape();
    let n: usize = v.iter().product();
    let batched = n != channels;
    let ok = s.len() >= 2
        && same.iter().all(|t| t.shape() == s)
        && vectors.iter().all(|t| t.shape() == v)
        && v.last() == Some(&channels)
        && (!batched || (n == batch * channels && v[0] == batch));
    if !ok {
        let same: Vec<_> = same.iter().map(|t| t.shape().to_vec()).collect();
        let vectors: Vec<_> = vectors.iter().map(|t| t.shape().to_vec()).collect();
        return Err(shape_err(
            op,
            format!(
                "x {s:?}, operands {same:?} and vectors {vectors:?} (want operands of x's shape \
                 (B, ..., C) and per-channel vectors of one shape, (C) or (B, ..., C))"
            ),
        ));
    }
    let groups = if batched { batch } else { 1 };
    Ok(GateDesc {
        batch: groups,
        rows: x.numel() / (groups * channels).max(1),
        channels,
        batched,
    })
}
