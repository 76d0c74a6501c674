//! Size-class buffer pool. A class is `2^k * {4, 5, 6, 7} / 4` bytes (at most 25% slack);
//! a dropped tensor's buffer goes back to its class's free list.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};

/// A pooled storage buffer holding `len` f32 elements (the buffer may be larger).
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
    class: u64,
    pool: Weak<RefCell<Pool>>,
}

impl GpuBuffer {
    /// The wgpu buffer, to bind in an application's own pipelines. It holds [`len`](Self::len)
    /// f32 values, row-major in the tensor's shape, from byte 0 (the buffer itself may be
    /// larger: bind `0..len * 4`). Usages: `STORAGE | COPY_SRC | COPY_DST`. Work recorded by
    /// the backend is submitted only at a flush, so flush (or await `work_done`) before
    /// submitting commands that read it; and keep the storage alive while they may run, since
    /// a dropped storage's buffer is reused by the next op.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBuffer(len={}, class={} B)", self.len, self.class)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut pool = pool.borrow_mut();
            pool.live -= self.class;
            pool.pooled += self.class;
            pool.free
                .entry(self.class)
                .or_default()
                .push(self.buffer.clone());
        }
    }
}

#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    live: u64,
    peak: u64,
    pooled: u64,
}

/// Device memory held by the pool, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Held by live tensors.
    pub live: u64,
    /// Freed by tensors and kept for reuse.
    pub pooled: u64,
    /// The most ever held by live tensors at once.
    pub peak: u64,
}

pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let k = 63 - (bytes - 1).leading_zeros() as u64; // 2^k < bytes <= 2^(k+1)
    let base = 1u64 << k;
    let quarter = base / 4;
    (1..=4)
        .map(|q| base + q * quarter)
        .find(|&c| c >= bytes)
        .unwrap_or(base * 2)
}

impl Pool {
    pub(crate) fn acquire(
        this: &Rc<RefCell<Pool>>,
        device: &wgpu::Device,
        len: usize,
        label: &'static str,
    ) -> Rc<GpuBuffer> {
        let class = size_class((len * 4) as u64);
        let mut pool = this.borrow_mut();
        let buffer = match pool.free.get_mut(&class).and_then(Vec::pop) {
            Some(b) => {
                pool.pooled -= class;
                b
            }
            None => device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: class,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        pool.live += class;
        pool.peak = pool.peak.max(pool.live);
        Rc::new(GpuBuffer {
            buffer,
            len,
            class,
            pool: Rc::downgrade(this),
        })
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        MemoryStats {
            live: self.live,
            pooled: self.pooled,
            peak: self.peak,
        }
    }

    pub(crate) fn trim(&mut self) {
        self.free.clear();
        self.pooled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_bound_slack() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "class {c} < {bytes}");
            assert!(
                c as f64 <= (bytes.max(256) as f64) * 1.25 + 1.0,
                "class {c} too large for {bytes}"
            );
        }
        assert_eq!(size_class(256), 256);
    }
}
