//! The visualiser: egui panels around a live rollout. The app loads the pretrained runs,
//! starts a rollout at once, and every frame advances the solver and the emulator by a
//! bounded slice (see [`crate::engine`]), draws the five field panels through the colour-map
//! kernel (GPU) or on the host (CPU fallback), and plots the scores read back so far.

use egui::{Key, RichText};
use egui_plot::{AxisHints, Corner, Legend, Line, Plot, PlotPoints};
use lemur_tensor::gpu::ColormapParams;
use lemur_tensor::{CpuBackend, GpuBackend, Tensor};
use web_time::Instant;

use crate::bundle::{Bundle, PretrainedSet, RunFiles};
use crate::display::{
    DeviceTextures, HostTextures, MapChoice, PANELS, PanelView, colour_bar, panel_map, score_label,
    score_steps,
};
use crate::engine::{
    Compute, Job, ModelChoice, Models, Pending, SAMPLERS, Scores, Settings, Tick, method,
    method_name, poll_now,
};
use crate::error::{AppError, Result};
use crate::export::{Export, ExportKind};
use crate::fields::{FieldLayout, Sign};
use crate::platform;
use crate::truth::{Initial, NAMED, System, Truth};

/// Which backend computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendPref {
    /// The GPU when eframe's adapter is a hardware WebGPU/Vulkan/Metal/DX12 one, else the CPU
    /// (software adapters such as lavapipe are slower than the CPU backend).
    Auto,
    Gpu,
    Cpu,
}

/// Start-up options: command-line flags natively, URL query parameters on the web.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub backend: BackendPref,
    pub ensemble: Option<usize>,
    pub seed: Option<u64>,
    pub steps: Option<usize>,
    pub horizon: Option<usize>,
    /// The window overlap (`--overlap`, `overlap=`); unset: the run's recommendation.
    pub overlap: Option<usize>,
    pub sampler: Option<String>,
    pub surrogate: bool,
    pub setup: Option<usize>,
    /// The embedded runs to load (`--set`, `set=`).
    pub set: PretrainedSet,
    /// The field shown first, by name (`--field`, `field=`), e.g. `vorticity`.
    pub field: Option<String>,
    /// Runs to load instead of the embedded ones (native: a directory).
    pub weights: Option<String>,
    /// Where exports are written natively (default `lemur-export/` in the working directory).
    pub export_dir: Option<String>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        Self {
            backend: BackendPref::Auto,
            ensemble: None,
            seed: None,
            steps: None,
            horizon: None,
            overlap: None,
            sampler: None,
            surrogate: false,
            setup: None,
            set: PretrainedSet::default(),
            field: None,
            weights: None,
            export_dir: None,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug)]
pub enum Command {
    Help,
    /// Open the window.
    Window(LaunchOptions),
    /// No window: print the first emulated frame's fingerprint.
    FirstFrame(LaunchOptions),
}

impl LaunchOptions {
    /// Parses the native command line (without the program name); see `main.rs`'s help.
    pub fn from_args(args: &[String]) -> Result<Command> {
        let mut opts = LaunchOptions::default();
        let mut first_frame = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let flag: &'static str = match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--surrogate" => {
                    opts.surrogate = true;
                    continue;
                }
                "--first-frame" => {
                    first_frame = true;
                    continue;
                }
                "--backend" => "--backend",
                "--ensemble" => "--ensemble",
                "--steps" => "--steps",
                "--horizon" => "--horizon",
                "--overlap" => "--overlap",
                "--seed" => "--seed",
                "--setup" => "--setup",
                "--sampler" => "--sampler",
                "--set" => "--set",
                "--field" => "--field",
                "--weights" => "--weights",
                other => {
                    return Err(AppError::Setting {
                        name: "option",
                        value: other.into(),
                        detail: "unknown (see --help)".into(),
                    });
                }
            };
            let value = it.next().ok_or_else(|| AppError::Setting {
                name: flag,
                value: String::new(),
                detail: "needs a value (see --help)".into(),
            })?;
            let bad = |detail: &str| AppError::Setting {
                name: flag,
                value: value.clone(),
                detail: detail.into(),
            };
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| bad("not a whole number"))
            };
            match flag {
                "--backend" => {
                    opts.backend = match value.as_str() {
                        "gpu" => BackendPref::Gpu,
                        "cpu" => BackendPref::Cpu,
                        "auto" => BackendPref::Auto,
                        _ => return Err(bad("expected gpu, cpu or auto")),
                    }
                }
                "--ensemble" => opts.ensemble = Some(number()?),
                "--steps" => opts.steps = Some(number()?),
                "--horizon" => opts.horizon = Some(number()?),
                "--overlap" => opts.overlap = Some(number()?),
                "--seed" => opts.seed = Some(number()? as u64),
                "--setup" => opts.setup = Some(number()?),
                "--sampler" => opts.sampler = Some(value.clone()),
                "--set" => opts.set = PretrainedSet::parse(value)?,
                "--field" => opts.field = Some(value.clone()),
                _ => opts.weights = Some(value.clone()),
            }
        }
        Ok(if first_frame {
            Command::FirstFrame(opts)
        } else {
            Command::Window(opts)
        })
    }

    /// The first rollout's settings: the paper's sampler, and an ensemble sized for the
    /// backend (8 on a GPU, 2 on the CPU fallback), overridden by the options.
    pub fn settings(&self, on_gpu: bool, horizon_default: usize) -> Result<Settings> {
        let mut s = Settings::new(if on_gpu { 8 } else { 2 }, horizon_default);
        if !on_gpu {
            s.steps = 8;
        }
        if let Some(n) = self.ensemble {
            s.ensemble = n;
        }
        if let Some(n) = self.steps {
            s.steps = n;
        }
        if let Some(n) = self.horizon {
            s.horizon = n;
        }
        s.overlap = self.overlap;
        if let Some(seed) = self.seed {
            s.seed = seed;
            s.initial = Initial::Random(seed);
        }
        if let Some(i) = self.setup {
            s.initial = Initial::Named(i);
        }
        if let Some(name) = &self.sampler {
            s.method = method(name)?;
        }
        if self.surrogate {
            s.model = ModelChoice::Surrogate;
        }
        Ok(s)
    }
}

