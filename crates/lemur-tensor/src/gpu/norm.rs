//! Launchers for shaders/norm.wgsl.

use bytemuck::{Pod, Zeroable};

use super::{GpuBackend, GpuStorage, WG, groups_1d};
use crate::backend::{NormDesc, NormKind};
use crate::error::{Result, invalid};

/// Mirrors `Params` in shaders/norm.wgsl. Softmax reuses it as (rows, n, 1).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    outer: u32,
    c: u32,
    inner: u32,
    /// 0 Layer, 1 LayerUnbiased, 2 Rms.
    kind: u32,
    eps: f32,
    _pad: [u32; 3],
}

impl NormParams {
    fn new(outer: usize, c: usize, inner: usize, kind: u32, eps: f32) -> Self {
        Self {
            outer: outer as u32,
            c: c as u32,
            inner: inner as u32,
            kind,
            eps,
            _pad: [0; 3],
        }
    }
}

fn kind_code(kind: NormKind) -> u32 {
    match kind {
        NormKind::Layer => 0,
        NormKind::LayerUnbiased => 1,
        NormKind::Rms => 2,
    }
}

/// Columns (of C elements, stride `inner`) at or above this count fill a GPU with one
/// invocation each; below it a workgroup per column recovers the parallelism.
const SERIAL_MIN_COLUMNS: usize = 4096;
/// Columns shorter than this leave most of a 256-invocation workgroup idle.
const GROUP_MIN_LEN: usize = 64;

/// Whether a workgroup cooperates on each column (`*_group`) rather than one invocation
/// looping over it (`*_serial`). A contiguous row read by a workgroup is coalesced; strided
/// columns (NCHW) are coalesced across invocations instead, so they go serial once there are
/// enough of them.
fn use_group(columns: usize, c: usize, inner: usize) -> bool {
    c >= GROUP_MIN_LEN && (inner == 1 || columns < SERIAL_MIN_COLUMNS)
}

/// The entry point (`[group, serial]`) for this shape and its workgroup grid.
fn pick(
    columns: usize,
    c: usize,
    inner: usize,
    entries: [&'static str; 2],
) -> (&'static str, [u32; 3]) {
    if use_group(columns, c, inner) {
        (entries[0], groups_1d(columns, 1))
    } else {
        (entries[1], groups_1d(columns, WG))
    }
}

/// u32 element indices address the buffer; the column count, at most n, then also fits the
/// 65535 x 65535 workgroup grid.
fn check(op: &'static str, n: usize) -> Result<()> {
    if n > u32::MAX as usize / 4 {
        return Err(invalid(
            op,
            format!("{n} elements exceed a single GPU binding"),
        ));
    }
    Ok(())
}

impl GpuBackend {
    pub(crate) fn norm_gpu(
        &self,
        x: &GpuStorage,
        d: &NormDesc,
    ) -> Result<(GpuStorage, GpuStorage)> {
        let columns = d.outer * d.inner;
        let n = columns * d.c;
        check("norm", n)?;
        let y = self.alloc(n, "norm y");
        let rstd = self.alloc(columns, "norm rstd");
        let params = NormParams::new(d.outer, d.c, d.inner, kind_code(d.kind), d.eps);
        let (entry, groups) = pick(columns, d.c, d.inner, ["norm_group", "norm_serial"]);
        if n > 0 {
            self.dispatch("norm", entry, &params, &[x, &y, &rstd], groups);
        }
        Ok((y, rstd))
    }

    pub(crate) fn norm_backward_gpu(
        &self,
        y: &GpuStorage,
        rstd: &GpuStorage,
        dy: &GpuStorage,
        d: &NormDesc,
    ) -> Result<GpuStorage> {
        let columns = d.outer * d.inner;
        let n = columns * d.c;
        check("norm_backward", n)?;
        let dx = self.alloc(n, "norm dx");
        let params = NormParams::new(d.outer, d.c, d.inner, kind_code(d.kind), d.eps);
        let entries = ["norm_backward_group", "norm_backward_serial"];
        let (entry, groups) = pick(columns, d.c, d.inner, entries);
        if n > 0 {
            self.dispatch("norm", entry, &params, &[y, rstd, dy, &dx], groups);
        }
        Ok(dx)
    }

    pub(crate) fn softmax_gpu(&self, x: &GpuStorage, rows: usize, n: usize) -> Result<GpuStorage> {
        check("softmax", rows * n)?;
        let y = self.alloc(rows * n, "softmax");
        let (entry, groups) = pick(rows, n, 1, ["softmax_group", "softmax_serial"]);
        if rows * n > 0 {
            let params = NormParams::new(rows, n, 1, 0, 0.0);
            self.dispatch("norm", entry, &params, &[x, &y], groups);
        }
        Ok(y)
    }

    pub(crate) fn softmax_backward_gpu(
        &self,
        y: &GpuStorage,
        dy: &GpuStorage,
        rows: usize,
        n: usize,
    ) -> Result<GpuStorage> {
        check("softmax_backward", rows * n)?;
        let dx = self.alloc(rows * n, "softmax dx");
        let entries = ["softmax_backward_group", "softmax_backward_serial"];
        let (entry, groups) = pick(rows, n, 1, entries);
        if rows * n > 0 {
            let params = NormParams::new(rows, n, 1, 0, 0.0);
            self.dispatch("norm", entry, &params, &[y, dy, &dx], groups);
        }
        Ok(dx)
    }
}
