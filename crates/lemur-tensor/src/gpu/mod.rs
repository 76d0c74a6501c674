//! The GPU backend: WGSL compute shaders driven through wgpu.
//!
//! Work is recorded, not executed: every op appends a dispatch to one long-lived compute pass
//! of a pending command encoder, and nothing is submitted until a result is read back (or
//! `sync` is called). Buffers come from a size-class pool and return to it when the last
//! tensor viewing them is dropped; reuse inside one encoder is safe because the queue executes
//! commands in recording order. Shapes travel in small uniform structs packed into one
//! uniform arena per submission.
//!
//! The backend either opens its own device ([`GpuBackend::new`]) or shares one that an
//! application created ([`GpuBackend::from_device`]), e.g. eframe's, so that decoded fields
//! can be drawn ([`GpuBackend::colormap`]) without leaving the GPU.

mod attention;
mod colormap;
mod device;
mod kernels;
mod matmul;
mod norm;
mod ops;
mod pool;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

pub use colormap::{COLORMAP_NONFINITE, ColormapParams, colormap_cpu};
#[cfg(not(target_arch = "wasm32"))]
pub use device::quiet_mesa_without_session;
pub use device::{AdapterChoice, GpuInfo, required_features, required_limits};
pub use kernels::{SHADERS, shader_source};
pub use matmul::GemmKernel;
pub use pool::MemoryStats;

use crate::backend::OpCounters;
use crate::error::{Error, Result};
use pool::{GpuBuffer, Pool};

/// A tensor's device memory: a pooled buffer shared by every view of it.
pub type GpuStorage = Rc<GpuBuffer>;

/// The wgpu buffer behind a storage, for binding a tensor in an application's own pipelines.
/// See [`GpuBuffer::buffer`] for its layout and the ordering rules.
pub fn buffer(storage: &GpuStorage) -> &wgpu::Buffer {
    storage.buffer()
}

/// How read/sync/[`GpuBackend::work_done`] wait for the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Polling {
    /// The backend owns the waiting: on native, reads and syncs block in
    /// `device.poll(wait_indefinitely)` until the GPU is done, so their futures are ready at
    /// the first poll (`pollster::block_on` suffices). On the web polling does nothing and the
    /// futures complete when the browser's event loop runs, as in `External`.
    #[default]
    Blocking,
    /// Someone else drives the device (a UI loop calling `device.poll(PollType::Poll)` every
    /// frame, or the browser): the backend never blocks, and its futures complete once the
    /// owner has polled after the GPU finished. Polled futures that are never driven this way
    /// never complete.
    External,
}

/// Uniform slots are this far apart: WebGPU's default `minUniformBufferOffsetAlignment`.
const UNIFORM_ALIGN: usize = 256;
/// Dispatches per submission before the uniform arena forces a flush.
const UNIFORM_SLOTS: usize = 4096;
/// The most bind groups kept for reuse; the cache starts over when it is full (a few
/// inference calls' worth: the issue-10 denoiser's forward records about 250 dispatches).
const BIND_GROUP_CACHE: usize = 8192;

/// What a dispatch's bind group is made of: its pipeline, the uniform arena's slot and each
/// buffer binding (buffer, bytes). The i-th dispatch of a submission uses slot i, and the pool
/// returns buffers in the order they were freed, so repeated inference calls find about half
/// of their bind groups again. Training steps rarely do: the optimizer's new parameter and
/// moment buffers shift what the pool hands out from one step to the next.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BindKey {
    kernel: &'static str,
    entry: &'static str,
    uniform_offset: usize,
    buffers: Vec<(wgpu::Buffer, u64)>,
}
/// Invocations per workgroup of the 1-D kernels (WebGPU's default maximum).
pub(crate) const WG: u32 = 256;

#[derive(Clone)]
pub struct GpuBackend {
    pub(crate) inner: Rc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: GpuInfo,
    polling: Polling,
    pool: Rc<RefCell<Pool>>,
    pipelines: RefCell<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
    modules: RefCell<HashMap<&'static str, wgpu::ShaderModule>>,
    /// Whether shader modules keep wgpu's runtime checks (see [`GpuBackend::set_shader_checks`]).
    shader_checks: Cell<bool>,
    /// Colour tables uploaded by `colormap`, most recently used last (a handful per app).
    luts: RefCell<Vec<([u32; 256], wgpu::Buffer)>>,
    rec: RefCell<Recorder>,
    uniforms: wgpu::Buffer,
    /// Errors that escaped every error scope (reported at the next sync instead of panicking).
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    /// What [`GpuBackend::counters`] reports.
    counters: Cell<OpCounters>,
    /// Bind groups of earlier dispatches (see [`BindKey`]).
    bind_groups: RefCell<HashMap<BindKey, wgpu::BindGroup>>,
    /// The submission that ended the latest step ([`GpuBackend::end_step`]).
    last_step: RefCell<Option<wgpu::SubmissionIndex>>,
}