/// The rollout horizon the app starts with: 24 latent frames, the length of the built-in
/// Euler trajectories (101 solver frames at stride 4).
pub const HORIZON: usize = 24;

/// Models, solver and rollout on one backend.
pub struct Sim<B: Compute> {
    pub models: Models<B>,
    pub truth: Truth,
    pub job: Job<B>,
}

impl<B: Compute> Sim<B> {
    pub(crate) fn new(models: Models<B>, settings: Settings) -> Result<Self> {
        let truth = Truth::new(
            settings.initial,
            models.system,
            models.grid,
            models.stride,
            settings.context + settings.horizon,
            &models.stats.channels,
        )?;
        let job = Job::new(&models, settings)?;
        Ok(Self { models, truth, job })
    }

    /// Starts a new rollout, keeping the solver's frames when the initial condition and
    /// length are unchanged.
    pub(crate) fn restart(&mut self, settings: Settings) -> Result<()> {
        let old = self.job.settings;
        let job = Job::new(&self.models, settings)?;
        if old.initial != settings.initial
            || old.context + old.horizon < settings.context + settings.horizon
        {
            self.truth = Truth::new(
                settings.initial,
                self.models.system,
                self.models.grid,
                self.models.stride,
                settings.context + settings.horizon,
                &self.models.stats.channels,
            )?;
        }
        self.job = job;
        Ok(())
    }

    pub(crate) fn advance(&mut self, budget_s: f64) -> Result<Tick> {
        self.truth.advance(budget_s * 0.3)?;
        self.job.run(&self.models, &self.truth, budget_s)
    }
}

/// The simulation on whichever backend was chosen.
pub enum Session {
    Cpu(Sim<CpuBackend>),
    Gpu(Sim<GpuBackend>),
}

macro_rules! with_sim {
    ($session:expr, $s:ident => $body:expr) => {
        match $session {
            Session::Cpu($s) => $body,
            Session::Gpu($s) => $body,
        }
    };
}

/// A frame-rate meter over the last second of frames.
#[derive(Default)]
struct Fps {
    times: std::collections::VecDeque<Instant>,
    /// Frame rates seen while a rollout ran: (sum, count).
    running: (f64, u64),
}

impl Fps {
    fn tick(&mut self, rolling_out: bool) -> f64 {
        let now = Instant::now();
        self.times.push_back(now);
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t).as_secs_f64() > 1.0)
        {
            self.times.pop_front();
        }
        let fps = self.times.len() as f64;
        if rolling_out && self.times.len() > 2 {
            self.running = (self.running.0 + fps, self.running.1 + 1);
        }
        fps
    }

    fn running_mean(&self) -> Option<f64> {
        (self.running.1 > 0).then(|| self.running.0 / self.running.1 as f64)
    }
}

/// What the viewer looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewState {
    pub field: usize,
    pub map: MapChoice,
    pub fixed: Option<(f32, f32)>,
    pub member: usize,
    /// Lead time shown (0 = the context frame).
    pub time: usize,
    pub playing: bool,
    pub looping: bool,
    /// Lead times per second of playback.
    pub speed: f32,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            field: 0,
            map: MapChoice::Auto,
            fixed: None,
            member: 0,
            time: 0,
            playing: true,
            looping: true,
            speed: 6.0,
        }
    }
}

enum Loading {
    Waiting(Pending<Result<[RunFiles; 3]>>),
    Ready,
    Failed(String),
}

/// (rollout, field, truth frames) and the truth's range of that field.
type RangeKey = ((usize, usize, usize), (f32, f32));

/// The app.
pub struct LemurApp {
    opts: LaunchOptions,
    loading: Loading,
    pub session: Option<Session>,
    render_state: Option<egui_wgpu::RenderState>,
    /// Settings being edited; applied by "rerun" or any change.
    pub settings: Option<Settings>,
    /// The last session's settings while another set loads, for the next session.
    carry: Option<Settings>,
    pub view: ViewState,
    host_textures: HostTextures,
    device_textures: DeviceTextures,
    /// Panel textures of the current view, and what they show.
    drawn: Option<(DrawKey, [Option<egui::TextureId>; 5])>,
    display_flush: Option<Pending<lemur_tensor::Result<()>>>,
    fps: Fps,
    last_fps: f64,
    /// Per model, the scores of its last rollout (for the curves).
    curves: [Vec<Option<Scores>>; 2],
    pub error: Option<String>,
    note: Option<String>,
    export: Option<Export>,
    /// Where the panels were drawn last frame (screen points), for tests and the page.
    pub panel_rects: Vec<egui::Rect>,
    reported: Reported,
    fingerprint: Option<Pending<lemur_tensor::Result<Vec<f32>>>>,
    /// Rollouts started, to tell a new one's frames from the last one's.
    runs: usize,
    /// Fraction of a lead time played but not yet shown.
    play_acc: f32,
    /// The truth's range of a field, keyed by (rollout, field, truth frames).
    range_cache: std::cell::Cell<Option<RangeKey>>,
    /// Natively, the CPU backend computes on a worker thread; the session is its mirror.
    #[cfg(not(target_arch = "wasm32"))]
    worker: Option<crate::worker::Worker>,
}

#[derive(Default)]
struct Reported {
    state: &'static str,
    first_frame: bool,
    panels: Vec<[i32; 4]>,
}

#[derive(Clone, Debug, PartialEq)]
struct DrawKey {
    time: usize,
    field: usize,
    member: usize,
    ranges: [(f32, f32); 5],
    maps: [lemur_plot::Colormap; 5],
    /// Which panels had a source (truth and error arrive with the solver).
    present: [bool; 5],
    /// Identifies the rollout.
    job: usize,
}

impl LemurApp {
    /// Whether the weights failed to load (the message is shown in the window).
    pub fn load_error(&self) -> Option<&str> {
        match &self.loading {
            Loading::Failed(e) => Some(e),
            _ => None,
        }
    }

