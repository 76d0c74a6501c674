//! Launchers for shaders/norm.wgsl.
// PLACEHOLDER: being written.
use super::{GpuBackend, GpuStorage};
use crate::backend::NormDesc;
use crate::error::Result;

impl GpuBackend {
    pub(crate) fn norm_gpu(
        &self,
        _x: &GpuStorage,
        _d: &NormDesc,
    ) -> Result<(GpuStorage, GpuStorage)> {
        todo!()
    }

    pub(crate) fn norm_backward_gpu(
        &self,
        _y: &GpuStorage,
        _rstd: &GpuStorage,
        _dy: &GpuStorage,
        _d: &NormDesc,
    ) -> Result<GpuStorage> {
        todo!()
    }

    pub(crate) fn softmax_gpu(
        &self,
        _x: &GpuStorage,
        _rows: usize,
        _n: usize,
    ) -> Result<GpuStorage> {
        todo!()
    }

    pub(crate) fn softmax_backward_gpu(
        &self,
        _y: &GpuStorage,
        _dy: &GpuStorage,
        _rows: usize,
        _n: usize,
    ) -> Result<GpuStorage> {
        todo!()
    }
}