#[derive(Default)]
struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    uniform_bytes: Vec<u8>,
    scopes: Vec<(&'static str, wgpu::ErrorScopeGuard)>,
    dispatches: usize,
    pending: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>>,
}

impl Drop for Recorder {
    /// Work recorded but never submitted is discarded; its error scopes must still be popped
    /// innermost first (wgpu panics otherwise), which a plain field drop would not do.
    fn drop(&mut self) {
        self.pass = None;
        while let Some((_, scope)) = self.scopes.pop() {
            drop(scope.pop());
        }
    }
}

impl fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBackend({})", self.inner.info)
    }
}

impl GpuBackend {
    /// Opens the adapter chosen by `LEMUR_ADAPTER` / `LEMUR_GPU_BACKEND` (see [`AdapterChoice`]).
    pub async fn new() -> Result<Self> {
        Self::with_choice(&AdapterChoice::from_env()?).await
    }

    /// Opens the adapter `choice` names, with [`required_limits`] and [`required_features`],
    /// in [`Polling::Blocking`] mode.
    pub async fn with_choice(choice: &AdapterChoice) -> Result<Self> {
        let (device, queue, info) = device::open(choice).await?;
        Self::from_device(device, queue, &info, Polling::Blocking)
    }

    /// Shares a device created elsewhere (e.g. by eframe; request it with [`required_limits`]
    /// and [`required_features`]). Fails if the device's limits are below what the kernels
    /// need (a WebGL2 device, say).
    ///
    /// The backend installs the device's uncaptured-error handler and device-lost callback:
    /// errors outside any error scope, the owner's included, are reported as
    /// [`Error::Gpu`] (kind `uncaptured`) by the next read, sync or `work_done` instead of
    /// panicking. The backend's recorded work goes to `queue` only at a flush (`flush`,
    /// `read`, `sync`, `work_done`), so work the owner submits in between runs before it.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: &wgpu::AdapterInfo,
        polling: Polling,
    ) -> Result<Self> {
        device::check_limits(&device.limits())?;
        let info = GpuInfo::from(info);
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *lost_sink.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("{reason:?}: {msg}"));
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lemur uniform arena"),
            size: (UNIFORM_ALIGN * UNIFORM_SLOTS) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            inner: Rc::new(Inner {
                device,
                queue,
                info,
                polling,
                pool: Rc::new(RefCell::new(Pool::default())),
                pipelines: RefCell::new(HashMap::new()),
                modules: RefCell::new(HashMap::new()),
                shader_checks: Cell::new(shader_checks_from_env()),
                luts: RefCell::new(Vec::new()),
                rec: RefCell::new(Recorder::default()),
                uniforms,
                uncaptured,
                lost,
                counters: Cell::new(OpCounters::default()),
                bind_groups: RefCell::new(HashMap::new()),
                last_step: RefCell::new(None),
            }),
        })
    }

    /// Blocking constructor for native code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    pub fn info(&self) -> &GpuInfo {
        &self.inner.info
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    pub fn polling(&self) -> Polling {
        self.inner.polling
    }

    /// Live (held by tensors), pooled (free for reuse) and peak live bytes.
    pub fn memory(&self) -> MemoryStats {
        self.inner.pool.borrow().stats()
    }

    /// Dispatches, submissions, synchronisations, uploads and bind groups so far (see
    /// [`OpCounters`]); shared by every clone of this backend.
    pub fn counters(&self) -> OpCounters {
        self.inner.counters.get()
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut OpCounters)) {
        let mut c = self.inner.counters.get();
        f(&mut c);
        self.inner.counters.set(c);
    }

    /// Frees every pooled buffer not held by a tensor.
    pub fn trim(&self) {
        // Cached bind groups hold their buffers: drop them first, or trimmed buffers live on.
        self.inner.bind_groups.borrow_mut().clear();
        self.inner.pool.borrow_mut().trim();
    }

    /// A pooled buffer of `len` f32 elements (contents undefined).
    pub(crate) fn alloc(&self, len: usize, label: &'static str) -> GpuStorage {
        Pool::acquire(&self.inner.pool, &self.inner.device, len, label)
    }

    /// Whether kernels are built with wgpu's runtime shader checks (see
    /// [`set_shader_checks`](Self::set_shader_checks)).
    pub fn shader_checks(&self) -> bool {
        self.inner.shader_checks.get()
    }

    /// Builds the kernels from now on with wgpu's runtime checks (`true`), or natively without
    /// its injected bounds checks and loop bounding (`false`, the default natively unless
    /// `LEMUR_SHADER_CHECKS=1`). Integer division checks stay in both.
    ///
    /// Unchecked is sound for these kernels because every one of them (tested against a CPU
    /// reference) indexes its workgroup and local arrays within their sizes by construction,
    /// every loop is bounded by its parameters, and storage buffers keep the driver's own
    /// robustness (Vulkan's robustBufferAccess, which wgpu enables). The injected checks cost
    /// a clamp per array access and a counter per loop iteration, which can keep a driver
    /// from unrolling the register-tiled loops of the GEMM kernels. On the web both build the
    /// same (the browser checks).
    pub fn set_shader_checks(&self, on: bool) {
        if self.inner.shader_checks.replace(on) != on {
            // Bind groups belong to their pipeline's layout: they go with the pipelines.
            self.inner.bind_groups.borrow_mut().clear();
            self.inner.pipelines.borrow_mut().clear();
            self.inner.modules.borrow_mut().clear();
        }
    }

    // The one unsafe call of the workspace (its lint denies unsafe code elsewhere).
    #[allow(unsafe_code)]
    fn create_module(&self, kernel: &'static str) -> wgpu::ShaderModule {
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(shader_source(kernel).into()),
        };
        if self.shader_checks() {
            return self.inner.device.create_shader_module(desc);
        }
        let checks = wgpu::ShaderRuntimeChecks {
            int_div_checks: true,
            ..wgpu::ShaderRuntimeChecks::unchecked()
        };
        // SAFETY: see `set_shader_checks`: the kernels index their arrays in bounds, their
        // loops terminate, and buffer accesses keep the driver's robustness.
        unsafe { self.inner.device.create_shader_module_trusted(desc, checks) }
    }

    fn pipeline(&self, kernel: &'static str, entry: &'static str) -> wgpu::ComputePipeline {
        if let Some(p) = self.inner.pipelines.borrow().get(&(kernel, entry)) {
            return p.clone();
        }
        let module = {
            let mut modules = self.inner.modules.borrow_mut();
            modules
                .entry(kernel)
                .or_insert_with(|| self.create_module(kernel))
                .clone()
        };
        let label = format!("{kernel}::{entry}");
        let pipeline =
            self.inner
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
        self.inner
            .pipelines
            .borrow_mut()
            .insert((kernel, entry), pipeline.clone());
        pipeline
    }

    fn begin(&self, rec: &mut Recorder) {
        if rec.encoder.is_none() {
            let dev = &self.inner.device;
            rec.scopes.push((
                "out-of-memory",
                dev.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            ));
            rec.scopes.push((
                "validation",
                dev.push_error_scope(wgpu::ErrorFilter::Validation),
            ));
            rec.encoder = Some(dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lemur ops"),
            }));
        }
    }

    /// Records one dispatch of `kernel::entry`. Binding 0 is the uniform `params`; bindings
    /// 1.. are `buffers` in order. Every entry point uses all the bindings it is given.
    pub(crate) fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &'static str,
        entry: &'static str,
        params: &P,
        buffers: &[&GpuStorage],
        groups: [u32; 3],
    ) {
        let sizes: Vec<u64> = buffers.iter().map(|b| (b.len.max(1) * 4) as u64).collect();
        let resources: Vec<wgpu::BindingResource<'_>> = buffers
            .iter()
            .zip(&sizes)
            .map(|(b, &size)| {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &b.buffer,
                    offset: 0,
                    size: wgpu::BufferSize::new(size),
                })
            })
            .collect();
        let key = |uniform_offset| BindKey {
            kernel,
            entry,
            uniform_offset,
            buffers: buffers
                .iter()
                .zip(&sizes)
                .map(|(b, &size)| (b.buffer.clone(), size))
                .collect(),
        };
        self.record(kernel, entry, params, &resources, groups, Some(&key));
    }

    /// [`dispatch`](Self::dispatch) with arbitrary resources (textures, foreign buffers) at
    /// bindings 1.. . Recorded in the same compute pass as every other op, so wgpu's per-dispatch
    /// barriers order it after earlier writes to the same buffers.
    pub(crate) fn dispatch_resources<P: bytemuck::Pod>(
        &self,
        kernel: &'static str,
        entry: &'static str,
        params: &P,
        resources: &[wgpu::BindingResource<'_>],
        groups: [u32; 3],
    ) {
        self.record(kernel, entry, params, resources, groups, None);
    }

    /// Records a dispatch; its bind group comes from the cache when `key` (given the uniform
    /// slot) names one made before.
    fn record<P: bytemuck::Pod>(
        &self,
        kernel: &'static str,
        entry: &'static str,
        params: &P,
        resources: &[wgpu::BindingResource<'_>],
        groups: [u32; 3],
        key: Option<&dyn Fn(usize) -> BindKey>,
    ) {
        if groups.contains(&0) {
            return;
        }
        let pipeline = self.pipeline(kernel, entry);
        if self.inner.rec.borrow().dispatches >= UNIFORM_SLOTS {
            self.flush();
        }
        let mut rec = self.inner.rec.borrow_mut();
        self.begin(&mut rec);
        let offset = rec.dispatches * UNIFORM_ALIGN;
        let bytes = bytemuck::bytes_of(params);
        rec.uniform_bytes.resize(offset, 0);
        rec.uniform_bytes.extend_from_slice(bytes);
        rec.dispatches += 1;
        self.count(|c| c.dispatches += 1);
        let key = key.map(|k| k(offset));
        let cached = key
            .as_ref()
            .and_then(|k| self.inner.bind_groups.borrow().get(k).cloned());
        let bind_group = match cached {
            Some(group) => group,
            None => {
                self.count(|c| c.bind_groups += 1);
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &self.inner.uniforms,
                        offset: offset as u64,
                        size: wgpu::BufferSize::new(bytes.len() as u64),
                    }),
                }];
                for (i, r) in resources.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: r.clone(),
                    });
                }
                let group = self
                    .inner
                    .device
                    .create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(kernel),
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    });
                if let Some(k) = key {
                    let mut cache = self.inner.bind_groups.borrow_mut();
                    if cache.len() >= BIND_GROUP_CACHE {
                        cache.clear();
                    }
                    cache.insert(k, group.clone());
                }
                group
            }
        };
        if rec.pass.is_none() {
            let encoder = rec.encoder.as_mut().expect("encoder begun");
            let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("lemur compute"),
                timestamp_writes: None,
            });
            rec.pass = Some(pass.forget_lifetime());
        }
        let pass = rec.pass.as_mut().expect("pass begun");
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Records a buffer-to-buffer copy (ends the open compute pass).
    fn record_copy(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    ) {
        let mut rec = self.inner.rec.borrow_mut();
        self.begin(&mut rec);
        rec.pass = None;
        let encoder = rec.encoder.as_mut().expect("encoder begun");
        encoder.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
    }

    /// Submits everything recorded so far. Errors surface at the next `sync`/`read`.
    pub fn flush(&self) {
        self.submit();
    }

    /// Ends a step (see [`crate::Backend::end_step`]): submits what was recorded, then, in
    /// [`Polling::Blocking`] mode on native, waits for the submission that ended the step
    /// before. Elsewhere the owner's polling paces the work and this only submits.
    pub fn end_step(&self) {
        let current = self.submit();
        let previous = std::mem::replace(&mut *self.inner.last_step.borrow_mut(), current);
        #[cfg(not(target_arch = "wasm32"))]
        if self.inner.polling == Polling::Blocking
            && let Some(index) = previous
        {
            // A failed wait (a lost device) is reported by the next read or sync.
            let _ = self.inner.device.poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            });
            self.count(|c| c.paces += 1);
        }
        #[cfg(target_arch = "wasm32")]
        let _ = previous;
    }

    /// Submits everything recorded so far, returning the submission's index (`None` when
    /// nothing was recorded).
    fn submit(&self) -> Option<wgpu::SubmissionIndex> {
        let mut rec = self.inner.rec.borrow_mut();
        rec.pass = None;
        let encoder = rec.encoder.take()?;
        if !rec.uniform_bytes.is_empty() {
            self.inner
                .queue
                .write_buffer(&self.inner.uniforms, 0, &rec.uniform_bytes);
        }
        let index = self.inner.queue.submit([encoder.finish()]);
        self.count(|c| c.submissions += 1);
        rec.uniform_bytes.clear();
        rec.dispatches = 0;
        // Pop in reverse push order; the futures resolve once the errors are known.
        while let Some((_, scope)) = rec.scopes.pop() {
            rec.pending.push(Box::pin(scope.pop()));
        }
        Some(index)
    }

    async fn check_errors(&self, context: &str) -> Result<()> {
        let pending = std::mem::take(&mut self.inner.rec.borrow_mut().pending);
        let mut first = None;
        for fut in pending {
            if let Some(e) = fut.await {
                let kind = match e {
                    wgpu::Error::OutOfMemory { .. } => "out-of-memory",
                    wgpu::Error::Validation { .. } => "validation",
                    _ => "internal",
                };
                first.get_or_insert(Error::Gpu {
                    kind,
                    context: context.to_string(),
                    message: e.to_string(),
                });
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        if let Some(msg) = self
            .inner
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(Error::DeviceLost(msg));
        }
        let mut unc = self
            .inner
            .uncaptured
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !unc.is_empty() {
            let message = unc.join("; ");
            unc.clear();
            return Err(Error::Gpu {
                kind: "uncaptured",
                context: context.to_string(),
                message,
            });
        }
        Ok(())
    }

    fn poll_wait(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        if self.inner.polling == Polling::Blocking {
            let _ = self.inner.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }

    /// Submits everything recorded so far and resolves once the GPU has finished it (and all
    /// earlier submissions), then reports any error they raised. The submission happens now,
    /// not at the first poll, and the future holds its own handle to the backend, so it can be
    /// stored and polled from frame to frame (back-pressure: at most one step in flight). In
    /// [`Polling::Blocking`] mode on native it blocks here until the GPU is done.
    pub fn work_done(&self) -> impl std::future::Future<Output = Result<()>> + 'static {
        self.submit_and_wait("work_done")
    }

    /// `work_done`, with errors naming `context`.
    fn submit_and_wait(
        &self,
        context: &'static str,
    ) -> impl std::future::Future<Output = Result<()>> + 'static {
        self.flush();
        self.count(|c| c.syncs += 1);
        let (tx, rx) = futures_channel::oneshot::channel();
        self.inner.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.poll_wait();
        let this = self.clone();
        async move {
            let done = rx
                .await
                .map_err(|_| Error::DeviceLost("the work-done callback was dropped unrun".into()));
            this.check_errors(context).await?;
            done
        }
    }

    pub(crate) fn upload_impl(&self, data: &[f32]) -> GpuStorage {
        use wgpu::util::DeviceExt;
        let out = self.alloc(data.len(), "tensor");
        if data.is_empty() {
            return out;
        }
        // A staging copy recorded in the encoder keeps the upload ordered after earlier
        // recorded work that may still use this pooled buffer.
        let staging = self
            .inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("lemur upload staging"),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::COPY_SRC,
            });
        self.record_copy(&staging, 0, &out.buffer, 0, (data.len() * 4) as u64);
        self.count(|c| c.uploads += 1);
        out
    }

    pub(crate) async fn read_impl(&self, s: &GpuStorage) -> Result<Vec<f32>> {
        let bytes = (s.len * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lemur readback staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.record_copy(&s.buffer, 0, &staging, 0, bytes);
        self.flush();
        self.count(|c| c.syncs += 1);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.poll_wait();
        let mapped = rx
            .await
            .map_err(|_| Error::Readback("map callback dropped".into()));
        self.check_errors("readback").await?;
        mapped?.map_err(|e| Error::Readback(e.to_string()))?;
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Readback(e.to_string()))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    pub(crate) async fn sync_impl(&self) -> Result<()> {
        // Waiting for the work itself (not just submitting it) keeps `sync` meaning the same in
        // both polling modes and on the web, where the blocking poll does not exist.
        self.submit_and_wait("sync").await
    }
}

/// Splits `n` workgroups over x and y so neither exceeds WebGPU's 65535 per dimension; kernels
/// rebuild the linear index as `wg.y * num_workgroups.x + wg.x`.
pub(crate) fn groups_1d(n_items: usize, per_group: u32) -> [u32; 3] {
    let groups = n_items.div_ceil(per_group as usize).max(1);
    let x = groups.min(65535);
    let y = groups.div_ceil(x);
    [x as u32, y as u32, 1]
}

/// `LEMUR_SHADER_CHECKS=1` (or `on`, `true`) keeps wgpu's runtime shader checks natively.
fn shader_checks_from_env() -> bool {
    std::env::var("LEMUR_SHADER_CHECKS")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "true"))
}