    pub fn new(cc: &eframe::CreationContext<'_>, opts: LaunchOptions) -> Self {
        let loading = match platform::load_runs(&opts) {
            Ok(f) => Loading::Waiting(f),
            Err(e) => Loading::Failed(e.to_string()),
        };
        cc.egui_ctx.set_theme(egui::Theme::Dark);
        platform::report("state", "loading");
        Self {
            opts,
            loading,
            session: None,
            render_state: cc.wgpu_render_state.clone(),
            settings: None,
            carry: None,
            view: ViewState::default(),
            host_textures: HostTextures::default(),
            device_textures: DeviceTextures::default(),
            drawn: None,
            display_flush: None,
            fps: Fps::default(),
            last_fps: 0.0,
            curves: [Vec::new(), Vec::new()],
            error: None,
            note: None,
            export: None,
            panel_rects: Vec::new(),
            reported: Reported::default(),
            fingerprint: None,
            runs: 0,
            play_acc: 0.0,
            range_cache: std::cell::Cell::new(None),
            #[cfg(not(target_arch = "wasm32"))]
            worker: None,
        }
    }

    /// Whether the compute backend should be the GPU for eframe's adapter.
    fn gpu_for(&self) -> Option<egui_wgpu::RenderState> {
        let rs = self.render_state.clone()?;
        let info = rs.adapter.get_info();
        let webgpu_or_native = !matches!(info.backend, wgpu::Backend::Gl | wgpu::Backend::Noop);
        let software = info.device_type == wgpu::DeviceType::Cpu;
        let use_gpu = match self.opts.backend {
            BackendPref::Cpu => false,
            BackendPref::Gpu => webgpu_or_native,
            BackendPref::Auto => webgpu_or_native && (!software || cfg!(target_arch = "wasm32")),
        };
        use_gpu.then_some(rs)
    }

    fn fallback_reason(&self) -> String {
        match &self.render_state {
            None => "no wgpu renderer".into(),
            Some(rs) => {
                let info = rs.adapter.get_info();
                if matches!(info.backend, wgpu::Backend::Gl) {
                    let name = if info.name.is_empty() {
                        "WebGL"
                    } else {
                        &info.name
                    };
                    format!(
                        "WebGPU is not available (drawing with {name}): the emulator runs on the CPU \
                         backend, with smaller defaults"
                    )
                } else if self.opts.backend == BackendPref::Cpu {
                    "the CPU backend was asked for".into()
                } else {
                    format!(
                        "{} is a software adapter, slower than the CPU backend: running on the CPU (pass --backend gpu to use it)",
                        info.name
                    )
                }
            }
        }
    }

    /// The first rollout's settings on `system`: those carried over from the last set, or
    /// the launch options'.
    fn first_settings(&mut self, on_gpu: bool, system: System) -> Result<Settings> {
        match self.carry.take() {
            Some(mut s) => {
                if let (Initial::Named(_), false) =
                    (s.initial, crate::truth::has_named_setups(system))
                {
                    s.initial = Initial::Random(s.seed);
                }
                Ok(s)
            }
            None => self.opts.settings(on_gpu, HORIZON),
        }
    }

    fn start(&mut self, files: [RunFiles; 3]) -> Result<()> {
        let bundle = Bundle::parse(&files)?;
        drop(files);
        let system = crate::truth::system_of(&bundle.dataset_name)?;
        // Only the first session takes `--field`: a later one (another set) keeps the view.
        if let Some(name) = &self.opts.field {
            let names = FieldLayout::new(&bundle.stats.channels, system, bundle.grid).names;
            self.view.field =
                names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| AppError::Setting {
                        name: "field",
                        value: name.clone(),
                        detail: format!("these runs show {}", names.join(", ")),
                    })?;
            self.opts.field = None;
        }
        let session = match self.gpu_for() {
            Some(rs) => {
                let polling = lemur_tensor::gpu::Polling::External;
                let gpu = GpuBackend::from_device(
                    rs.device.clone(),
                    rs.queue.clone(),
                    &rs.adapter.get_info(),
                    polling,
                )?;
                let settings = self.first_settings(true, system)?;
                Session::Gpu(Sim::new(Models::new(gpu, &bundle)?, settings)?)
            }
            None => {
                self.note = Some(self.fallback_reason());
                let settings = self.first_settings(false, system)?;
                #[cfg(not(target_arch = "wasm32"))]
                {
                    self.worker = Some(crate::worker::Worker::spawn(bundle.clone(), settings));
                }
                Session::Cpu(Sim::new(Models::new(CpuBackend, &bundle)?, settings)?)
            }
        };
        self.settings = Some(with_sim!(&session, s => s.job.settings));
        self.session = Some(session);
        platform::report("dataset", &bundle.dataset_name);
        platform::report("backend", self.backend_kind());
        platform::report("state", "running");
        Ok(())
    }

    /// `webgpu` (or the native API) or `cpu`.
    pub fn backend_kind(&self) -> &'static str {
        match &self.session {
            Some(Session::Gpu(_)) if cfg!(target_arch = "wasm32") => "webgpu",
            Some(Session::Gpu(_)) => "gpu",
            _ => "cpu",
        }
    }

    fn rerun(&mut self) {
        let (Some(settings), Some(session)) = (self.settings, self.session.as_mut()) else {
            return;
        };
        let r = with_sim!(session, s => {
            let prev = s.job.settings.model as usize;
            let scores: Vec<Option<Scores>> = s.job.frames.iter().map(|f| f.scores.clone()).collect();
            if !scores.is_empty() {
                self.curves[prev] = scores;
            }
            s.restart(settings)
        });
        #[cfg(not(target_arch = "wasm32"))]
        if r.is_ok()
            && let Some(w) = &mut self.worker
        {
            w.restart(settings);
        }
        match r {
            Ok(()) => {
                self.error = None;
                self.view.time = 0;
                self.view.member = self.view.member.min(settings.members() - 1);
                self.drawn = None;
                self.reported.first_frame = false;
                self.fingerprint = None;
                self.runs += 1;
                platform::report("state", "running");
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Advances loading, the solver and the rollout by a bounded slice.
    fn advance(&mut self) {
        if let Loading::Waiting(f) = &mut self.loading
            && let Some(r) = poll_now(f)
        {
            self.loading = Loading::Ready;
            if let Err(e) = r.and_then(|files| self.start(files)) {
                self.loading = Loading::Failed(e.to_string());
                platform::report("error", &e.to_string());
                platform::report("state", "error");
            }
        }
        if let Some(rs) = &self.render_state
            && !cfg!(target_arch = "wasm32")
        {
            // The GPU backend never blocks (Polling::External): its readbacks and
            // completion callbacks fire from this poll.
            let _ = rs.device.poll(wgpu::PollType::Poll);
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        // A share of the frame: the UI keeps >= 30 frames/s while the GPU works between.
        let budget = if matches!(session, Session::Gpu(_)) {
            0.008
        } else {
            0.012
        };
        #[cfg(not(target_arch = "wasm32"))]
        if let (Some(w), Session::Cpu(mirror)) = (&mut self.worker, &mut *session) {
            if let Err(e) = w.drain(mirror) {
                self.error = Some(e.to_string());
                platform::report("error", &e.to_string());
                platform::report("state", "error");
            }
            return;
        }
        let r = with_sim!(session, s => s.advance(budget));
        if let Err(e) = r {
            self.error = Some(e.to_string());
            platform::report("error", &e.to_string());
            platform::report("state", "error");
        }
    }

    /// Whether a rollout is running (loaded, no error, not finished).
    pub fn rolling_out(&self) -> bool {
        self.error.is_none()
            && self
                .session
                .as_ref()
                .is_some_and(|s| with_sim!(s, s => !s.job.done()))
    }

    /// Windows emulated so far in the current rollout.
    pub fn windows(&self) -> u64 {
        self.session
            .as_ref()
            .map_or(0, |s| with_sim!(s, s => s.job.timings.windows()))
    }

    /// Frames emulated and the total wanted.
    pub fn progress(&self) -> (usize, usize) {
        self.session.as_ref().map_or(
            (0, 0),
            |s| with_sim!(s, s => (s.job.frames.len(), s.job.total_frames())),
        )
    }

    fn playback(&mut self, ctx: &egui::Context, dt: f32) {
        let (have, _) = self.progress();
        if ctx.input(|i| i.key_pressed(Key::Space)) && ctx.memory(|m| m.focused().is_none()) {
            self.view.playing = !self.view.playing;
        }
        if have == 0 {
            self.view.time = 0;
            return;
        }
        if self.view.playing {
            self.play_acc += dt * self.view.speed;
            let acc = self.play_acc.floor() as usize;
            self.play_acc -= acc as f32;
            if acc > 0 {
                let next = self.view.time + acc;
                if next < have {
                    self.view.time = next;
                } else if !self.rolling_out() && self.view.looping {
                    self.view.time = 0;
                } else {
                    self.view.time = have - 1;
                    if !self.rolling_out() && !self.view.looping {
                        self.view.playing = false;
                    }
                }
            }
        }
        self.view.time = self.view.time.min(have - 1);
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        let before = self.settings;
        let mut edit = before;
        let mut rerun = false;
        let mut switch = None;
        let (set, custom) = (self.opts.set, self.opts.weights.is_some());
        let loading = matches!(self.loading, Loading::Waiting(_));
        let (named, description, windows) = self.session.as_ref().map_or((true, None, None), |s| {
            with_sim!(s, s => (
                crate::truth::has_named_setups(s.models.system),
                Some(s.truth.description.clone()),
                Some((s.models.window, s.models.overlap)),
            ))
        });
        ui.horizontal_wrapped(|ui| {
            ui.strong("lemur");
            ui.separator();
            let current = if custom {
                "custom runs (weights)"
            } else {
                set.label()
            };
            // Not while a set loads: its downloads' callbacks must outlive them.
            ui.add_enabled_ui(!loading, |ui| {
                egui::ComboBox::new("set", "system")
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for other in PretrainedSet::ALL {
                            if ui
                                .selectable_label(!custom && other == set, other.label())
                                .clicked()
                                && (custom || other != set)
                            {
                                switch = Some(other);
                            }
                        }
                    });
            });
            ui.separator();
            let Some(s) = edit.as_mut() else {
                return;
            };
            ui.label("model");
            ui.selectable_value(&mut s.model, ModelChoice::Diffusion, "diffusion");
            ui.selectable_value(&mut s.model, ModelChoice::Surrogate, "surrogate");
            ui.add_enabled_ui(s.model == ModelChoice::Diffusion, |ui| {
                let current = method_name(&s.method);
                egui::ComboBox::new("sampler", "sampler")
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for name in SAMPLERS {
                            if ui.selectable_label(current == name, name).clicked()
                                && let Ok(m) = method(name)
                            {
                                s.method = m;
                            }
                        }
                    });
                ui.label("steps");
                ui.add(egui::DragValue::new(&mut s.steps).range(1..=64));
                ui.add(egui::Slider::new(&mut s.ensemble, 1..=16).text("ensemble"));
            });
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut s.seed).range(0..=9999));
            ui.label("context");
            ui.add(egui::DragValue::new(&mut s.context).range(1..=3));
            ui.label("horizon");
            ui.add(egui::DragValue::new(&mut s.horizon).range(1..=96));
            if let Some((window, recommended)) = windows {
                ui.label("overlap");
                let mut o = s.overlap_with(recommended);
                let drag = ui.add(egui::DragValue::new(&mut o).range(1..=window - 1));
                drag.on_hover_text(format!(
                    "frames each window takes from the previous one (the diffusion run recommends {recommended}; \
                     more overlap, more denoiser calls per frame)"
                ));
                if o != s.overlap_with(recommended) {
                    s.overlap = Some(o);
                }
            }
            ui.separator();
            // The named setups are Euler problems; other systems start from random ones.
            if named {
                egui::ComboBox::new("initial", "initial condition")
                    .selected_text(s.initial.label())
                    .show_ui(ui, |ui| {
                        let seed = match s.initial {
                            Initial::Random(k) => k,
                            Initial::Named(_) => s.seed,
                        };
                        ui.selectable_value(
                            &mut s.initial,
                            Initial::Random(seed),
                            "random (IC seed)",
                        );
                        for (i, (name, _)) in NAMED.iter().enumerate() {
                            ui.selectable_value(&mut s.initial, Initial::Named(i), *name);
                        }
                    });
            } else {
                ui.label("initial condition: random");
            }
            if let Initial::Random(k) = &mut s.initial {
                ui.label("IC seed");
                ui.add(egui::DragValue::new(k).range(0..=99999));
            }
            if let Some(d) = &description {
                ui.label(RichText::new(d).weak());
            }
            if ui.button("Rerun").clicked() {
                rerun = true;
            }
        });
        if let Some(set) = switch {
            self.switch_set(set);
            return;
        }
        let Some(s) = edit else {
            return;
        };
        if edit != before {
            if let Err(e) = s.validate(5) {
                self.error = Some(e.to_string());
            }
            self.settings = Some(s);
            rerun = true;
        }
        if rerun {
            self.rerun();
        }
    }

    /// Loads the embedded runs of `set` (natively from the binary, in the browser by
    /// fetching them, with the loading screen's progress) and starts a new session on them.
    /// The sampler settings carry over.
    pub fn switch_set(&mut self, set: PretrainedSet) {
        self.carry = self.settings.or(self.carry);
        self.opts.set = set;
        self.opts.weights = None;
        self.session = None;
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Dropping the worker's channel ends its thread after its current slice.
            self.worker = None;
        }
        self.settings = None;
        self.drawn = None;
        self.display_flush = None;
        self.fingerprint = None;
        self.curves = [Vec::new(), Vec::new()];
        self.error = None;
        self.note = None;
        self.view = ViewState {
            playing: self.view.playing,
            looping: self.view.looping,
            speed: self.view.speed,
            ..ViewState::default()
        };
        self.range_cache.set(None);
        self.runs += 1;
        self.reported.first_frame = false;
        self.reported.state = "loading";
        platform::report("state", "loading");
        self.loading = match platform::load_runs(&self.opts) {
            Ok(f) => Loading::Waiting(f),
            Err(e) => Loading::Failed(e.to_string()),
        };
    }

    /// The embedded set the app shows (`None` for runs from `--weights`).
    pub fn set(&self) -> Option<PretrainedSet> {
        self.opts.weights.is_none().then_some(self.opts.set)
    }

    fn view_controls(&mut self, ui: &mut egui::Ui, names: &[String], members: usize) {
        ui.horizontal_wrapped(|ui| {
            egui::ComboBox::new("field", "field")
                .selected_text(names.get(self.view.field).cloned().unwrap_or_default())
                .show_ui(ui, |ui| {
                    for (i, n) in names.iter().enumerate() {
                        ui.selectable_value(&mut self.view.field, i, n);
                    }
                });
            egui::ComboBox::new("cmap", "colour map")
                .selected_text(self.view.map.name())
                .show_ui(ui, |ui| {
                    for m in MapChoice::ALL {
                        ui.selectable_value(&mut self.view.map, m, m.name());
                    }
                });
            let mut fixed = self.view.fixed.is_some();
            if ui.checkbox(&mut fixed, "fixed range").changed() {
                self.view.fixed = fixed.then(|| self.field_range());
            }
            if let Some((lo, hi)) = &mut self.view.fixed {
                ui.add(egui::DragValue::new(lo).speed(0.01).prefix("lo "));
                ui.add(egui::DragValue::new(hi).speed(0.01).prefix("hi "));
            }
            ui.separator();
            ui.label("member");
            ui.add(
                egui::DragValue::new(&mut self.view.member).range(0..=members.saturating_sub(1)),
            );
        });
    }

    fn playback_controls(&mut self, ui: &mut egui::Ui, stride: usize) {
        let (have, total) = self.progress();
        ui.horizontal(|ui| {
            let label = if self.view.playing { "Pause" } else { "Play" };
            if ui.button(label).on_hover_text("space bar").clicked() {
                self.view.playing = !self.view.playing;
            }
            if ui
                .button("< step")
                .on_hover_text("previous frame")
                .clicked()
            {
                self.view.playing = false;
                self.view.time = self.view.time.saturating_sub(1);
            }
            if ui.button("step >").on_hover_text("next frame").clicked() {
                self.view.playing = false;
                self.view.time = (self.view.time + 1).min(have.saturating_sub(1));
            }
            ui.checkbox(&mut self.view.looping, "loop");
            ui.label("speed");
            ui.add(
                egui::Slider::new(&mut self.view.speed, 0.5..=30.0)
                    .suffix(" frames/s")
                    .logarithmic(true),
            );
            let max = have.saturating_sub(1).max(1);
            let mut t = self.view.time;
            let slider = egui::Slider::new(&mut t, 0..=max).text(format!(
                "lead time ({} solver steps per frame; {have}/{total} emulated)",
                stride
            ));
            if ui.add_enabled(have > 0, slider).changed() {
                self.view.playing = false;
                self.view.time = t;
            }
        });
    }

    /// The range of the field panels: fixed, or the truth's range over the frames computed
    /// so far (symmetric about 0 for signed fields).
    fn field_range(&self) -> (f32, f32) {
        if let Some(r) = self.view.fixed {
            return r;
        }
        let Some(session) = &self.session else {
            return (0.0, 1.0);
        };
        let key = (
            self.runs,
            self.view.field,
            with_sim!(session, s => s.truth.frames.len()),
        );
        if let Some((k, r)) = self.range_cache.get()
            && k == key
        {
            return r;
        }
        // Derived fields of every truth frame: once per new solver frame, not every UI frame.
        let r = with_sim!(session, s => {
            let [h, w] = s.models.grid;
            let plane = h * w;
            let f = self.view.field.min(s.models.layout.len() - 1);
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for frame in &s.truth.frames {
                let d = s.models.layout.derive_host(frame);
                for &v in &d[f * plane..(f + 1) * plane] {
                    if v.is_finite() {
                        lo = lo.min(v);
                        hi = hi.max(v);
                    }
                }
            }
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if s.models.layout.sign(f) == Sign::Signed {
                let m = lo.abs().max(hi.abs());
                (-m, m)
            } else {
                (lo, hi)
            }
        });
        self.range_cache.set(Some((key, r)));
        r
    }

    fn draw_key<B: Compute>(&self, s: &Sim<B>, job_id: usize) -> DrawKey {
        let f = self.view.field.min(s.models.layout.len() - 1);
        let t = self.view.time;
        let frame = s.job.frames.get(t);
        let (lo, hi) = self.field_range();
        let width = (hi - lo).abs().max(1e-6);
        let scores = frame.and_then(|fr| fr.scores.as_ref());
        let err = scores
            .map_or(0.05 * width, |sc| 3.0 * sc.rmse[f] as f32)
            .max(1e-6);
        let n = s.job.settings.members() as f32;
        let spread = scores.map_or(0.05 * width, |sc| {
            3.0 * sc.spread[f] as f32 / ((n + 1.0) / n).sqrt()
        });
        let field_map = self.view.map.for_field(s.models.layout.sign(f));
        DrawKey {
            time: t,
            field: f,
            member: self.view.member.min(s.job.settings.members() - 1),
            ranges: [
                (lo, hi),
                (lo, hi),
                (lo, hi),
                (-err, err),
                (0.0, spread.max(1e-6)),
            ],
            maps: std::array::from_fn(|i| panel_map(i, field_map)),
            present: [
                frame.is_some_and(|fr| fr.truth.is_some()),
                frame.is_some(),
                frame.is_some(),
                frame.is_some_and(|fr| fr.error.is_some()),
                frame.is_some(),
            ],
            job: job_id,
        }
    }

    /// (tensor, offset) of each panel: truth (D, H, W), mean, member n of (N, D, H, W), error,
    /// spread.
    fn sources<B: Compute>(s: &Sim<B>, key: &DrawKey) -> [Option<(Tensor<B>, usize)>; 5] {
        let Some(fr) = s.job.frames.get(key.time) else {
            return Default::default();
        };
        let [h, w] = s.models.grid;
        let d = s.models.layout.len();
        [
            fr.truth.clone().map(|t| (t, 0)),
            Some((fr.mean.clone(), 0)),
            Some((fr.members.clone(), key.member * d * h * w)),
            fr.error.clone().map(|t| (t, 0)),
            Some((fr.spread.clone(), 0)),
        ]
    }

    fn params(key: &DrawKey, i: usize, offset: usize, grid: [usize; 2]) -> PanelView {
        PanelView {
            params: ColormapParams::new(
                offset as u32,
                key.field as u32,
                grid[0] as u32,
                grid[1] as u32,
                key.ranges[i].0,
                key.ranges[i].1,
            ),
            cmap: key.maps[i],
        }
    }

    /// Redraws the panel textures when what they show has changed.
    fn update_textures(&mut self, ctx: &egui::Context) {
        let Some(session) = &self.session else {
            return;
        };
        let key = with_sim!(session, s => self.draw_key(s, self.runs));
        if self.drawn.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        let mut ids: [Option<egui::TextureId>; 5] = [None; 5];
        let result: Result<()> = match session {
            Session::Cpu(s) => {
                let sources = Self::sources(s, &key);
                for (i, src) in sources.iter().enumerate() {
                    if let Some((t, off)) = src {
                        let view = Self::params(&key, i, *off, s.models.grid);
                        let data = t.storage();
                        ids[i] = Some(self.host_textures.draw(ctx, i, &data, &view));
                    }
                }
                Ok(())
            }
            Session::Gpu(s) => (|| {
                let Some(rs) = &self.render_state else {
                    return Ok(());
                };
                let sources = Self::sources(s, &key);
                let [h, w] = s.models.grid;
                for (i, src) in sources.iter().enumerate() {
                    if let Some((t, off)) = src {
                        let view = Self::params(&key, i, *off, s.models.grid);
                        let (target, id) = self.device_textures.target(rs, i, w as u32, h as u32);
                        s.models.backend.colormap(
                            &t.storage(),
                            &view.params,
                            &crate::display::lut(view.cmap),
                            &target,
                        )?;
                        ids[i] = Some(id);
                    }
                }
                let mut f = s.models.backend.settled().expect("the GPU settles");
                // The first poll submits the colour maps before egui renders this frame.
                if poll_now(&mut f).is_none() {
                    self.display_flush = Some(f);
                }
                Ok(())
            })(),
        };
        if let Err(e) = result {
            self.error = Some(e.to_string());
        }
        self.drawn = Some((key, ids));
    }

    fn panels(&mut self, ui: &mut egui::Ui) {
        self.panel_rects.clear();
        let Some((key, ids)) = self.drawn.clone() else {
            ui.centered_and_justified(|ui| {
                ui.spinner();
            });
            return;
        };
        let members = self.settings.map_or(1, |s| s.members());
        let (orientation, grid) = self.session.as_ref().map_or(
            (crate::display::Orientation::Rows, [1, 1]),
            |s| with_sim!(s, s => (crate::display::Orientation::of(s.models.system), s.models.grid)),
        );
        // Room beside each panel for its colour bar, and below for its title and note.
        let (per_row, size) = crate::display::panel_layout(
            5,
            orientation.aspect(grid),
            ui.available_size(),
            egui::vec2(92.0, 48.0),
        );
        let mut rects = Vec::new();
        egui::Grid::new("panels")
            .spacing([8.0, 8.0])
            .show(ui, |ui| {
                for i in 0..5 {
                    ui.vertical(|ui| {
                        let title = match i {
                            2 => format!("member {}", key.member),
                            _ => PANELS[i].to_string(),
                        };
                        ui.label(RichText::new(title).strong());
                        ui.horizontal(|ui| {
                            let (r, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                            rects.push(r);
                            match ids[i] {
                                Some(id) => orientation.paint(ui, id, r),
                                None => {
                                    ui.painter().text(
                                        r.center(),
                                        egui::Align2::CENTER_CENTER,
                                        "waiting for the solver",
                                        egui::FontId::proportional(13.0),
                                        ui.visuals().weak_text_color(),
                                    );
                                }
                            }
                            let (lo, hi) = key.ranges[i];
                            colour_bar(ui, key.maps[i], lo, hi, size.y.max(48.0));
                        });
                        let note = match i {
                            2 if members == 1 => "one member: the member is the mean",
                            4 if members == 1 => "one member: no spread",
                            _ => "",
                        };
                        if !note.is_empty() {
                            ui.label(RichText::new(note).small().weak());
                        }
                    });
                    if (i + 1) % per_row == 0 {
                        ui.end_row();
                    }
                }
            });
        self.panel_rects = rects;
    }

    fn plots(&mut self, ui: &mut egui::Ui) {
        // Lead times are short integers: egui_plot's default spacing for x labels (60-80
        // points, for wide numbers) hid every label but 0 on a narrow plot of 6 leads.
        fn lead_time_axis() -> Vec<AxisHints<'static>> {
            vec![
                AxisHints::new_x()
                    .label("lead time (frames)")
                    .label_spacing(18.0..=24.0),
            ]
        }
        fn score_axis() -> Vec<AxisHints<'static>> {
            vec![AxisHints::new_y().formatter(|mark, _| score_label(mark.value, mark.step_size))]
        }
        fn score_grid() -> impl Fn(egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
            egui_plot::uniform_grid_spacer(|input| score_steps(input.base_step_size))
        }
        let Some(session) = &self.session else {
            return;
        };
        let (current, model, field, names) = with_sim!(session, s => (
            s.job.frames.iter().map(|f| f.scores.clone()).collect::<Vec<_>>(),
            s.job.settings.model as usize,
            self.view.field.min(s.models.layout.len() - 1),
            s.models.layout.names.clone(),
        ));
        let curve = |scores: &[Option<Scores>], pick: &dyn Fn(&Scores) -> f64| -> Vec<[f64; 2]> {
            scores
                .iter()
                .enumerate()
                .filter_map(|(t, s)| s.as_ref().map(|s| [t as f64, pick(s)]))
                .collect()
        };
        let series = |m: usize| -> &[Option<Scores>] {
            if m == model {
                &current
            } else {
                &self.curves[m]
            }
        };
        ui.label(RichText::new(format!("VRMSE of {} against lead time", names[field])).strong());
        // Both scores are highest (error) or level off near 1 (spread-skill) at late leads, so a
        // legend in the default top-right corner hid the end of the curves.
        let legend = || Legend::default().position(Corner::RightBottom);
        Plot::new("vrmse")
            .height(ui.available_height() * 0.45)
            .legend(legend())
            .custom_x_axes(lead_time_axis())
            .y_grid_spacer(score_grid())
            .custom_y_axes(score_axis())
            .show(ui, |p| {
                for (m, name) in [(0, "diffusion (ensemble mean)"), (1, "surrogate")] {
                    let pts = curve(series(m), &|s| s.vrmse[field]);
                    if !pts.is_empty() {
                        p.line(Line::new(name, PlotPoints::from(pts)));
                    }
                }
            });
        ui.label(RichText::new("spread-skill ratio (1 = calibrated)").strong());
        Plot::new("spread_skill")
            .height(ui.available_height() * 0.9)
            .legend(legend())
            .custom_x_axes(lead_time_axis())
            .y_grid_spacer(score_grid())
            .custom_y_axes(score_axis())
            .show(ui, |p| {
                let pts = curve(series(0), &|s| s.spread_skill[field]);
                if !pts.is_empty() {
                    p.line(Line::new("diffusion", PlotPoints::from(pts)));
                    p.hline(egui_plot::HLine::new("calibrated", 1.0));
                }
            });
    }

    fn status(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let backend = match (&self.session, &self.render_state) {
                (Some(Session::Gpu(s)), _) => {
                    let i = s.models.backend.info();
                    let name = if i.name.is_empty() {
                        "adapter name hidden by the browser"
                    } else {
                        &i.name
                    };
                    if cfg!(target_arch = "wasm32") {
                        format!("GPU: WebGPU ({name})")
                    } else {
                        format!("GPU: {name} ({:?})", i.backend)
                    }
                }
                (Some(Session::Cpu(_)), _) => "CPU backend".to_string(),
                (None, _) => "loading".to_string(),
            };
            ui.label(backend);
            if let Some(note) = &self.note {
                ui.label(RichText::new(note).color(ui.visuals().warn_fg_color));
            }
            if let Some(session) = &self.session {
                with_sim!(session, s => {
                    let t = &s.job.timings;
                    ui.separator();
                    if let Some(v) = t.step_s {
                        ui.label(format!("{:.1} ms/step", v * 1e3));
                    }
                    if let Some(v) = t.window_s {
                        ui.label(format!("{:.2} s/window", v));
                    }
                    if let Some(m) = s.models.backend.memory_bytes() {
                        ui.label(format!("GPU memory {:.1} MB", m as f64 / 1e6));
                    }
                    ui.separator();
                    if let Some(fps) = s.truth.frames_per_s() {
                        ui.label(format!("solver {fps:.1} frames/s"));
                    }
                    let n = s.job.frames.len();
                    if let (Some(start), true) = (t.started, n > s.job.settings.context) {
                        let end = t.finished_s.unwrap_or_else(|| start.elapsed().as_secs_f64());
                        let phys = (n - s.job.settings.context) * s.models.stride;
                        ui.label(format!(
                            "emulator {:.1} frames/s ({} member(s))",
                            phys as f64 / end.max(1e-9),
                            s.job.settings.members()
                        ));
                    }
                    if let Some(v) = t.first_frame_s {
                        ui.label(format!("first frame {:.2} s", v));
                    }
                });
            }
            ui.separator();
            ui.label(format!("UI {:.0} frames/s", self.last_fps));
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, format!("error: {e}"));
        }
        if let Loading::Failed(e) = &self.loading {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("could not load the pretrained runs: {e}"),
            );
        }
    }

    fn export_buttons(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let ready = self.session.is_some() && self.export.is_none();
            if ui
                .add_enabled(ready, egui::Button::new("export panels (PNG)"))
                .clicked()
            {
                self.start_export(ExportKind::Png);
            }
            if ui
                .add_enabled(ready, egui::Button::new("export rollout (safetensors)"))
                .clicked()
            {
                self.start_export(ExportKind::Safetensors);
            }
            if let Some(e) = &self.export {
                ui.spinner();
                ui.label(e.describe());
            }
        });
    }

    fn start_export(&mut self, kind: ExportKind) {
        let Some(session) = &self.session else {
            return;
        };
        let Some((key, _)) = &self.drawn else {
            return;
        };
        let r = with_sim!(session, s => Export::start(self.opts.export_dir.clone(), kind, s, key.time, key.field, key.member, key.ranges, key.maps));
        match r {
            Ok(e) => self.export = Some(e),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn poll_export(&mut self) {
        let Some(e) = &mut self.export else {
            return;
        };
        match e.poll() {
            None => {}
            Some(Ok(msg)) => {
                self.note = Some(msg);
                self.export = None;
            }
            Some(Err(err)) => {
                self.error = Some(err.to_string());
                self.export = None;
            }
        }
    }

    fn report(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        let (done, channels, grid) =
            with_sim!(session, s => (s.job.done(), s.models.stats.channels.len(), s.models.grid));
        if !self.reported.first_frame && self.fingerprint.is_none() {
            self.fingerprint = with_sim!(session, s => first_frame(s));
        }
        if let Some(f) = &mut self.fingerprint
            && let Some(r) = poll_now(f)
        {
            self.fingerprint = None;
            match r {
                Ok(v) => {
                    platform::report("first-frame", &fingerprint(&v, channels, grid));
                    if let Some(t) = platform::since_start_ms() {
                        platform::report("ttff-ms", &format!("{t:.0}"));
                    }
                    self.reported.first_frame = true;
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        let rects: Vec<[i32; 4]> = self
            .panel_rects
            .iter()
            .map(|r| [r.min.x, r.min.y, r.width(), r.height()].map(|v| v.round() as i32))
            .collect();
        if rects != self.reported.panels {
            let text: Vec<String> = rects
                .iter()
                .map(|[x, y, w, h]| format!("[{x},{y},{w},{h}]"))
                .collect();
            platform::report("panels", &format!("[{}]", text.join(",")));
            self.reported.panels = rects;
        }
        let state = if self.error.is_some() {
            "error"
        } else if done
            && self
                .drawn
                .as_ref()
                .is_some_and(|(_, ids)| ids.iter().all(Option::is_some))
        {
            "done"
        } else {
            "running"
        };
        if state != self.reported.state {
            if let Some(fps) = self.fps.running_mean() {
                platform::report("fps", &format!("{fps:.1}"));
            }
            if let Some(e) = &self.error {
                platform::report("error", e);
            }
            platform::report("state", state);
            self.reported.state = state;
        }
    }
}

/// The first emulated frame (the first lead time after the context) of the ensemble mean,
/// `[D, H, W]` in physical units, once decoded: a readback to poll.
pub fn first_frame<B: Compute>(s: &Sim<B>) -> Option<Pending<lemur_tensor::Result<Vec<f32>>>> {
    let mean = s.job.frames.get(s.job.settings.context)?.mean.clone();
    Some(Box::pin(async move { mean.to_vec_async().await }))
}

/// The fingerprint of a host frame `[D, H, W]` (the first `channels` are used).
pub fn fingerprint(frame: &[f32], channels: usize, [h, w]: [usize; 2]) -> String {
    let plane = h * w;
    let points = [
        (h / 4, w / 4),
        (h / 4, 3 * w / 4),
        (3 * h / 4, w / 4),
        (h / 2, w / 2),
    ];
    let mut out = Vec::new();
    for c in 0..channels {
        let p = &frame[c * plane..(c + 1) * plane];
        out.push(p.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64);
        for (i, j) in points {
            out.push(f64::from(p[i * w + j]));
        }
    }
    let items: Vec<String> = out.iter().map(|v| format!("{v:.6e}")).collect();
    format!("[{}]", items.join(","))
}

impl eframe::App for LemurApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let dt = ctx.input(|i| i.stable_dt).min(0.25);
        let rolling = self.rolling_out();
        self.last_fps = self.fps.tick(rolling);
        self.advance();
        self.playback(ctx, dt);
        if let Some(f) = &mut self.display_flush
            && let Some(r) = poll_now(f)
        {
            self.display_flush = None;
            if let Err(e) = r {
                self.error = Some(e.to_string());
            }
        }
        self.update_textures(ctx);
        self.poll_export();
        self.report();
        if self.rolling_out()
            || self.view.playing
            || self.export.is_some()
            || matches!(self.loading, Loading::Waiting(_))
        {
            ctx.request_repaint();
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let (names, members, stride) = self.session.as_ref().map_or((Vec::new(), 1, 1), |s| {
            with_sim!(s, s => (s.models.layout.names.clone(), s.job.settings.members(), s.models.stride))
        });
        egui::Panel::top("controls").show(ui, |ui| {
            self.controls(ui);
            if !names.is_empty() {
                self.view_controls(ui, &names, members);
            }
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            self.export_buttons(ui);
            self.status(ui);
        });
        // At least a third of the width for the plots on narrow screens, 340 points otherwise.
        let plots = (ui.available_width() / 3.0).min(340.0);
        egui::Panel::right("plots")
            .default_size(plots)
            .min_size(plots)
            .resizable(true)
            .show(ui, |ui| {
                self.plots(ui);
            });
        egui::CentralPanel::default().show(ui, |ui| {
            if let Loading::Waiting(_) = self.loading {
                let (done, total) = platform::progress();
                ui.vertical_centered(|ui| {
                    ui.add_space(40.0);
                    ui.heading("loading the pretrained emulator");
                    if total > 0.0 {
                        ui.add(
                            egui::ProgressBar::new((done / total) as f32)
                                .show_percentage()
                                .desired_width(320.0),
                        );
                        ui.label(format!("{:.1} of {:.1} MB", done / 1e6, total / 1e6));
                    } else {
                        ui.spinner();
                    }
                });
                return;
            }
            if self.session.is_some() {
                self.playback_controls(ui, stride);
                egui::ScrollArea::vertical().show(ui, |ui| self.panels(ui));
            } else if let Loading::Failed(e) = &self.loading {
                ui.vertical_centered(|ui| {
                    ui.add_space(40.0);
                    ui.heading("the pretrained runs could not be loaded");
                    ui.colored_label(ui.visuals().error_fg_color, e);
                });
            }
        });
    }
}

/// Runs the first window on the CPU backend without a window and returns the fingerprint of
/// the first emulated frame (see [`fingerprint`]), as the web page reports it.
#[cfg(not(target_arch = "wasm32"))]
pub fn headless_first_frame(opts: &LaunchOptions) -> Result<String> {
    let files = match &opts.weights {
        Some(dir) => Bundle::read_dir(std::path::Path::new(dir))?,
        None => Bundle::embedded_files(opts.set),
    };
    let bundle = Bundle::parse(&files)?;
    let settings = opts.settings(false, HORIZON)?;
    let mut sim = Sim::new(Models::new(CpuBackend, &bundle)?, settings)?;
    while sim.job.frames.len() <= settings.context {
        if sim.advance(1.0)? == Tick::Done && sim.job.frames.len() <= settings.context {
            return Err(crate::AppError::Setting {
                name: "horizon",
                value: settings.horizon.to_string(),
                detail: "the rollout ended before its first emulated frame".into(),
            });
        }
    }
    let v = sim.job.frames[settings.context].mean.to_vec()?;
    Ok(fingerprint(
        &v,
        sim.models.stats.channels.len(),
        sim.models.grid,
    ))
}
