//! The training loop shared by every model: gradient accumulation, AdamW or SOAP with the
//! cosine schedule, non-finite loss detection, validation, checkpoints, the JSONL log and
//! progress.
//!
//! Nothing is read back inside a step: each micro-batch's loss stays on the device (detached
//! from the graph, in [`PendingLosses`]) and the losses since the last read are read together,
//! in one host synchronisation, at each log line (every `--log-every` steps, at checkpoints, at
//! the last step and on an interrupt). That read is where a NaN or infinite loss is found; the
//! run then stops with the first non-finite step before anything of the interval is logged or
//! checkpointed.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lemur_tensor::{Backend, Optimizer, ParamStore, Tensor, no_grad};

use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::options::TrainOptions;
use crate::run::{CheckpointMeta, LogLine, RunDir};

/// What a model contributes to the loop: its losses on batches that are pure functions of
/// `(seed, step, micro-batch)`, so that a resumed run draws exactly what an uninterrupted one
/// would have.
pub trait Objective<B: Backend> {
    /// The mean loss of micro-batch `micro` of optimizer step `step` (1-based), with the
    /// training randomness (dropout, noise, masks) on; a one-element tensor to differentiate.
    fn train_loss(&mut self, step: u32, micro: usize) -> Result<Tensor<B>>;
    /// The loss of validation batch `index` (the same batches at every evaluation), or `None`
    /// when there is no validation data. Called without gradient recording.
    fn val_loss(&mut self, index: usize) -> Result<Option<Tensor<B>>>;
}

/// The state of a run being trained.
pub struct Trainer<'a, B: Backend> {
    pub run: RunDir,
    pub params: &'a ParamStore<B>,
    pub optimizer: Optimizer<B>,
    /// The weight average of a run trained with `--ema`: updated after every step, it is what
    /// validation measures and what the checkpoints' model files hold.
    pub ema: Option<Ema<B>>,
    pub options: TrainOptions,
    /// Metadata of the checkpoints to write (step, losses and timing are filled in).
    pub template: CheckpointMeta,
    /// Training time of earlier sessions of the run, in seconds.
    pub elapsed_before: f64,
    /// Stop (with a checkpoint) after this step instead of `options.steps`: as if the run had
    /// been interrupted there.
    pub stop_after: Option<u32>,
    /// Fit this session into this many seconds: see [`TimeFit`]; the run also stops (with a
    /// checkpoint) at the first step that ends past it.
    pub time_limit: Option<f64>,
    /// Steps per second this run trained at before (a resumed run's last session on this
    /// backend: [`crate::session::measured_rate`]): a time-limited session fits its schedule to
    /// it at the first step instead of running the unfitted schedule until its own rate is
    /// measured.
    pub prior_rate: Option<f64>,
    /// Describes the latest complete checkpoint, for error messages.
    pub last_good: String,
    /// Set by an interrupt (Ctrl-C): the step in progress is finished and checkpointed, then
    /// training returns with [`Summary::interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
}

/// How a call to [`Trainer::train`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The last completed step.
    pub step: u32,
    /// Mean training loss of the first and the last log interval of this session.
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
    pub val_loss: Option<f32>,
    pub samples_per_s: f64,
    /// Stopped by [`Trainer::stop`] before the last step, with a checkpoint at `step`.
    pub interrupted: bool,
    /// Stopped by [`Trainer::time_limit`] before the last step, with a checkpoint at `step`:
    /// the steps measured early ran slower later, or the limit passed before a rate was
    /// measured (then `fitted` is false).
    pub out_of_time: bool,
    /// The time limit moved the end of the schedule in this session.
    pub fitted: bool,
}

/// Losses not yet read back: one `[1]` tensor per micro-batch, in order, on the device.
struct PendingLosses<B: Backend> {
    /// Earlier losses of the interval, joined `CHUNK` at a time so that a long interval holds a
    /// few buffers rather than one per micro-batch.
    chunks: Vec<Tensor<B>>,
    parts: Vec<Tensor<B>>,
    /// The first step of the interval (the next one after the last read).
    first_step: u32,
    steps: u32,
}

/// Micro-batch losses per chunk of [`PendingLosses`].
const CHUNK: usize = 64;

impl<B: Backend> PendingLosses<B> {
    fn new(first_step: u32) -> Self {
        Self {
            chunks: Vec::new(),
            parts: Vec::new(),
            first_step,
            steps: 0,
        }
    }

    /// Keeps a micro-batch's loss (its value only: no graph).
    fn push(&mut self, loss: &Tensor<B>) -> Result<()> {
        let value = no_grad(|| loss.detach().reshape(&[1]))?;
        self.parts.push(value);
        if self.parts.len() >= CHUNK {
            let chunk = Self::join(&self.parts)?;
            self.chunks.push(chunk);
            self.parts.clear();
        }
        Ok(())
    }

    fn join(parts: &[Tensor<B>]) -> Result<Tensor<B>> {
        if parts.len() == 1 {
            return Ok(parts[0].clone());
        }
        let refs: Vec<&Tensor<B>> = parts.iter().collect();
        Ok(no_grad(|| Tensor::concat(&refs, 0))?)
    }

    /// Reads every pending loss in one transfer (one host synchronisation) and starts the next
    /// interval after `last_step`.
    fn read(&mut self, last_step: u32) -> Result<Vec<f32>> {
        let mut all = std::mem::take(&mut self.chunks);
        if !self.parts.is_empty() {
            all.push(Self::join(&self.parts)?);
            self.parts.clear();
        }
        *self = Self::new(last_step + 1);
        if all.is_empty() {
            return Ok(Vec::new());
        }
        Ok(Self::join(&all)?.to_vec()?)
    }
}

/// A time-limited session measures its rate over this share of the limit (at most
/// [`FIT_AFTER_MAX_S`]) before it trusts it, and again between fits.
const FIT_AFTER_SHARE: f64 = 0.1;
const FIT_AFTER_MAX_S: f64 = 60.0;
/// The share of the remaining time the fitted steps may fill: validation and checkpoints come
/// on top of the measured steps.
const FIT_MARGIN: f64 = 0.95;

/// Fits a session limited to `limit` seconds to its clock: its last step is the steps that fit
/// in the rest of the limit at the measured rate, never past the session's own end (`--steps`,
/// `--stop-after`). The trainer moves the cosine schedule's end there, so that a run cut short
/// by the clock still anneals instead of stopping at a high learning rate.
#[derive(Clone, Debug)]
pub struct TimeFit {
    limit: f64,
    max_end: u32,
    /// The step and session time the rate is measured from: the session's start, then the
    /// last fit.
    since: (u32, f64),
}

impl TimeFit {
    /// A session that resumes after step `start` and would end at `max_end`.
    pub fn new(limit: f64, start: u32, max_end: u32) -> Self {
        Self {
            limit,
            max_end,
            since: (start, 0.0),
        }
    }

    /// The session's last step before any step is measured, at `rate` steps/s (the run's
    /// earlier sessions): the whole limit at that rate, with the same margin as [`Self::fit`].
    pub fn fit_prior(&self, rate: f64) -> u32 {
        let (start, _) = self.since;
        let more = (rate.max(0.0) * self.limit * FIT_MARGIN).floor();
        self.max_end
            .min(start.saturating_add(more.min(f64::from(u32::MAX)) as u32))
    }

    /// The session's last step and the rate it was fitted at (steps/s, since the last fit),
    /// once `step` has ended `spent` seconds into the session; `None` until a tenth of the
    /// limit (at most 60 s) has passed since the last fit (or the start). Fitting again at that interval follows a
    /// machine that speeds up or slows down (other work beside the run), in both directions.
    pub fn fit(&mut self, step: u32, spent: f64) -> Option<(u32, f64)> {
        let (from_step, from_time) = self.since;
        let window = (self.limit * FIT_AFTER_SHARE).min(FIT_AFTER_MAX_S);
        if step <= from_step || spent - from_time < window {
            return None;
        }
        let rate = f64::from(step - from_step) / (spent - from_time);
        let more = (rate * (self.limit - spent).max(0.0) * FIT_MARGIN).floor();
        self.since = (step, spent);
        let last = self
            .max_end
            .min(step.saturating_add(more.min(f64::from(u32::MAX)) as u32));
        Some((last, rate))
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<B: Backend> Trainer<'_, B> {
    /// Runs from the optimizer's current step to the end (or `stop_after`).
    pub fn train(&mut self, objective: &mut dyn Objective<B>) -> Result<Summary> {
        let o = self.options.clone();
        let start = self.optimizer.steps();
        let mut end = self.stop_after.map_or(o.steps, |s| s.min(o.steps));
        let mut fit = self.time_limit.map(|limit| TimeFit::new(limit, start, end));
        let mut fitted_before = false;
        if let (Some(fit), Some(rate)) = (&fit, self.prior_rate) {
            // A resumed run's schedule, stretched to a far `--steps`, would otherwise train
            // near its peak learning rate until this session's rate is measured.
            let last = fit.fit_prior(rate).max(start + 1);
            if last != end {
                eprintln!(
                    "{}: --time-limit {:.0}s: {} steps fit at {rate:.2} steps/s (the run's last session); the schedule now ends at step {last} (was {end})",
                    self.template.kind,
                    self.time_limit.unwrap_or_default(),
                    last - start,
                );
                fitted_before = true;
                end = last;
                self.options.steps = last;
                self.optimizer.set_total_steps(last);
            }
        }
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::new(u64::from(end));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
                    .expect("static progress template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(self.template.kind.to_string());
            bar.set_position(u64::from(start));
            bar
        } else {
            ProgressBar::hidden()
        };
        let session_start = Instant::now();
        let mut interval_start = Instant::now();
        let mut pending = PendingLosses::new(start + 1);
        let mut summary = Summary {
            step: start,
            first_loss: None,
            last_loss: None,
            val_loss: None,
            samples_per_s: 0.0,
            interrupted: false,
            out_of_time: false,
            fitted: false,
        };
        let samples = o.samples_per_step() as f64;

        // `end` can move (a time limit), so the bound is read on every pass.
        let mut step = start;
        while step < end {
            step += 1;
            let lr = self.options.adamw().schedule.lr(step);
            if let Err(e) = self.step(objective, step, &mut pending) {
                // A non-finite loss earlier in the interval may be what made the step fail
                // (an optimizer or a model refusing NaNs): it is the error to report.
                bar.abandon();
                return Err(self.non_finite_first(&mut pending, step, e));
            }
            bar.set_position(u64::from(step));

            // An interrupt is only looked at between steps, so the checkpoint it writes is of
            // a whole step, exactly what an uninterrupted run had at that point.
            let out_of_time = self
                .time_limit
                .is_some_and(|limit| session_start.elapsed().as_secs_f64() >= limit);
            let stopped = self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
            let interrupted = step < end && (out_of_time || stopped);
            // Before the checkpoint decision, so that a fit that ends the run here checkpoints.
            if let Some(fit) = fit.as_mut().filter(|_| !interrupted && step < end) {
                let spent = session_start.elapsed().as_secs_f64();
                if let Some((last, rate)) = fit.fit(step, spent).filter(|&(last, _)| last != end) {
                    // The first fit and large moves are told; small ones follow the rate.
                    if !fitted_before
                        || u64::from(last.abs_diff(end)) * 20 >= u64::from(end - start)
                    {
                        let note = format!(
                            "{}: --time-limit {:.0}s: {} steps fit at {rate:.2} steps/s; the schedule now ends at step {last} (was {end})",
                            self.template.kind,
                            self.time_limit.unwrap_or_default(),
                            last - start,
                        );
                        bar.suspend(|| eprintln!("{note}"));
                    }
                    fitted_before = true;
                    end = last;
                    self.options.steps = last;
                    self.optimizer.set_total_steps(last);
                    bar.set_length(u64::from(end));
                }
            }
            // The last step always checkpoints, so a finished (or stopped) run is resumable.
            let checkpoint = step.is_multiple_of(o.checkpoint_every) || step == end || interrupted;
            if step.is_multiple_of(o.log_every) || checkpoint {
                // The one host synchronisation of the interval: it waits for every step since
                // the last read, so the rate below counts their device time too.
                let interval_steps = pending.steps;
                let first_step = pending.first_step;
                let values = match pending.read(step) {
                    Ok(values) => values,
                    Err(e) => {
                        bar.abandon();
                        return Err(e);
                    }
                };
                let loss = match self.interval_loss(&values, first_step, step) {
                    Ok(loss) => loss,
                    Err(e) => {
                        bar.abandon();
                        return Err(e);
                    }
                };
                let rate = samples * f64::from(interval_steps)
                    / interval_start.elapsed().as_secs_f64().max(1e-9);
                // No validation on an interrupt: the user is waiting for the program to end.
                let val_loss = if checkpoint && !interrupted {
                    self.validate(objective)?
                } else {
                    None
                };
                let elapsed = self.elapsed_before + session_start.elapsed().as_secs_f64();
                let line = LogLine {
                    step,
                    loss,
                    val_loss,
                    lr,
                    samples_per_s: rate,
                    elapsed_s: elapsed,
                };
                self.run.append_log(&line)?;
                summary.first_loss.get_or_insert(loss);
                summary.last_loss = Some(loss);
                summary.samples_per_s = rate;
                if val_loss.is_some() {
                    summary.val_loss = val_loss;
                }
                let val = val_loss.map_or(String::new(), |v| format!(" val {v:.4}"));
                bar.set_message(format!("loss {loss:.4}{val} | {rate:.1} samples/s"));
                if !terminal {
                    let remaining = f64::from(end - step) * samples / rate.max(1e-9);
                    eprintln!(
                        "{} step {step}/{end} loss {loss:.5}{val} lr {lr:.3e} {rate:.1} samples/s eta {remaining:.0}s",
                        self.template.kind
                    );
                }
                if checkpoint {
                    self.checkpoint(step, Some(loss), val_loss, elapsed)?;
                }
                interval_start = Instant::now();
            }
            summary.step = step;
            summary.fitted = fitted_before;
            if interrupted {
                summary.interrupted = stopped;
                summary.out_of_time = !stopped;
                bar.abandon();
                return Ok(summary);
            }
        }
        bar.finish();
        Ok(summary)
    }

    /// One optimizer step: the micro-batches' forward and backward passes and the update, with
    /// their losses left on the device in `pending`.
    fn step(
        &mut self,
        objective: &mut dyn Objective<B>,
        step: u32,
        pending: &mut PendingLosses<B>,
    ) -> Result<()> {
        let accum = self.options.accum;
        let mut backend = None;
        for micro in 0..accum {
            let loss = objective.train_loss(step, micro)?;
            backend.get_or_insert_with(|| loss.backend().clone());
            let scaled = if accum > 1 {
                loss.scale(1.0 / accum as f32)?
            } else {
                loss.clone()
            };
            scaled.backward()?;
            pending.push(&loss)?;
        }
        pending.steps += 1;
        self.optimizer.step(self.params)?;
        if let Some(ema) = &mut self.ema {
            ema.update(self.params)?;
        }
        // Submits the step and waits for the one before: the device runs while the next step
        // is recorded, and an interrupt waits for at most one step.
        if let Some(backend) = backend {
            backend.end_step()?;
        }
        Ok(())
    }

    /// The mean training loss of steps `first_step..=last_step` from their micro-batch losses
    /// (summed in the order the per-step reads of earlier versions did, so the figures are the
    /// same to the bit), or the error naming the first non-finite one.
    fn interval_loss(&self, values: &[f32], first_step: u32, last_step: u32) -> Result<f32> {
        let accum = self.options.accum;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            self.params.zero_grad();
            return Err(TrainError::NonFinite {
                step: u64::from(first_step) + (i / accum) as u64,
                loss: values[i],
                read: (u64::from(first_step), u64::from(last_step)),
                last_good: self.last_good.clone(),
            });
        }
        let mut interval_loss = 0.0f64;
        for step_values in values.chunks(accum) {
            let step_loss: f64 = step_values.iter().map(|&v| f64::from(v)).sum();
            interval_loss += step_loss / accum as f64;
        }
        let steps = values.len().div_ceil(accum).max(1);
        Ok((interval_loss / steps as f64) as f32)
    }

    /// `error` stopped step `step`: reads the losses still pending and reports the first
    /// non-finite one instead, if there is one (a NaN weight can make a later op fail);
    /// otherwise `error`.
    fn non_finite_first(
        &self,
        pending: &mut PendingLosses<B>,
        step: u32,
        error: TrainError,
    ) -> TrainError {
        let first_step = pending.first_step;
        match pending.read(step) {
            Ok(values) => match self.interval_loss(&values, first_step, step) {
                Err(e @ TrainError::NonFinite { .. }) => e,
                _ => error,
            },
            Err(_) => error,
        }
    }

    /// The validation loss, of the averaged weights when the run keeps an average.
    fn validate(&mut self, objective: &mut dyn Objective<B>) -> Result<Option<f32>> {
        if self.options.val_batches == 0 {
            return Ok(None);
        }
        let Some(ema) = &mut self.ema else {
            return Self::validate_current(&self.options, objective);
        };
        ema.swap(self.params)?;
        let loss = Self::validate_current(&self.options, objective);
        // The raw weights come back even when validation failed: training goes on from them.
        ema.swap(self.params)?;
        loss
    }

    fn validate_current(
        options: &TrainOptions,
        objective: &mut dyn Objective<B>,
    ) -> Result<Option<f32>> {
        no_grad(|| {
            // The batches' losses stay on the device and are read together.
            let mut losses = Vec::with_capacity(options.val_batches);
            for i in 0..options.val_batches {
                let Some(loss) = objective.val_loss(i)? else {
                    return Ok(None);
                };
                losses.push(loss.reshape(&[1])?);
            }
            let refs: Vec<&Tensor<B>> = losses.iter().collect();
            let values = Tensor::concat(&refs, 0)?.to_vec()?;
            let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
            Ok(Some((sum / options.val_batches as f64) as f32))
        })
    }

    /// Writes the checkpoint of the current state.
    pub fn checkpoint(
        &mut self,
        step: u32,
        loss: Option<f32>,
        val_loss: Option<f32>,
        elapsed: f64,
    ) -> Result<()> {
        let mut weights = pollster::block_on(self.params.to_host())?;
        let mut moments = pollster::block_on(self.optimizer.state_to_host(self.params))?;
        if let Some(ema) = &self.ema {
            // The model file holds the weights to use, the optimizer file the ones to train on.
            let raw =
                std::mem::replace(&mut weights, pollster::block_on(ema.to_host(self.params))?);
            for (name, tensor) in raw {
                moments.insert(format!("{name}.{}", crate::ema::RAW_SUFFIX), tensor);
            }
        }
        let mut meta = self.template.clone();
        meta.step = step;
        meta.loss = loss;
        meta.val_loss = val_loss;
        meta.elapsed_s = elapsed;
        meta.created_unix = now_unix();
        meta.options = self.options.clone();
        let dir = self.run.write_checkpoint(&meta, &weights, &moments)?;
        self.last_good = format!("{} (step {step})", dir.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::DataProvenance;
    use crate::run::ModelKind;
    use lemur_tensor::CpuBackend;
    use lemur_tensor::testing::gpu;
    use lemur_well::dataset::Stats;

    /// A two-weight model whose loss can be made NaN at one micro-batch and fail at a step;
    /// it records the host-device syncs counted before each micro-batch.
    struct Toy<B: Backend> {
        w: Tensor<B>,
        nan_at: Option<(u32, usize)>,
        fail_at: Option<u32>,
        syncs: Vec<(u32, usize, u64)>,
        /// Wall time each micro-batch takes (a slow model, for time limits).
        delay: std::time::Duration,
    }

    impl<B: Backend> Objective<B> for Toy<B> {
        fn train_loss(&mut self, step: u32, micro: usize) -> Result<Tensor<B>> {
            let b = self.w.backend().clone();
            self.syncs.push((step, micro, b.counters().syncs));
            std::thread::sleep(self.delay);
            if self.fail_at == Some(step) {
                return Err(TrainError::Options("toy failure".into()));
            }
            let x = [1.0 + 0.1 * step as f32 + 0.01 * micro as f32, -2.0];
            let x = Tensor::from_slice(&b, &x, &[2])?;
            let loss = self.w.mul(&x)?.add_scalar(0.5)?.square()?.mean_all()?;
            if self.nan_at == Some((step, micro)) {
                return Ok(loss.scale(f32::NAN)?);
            }
            Ok(loss)
        }

        fn val_loss(&mut self, index: usize) -> Result<Option<Tensor<B>>> {
            Ok(Some(self.w.square()?.mean_all()?.add_scalar(index as f32)?))
        }
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lemur-trainer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn options(accum: usize) -> TrainOptions {
        TrainOptions {
            steps: 12,
            batch: 1,
            accum,
            lr: 1e-2,
            checkpoint_every: 4,
            log_every: 4,
            val_batches: 2,
            ..TrainOptions::defaults()
        }
    }

    fn new_toy<B: Backend>(
        b: &B,
        nan_at: Option<(u32, usize)>,
        fail_at: Option<u32>,
    ) -> (Toy<B>, ParamStore<B>) {
        let mut params = ParamStore::new();
        let w = params.add(b, "w", &[0.3, -0.2], &[2]).unwrap();
        let toy = Toy {
            w,
            nan_at,
            fail_at,
            syncs: Vec::new(),
            delay: std::time::Duration::ZERO,
        };
        (toy, params)
    }

    /// Trains the toy from scratch in `dir`.
    fn train<B: Backend>(
        dir: &std::path::Path,
        o: TrainOptions,
        toy: &mut Toy<B>,
        params: &ParamStore<B>,
    ) -> Result<Summary> {
        train_limited(dir, o, toy, params, None, None)
    }

    /// A trainer of the toy, from scratch in `dir`, with nothing but the options set.
    fn toy_trainer<'a, B: Backend>(
        dir: &std::path::Path,
        o: TrainOptions,
        params: &'a ParamStore<B>,
    ) -> Result<Trainer<'a, B>> {
        Ok(Trainer {
            run: RunDir::create(dir)?,
            params,
            optimizer: o.optimizer(),
            ema: None,
            template: toy_meta(dir, &o),
            options: o,
            elapsed_before: 0.0,
            stop_after: None,
            time_limit: None,
            prior_rate: None,
            last_good: "none".into(),
            stop: None,
        })
    }

    /// [`train`] with a weight average and a stopping step.
    fn run_with<B: Backend>(
        dir: &std::path::Path,
        o: TrainOptions,
        toy: &mut Toy<B>,
        params: &ParamStore<B>,
        ema: Option<Ema<B>>,
        stop_after: Option<u32>,
    ) -> Result<Summary> {
        let mut trainer = toy_trainer(dir, o, params)?;
        trainer.ema = ema;
        trainer.stop_after = stop_after;
        trainer.train(toy)
    }

    /// [`train`] with a time limit in seconds.
    fn train_limited<B: Backend>(
        dir: &std::path::Path,
        o: TrainOptions,
        toy: &mut Toy<B>,
        params: &ParamStore<B>,
        time_limit: Option<f64>,
        prior_rate: Option<f64>,
    ) -> Result<Summary> {
        let mut trainer = toy_trainer(dir, o, params)?;
        trainer.time_limit = time_limit;
        trainer.prior_rate = prior_rate;
        trainer.train(toy)
    }

    /// The metadata a toy run's checkpoints carry.
    fn toy_meta(dir: &std::path::Path, o: &TrainOptions) -> CheckpointMeta {
        let stats = Stats {
            dataset_name: "toy".into(),
            channels: vec![],
            transforms: vec![],
            mean: vec![],
            std: vec![],
            frames: 0,
        };
        CheckpointMeta {
            format: crate::run::FORMAT.into(),
            kind: ModelKind::Autoencoder,
            step: 0,
            dir: String::new(),
            model_config: serde_json::json!({}),
            options: o.clone(),
            backend: "toy".into(),
            stats,
            data: DataProvenance {
                kind: "well".into(),
                root: dir.to_path_buf(),
                files: vec![],
                channels: vec![],
                grid: [1, 1],
            },
            extra: serde_json::Value::Null,
            git_revision: "unknown".into(),
            loss: None,
            val_loss: None,
            params: 2,
            elapsed_s: 0.0,
            created_unix: 0,
        }
    }

    fn reads_once_per_interval<B: Backend>(b: &B, tag: &str) {
        for accum in [1, 3] {
            let dir = scratch(&format!("sync-{tag}-{accum}"));
            let (mut toy, params) = new_toy(b, None, None);
            let summary = train(&dir, options(accum), &mut toy, &params).unwrap();
            assert_eq!(summary.step, 12);
            // Between two micro-batches of the same interval nothing was read back; the first
            // micro-batch after a log step follows the read (and validation, checkpoint).
            for pair in toy.syncs.windows(2) {
                let ((s0, _, c0), (s1, _, c1)) = (pair[0], pair[1]);
                let after_log = s1 != s0 && s0 % 4 == 0;
                assert_eq!(c1 > c0, after_log, "syncs before {pair:?}");
            }
            let log = RunDir::open(&dir).unwrap().read_log().unwrap();
            assert_eq!(log.iter().map(|l| l.step).collect::<Vec<_>>(), [4, 8, 12]);
            assert!(log.iter().all(|l| l.val_loss.is_some()));
            // The logged means are those of the steps' losses (logged one by one here).
            let each = scratch(&format!("sync-{tag}-{accum}-each"));
            let (mut toy, params) = new_toy(b, None, None);
            let o = TrainOptions {
                log_every: 1,
                ..options(accum)
            };
            train(&each, o, &mut toy, &params).unwrap();
            let steps = RunDir::open(&each).unwrap().read_log().unwrap();
            assert_eq!(steps.len(), 12);
            for (line, four) in log.iter().zip(steps.chunks(4)) {
                let mean = four.iter().map(|l| f64::from(l.loss)).sum::<f64>() / 4.0;
                assert!(
                    (f64::from(line.loss) - mean).abs() <= 1e-6 * mean.abs(),
                    "{line:?} {four:?}"
                );
            }
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir_all(&each);
        }
    }

    /// A run with `--ema`: its checkpoint's model file holds the average of the raw weights
    /// after each step (computed here from runs without an average stopped at each step), its
    /// optimizer file the raw weights, bit for bit those of a run without an average, and its
    /// validation losses are the average's.
    fn averages_the_weights<B: Backend>(b: &B) {
        let decay = 0.75f32;
        let raw_at = |k: u32| {
            let dir = scratch(&format!("ema-raw-{}-{k}", b.name()));
            let (mut toy, params) = new_toy(b, None, None);
            run_with(&dir, options(1), &mut toy, &params, None, Some(k)).unwrap();
            pollster::block_on(params.to_host()).unwrap()["w"].1.clone()
        };
        let mut want = vec![0.3f64, -0.2];
        let mut raw = Vec::new();
        for k in 1..=12 {
            raw = raw_at(k);
            for (a, &w) in want.iter_mut().zip(&raw) {
                *a = f64::from(decay) * *a + f64::from(1.0 - decay) * f64::from(w);
            }
        }
        let dir = scratch(&format!("ema-{}", b.name()));
        let (mut toy, params) = new_toy(b, None, None);
        let o = TrainOptions {
            ema: decay,
            ..options(1)
        };
        let ema = Ema::new(&params, decay).unwrap();
        let summary = run_with(&dir, o, &mut toy, &params, Some(ema), None).unwrap();
        assert_eq!(summary.step, 12);
        let read = |f: &str| {
            let path = dir.join("step-00000012").join(f);
            lemur_tensor::params::read_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap()
        };
        let model = read(crate::run::MODEL_FILE);
        for (i, (&g, &e)) in model["w"].1.iter().zip(&want).enumerate() {
            assert!((f64::from(g) - e).abs() < 1e-6, "w[{i}]: {g} vs {e}");
        }
        assert!(model["w"].1 != raw, "the average is the raw weights");
        let optimizer = read(crate::run::OPTIM_FILE);
        assert_eq!(optimizer["w.raw"].1, raw);
        assert!(optimizer.contains_key("w.exp_avg"));
        // Training left the raw weights in the parameters.
        assert_eq!(pollster::block_on(params.to_host()).unwrap()["w"].1, raw);
        // The toy's validation loss: mean(w^2) + the batch index, over batches 0 and 1.
        let avg: Vec<f64> = model["w"].1.iter().map(|&v| f64::from(v)).collect();
        let val = avg.iter().map(|v| v * v).sum::<f64>() / 2.0 + 0.5;
        let logged = RunDir::open(&dir).unwrap().read_log().unwrap();
        let last = logged.last().unwrap().val_loss.unwrap();
        assert!((f64::from(last) - val).abs() < 1e-5, "{last} vs {val}");
    }

    lemur_tensor::test_device!(a_run_with_ema_averages_the_weights, averages_the_weights);

    #[test]
    fn losses_are_read_once_per_log_interval_not_per_step_cpu() {
        reads_once_per_interval(&CpuBackend, "cpu");
    }

    #[test]
    fn losses_are_read_once_per_log_interval_not_per_step_gpu() {
        if let Some(b) = gpu() {
            reads_once_per_interval(&b, "gpu");
        }
    }

    fn non_finite_at_the_read<B: Backend>(b: &B, tag: &str) {
        for (accum, micro) in [(1, 0), (2, 1)] {
            let dir = scratch(&format!("nan-{tag}-{accum}"));
            let (mut toy, params) = new_toy(b, Some((6, micro)), None);
            let e = train(&dir, options(accum), &mut toy, &params).unwrap_err();
            match &e {
                TrainError::NonFinite {
                    step, read, loss, ..
                } => {
                    assert_eq!((*step, *read), (6, (5, 8)));
                    assert!(loss.is_nan());
                }
                other => panic!("expected a non-finite loss, got {other}"),
            }
            let text = e.to_string();
            assert!(
                text.contains("at step 6") && text.contains("steps 5-8"),
                "{text}"
            );
            // The steps after the NaN ran on the device; the read at step 8 stopped the run
            // before its log line and its checkpoint.
            assert_eq!(toy.syncs.last().unwrap().0, 8);
            let run = RunDir::open(&dir).unwrap();
            let steps: Vec<u32> = run.checkpoints().unwrap().iter().map(|c| c.0).collect();
            assert_eq!(steps, [4]);
            let log: Vec<u32> = run.read_log().unwrap().iter().map(|l| l.step).collect();
            assert_eq!(log, [4]);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_non_finite_loss_is_found_at_the_read_and_nothing_of_its_interval_is_written_cpu() {
        non_finite_at_the_read(&CpuBackend, "cpu");
    }

    #[test]
    fn a_non_finite_loss_is_found_at_the_read_and_nothing_of_its_interval_is_written_gpu() {
        if let Some(b) = gpu() {
            non_finite_at_the_read(&b, "gpu");
        }
    }

    #[test]
    fn a_failure_after_a_non_finite_loss_reports_the_loss() {
        let dir = scratch("nan-then-fail");
        let (mut toy, params) = new_toy(&CpuBackend, Some((5, 0)), Some(7));
        let e = train(&dir, options(1), &mut toy, &params).unwrap_err();
        assert!(
            matches!(
                e,
                TrainError::NonFinite {
                    step: 5,
                    read: (5, 7),
                    ..
                }
            ),
            "{e}"
        );
        // Without a NaN the failure itself is the error.
        let dir2 = scratch("fail");
        let (mut toy, params) = new_toy(&CpuBackend, None, Some(7));
        let e = train(&dir2, options(1), &mut toy, &params).unwrap_err();
        assert!(e.to_string().contains("toy failure"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }

    #[test]
    fn fitted_steps_fill_the_rest_of_the_limit_at_the_measured_rate() {
        let last = |f: Option<(u32, f64)>| f.map(|(last, _)| last);
        // From step 10: 10 steps in 60 s of a 600 s limit, 1/6 steps/s, 540 s left, 5% margin.
        let mut fit = TimeFit::new(600.0, 10, 10_000);
        assert_eq!(
            fit.fit(20, 50.0),
            None,
            "a tenth of the limit is measured first"
        );
        assert_eq!(last(fit.fit(20, 60.0)), Some(20 + 85));
        // Then again every tenth, at the rate since the last fit: here faster, 1 step/s.
        assert_eq!(fit.fit(50, 100.0), None);
        assert_eq!(last(fit.fit(80, 120.0)), Some(80 + 456));
        // And slower: 0.1 steps/s.
        assert_eq!(last(fit.fit(86, 180.0)), Some(86 + 39));
        // Never past the session's own end.
        assert_eq!(last(TimeFit::new(600.0, 10, 100).fit(20, 60.0)), Some(100));
        // The measuring window is at most 60 s.
        let mut long = TimeFit::new(36_000.0, 0, 100_000);
        assert_eq!(long.fit(30, 59.0), None);
        assert_eq!(long.fit(30, 60.0), Some((30 + 17_071, 0.5)));
        // Before any step, at the run's earlier rate: the whole limit, with the same margin.
        assert_eq!(TimeFit::new(600.0, 10, 10_000).fit_prior(0.5), 10 + 285);
        assert_eq!(TimeFit::new(600.0, 10, 100).fit_prior(0.5), 100);
        assert_eq!(TimeFit::new(600.0, 10, 10_000).fit_prior(0.0), 10);
        // Past the limit already: stop at this step.
        assert_eq!(
            last(TimeFit::new(600.0, 0, 10_000).fit(20, 700.0)),
            Some(20)
        );
    }

    /// The step and the schedule's end (`--steps`) of the latest checkpoint (read as JSON: the
    /// toy's statistics have no channels, which a real run's reader refuses).
    fn latest(dir: &std::path::Path) -> (u32, u32) {
        let text = std::fs::read_to_string(dir.join("checkpoint.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
        let step = meta["step"].as_u64().unwrap();
        (
            step as u32,
            meta["options"]["steps"].as_u64().unwrap() as u32,
        )
    }

    #[test]
    fn a_time_limit_ends_the_schedule_early_or_stops_the_run() {
        let o = TrainOptions {
            steps: 100_000,
            checkpoint_every: 1_000,
            ..options(1)
        };
        // A 1 s limit at 20 ms a step: the steps are fitted once a tenth of it has passed,
        // and the checkpoint records the schedule's new end.
        let dir = scratch("time-fit");
        let (mut toy, params) = new_toy(&CpuBackend, None, None);
        toy.delay = std::time::Duration::from_millis(20);
        let summary = train_limited(&dir, o.clone(), &mut toy, &params, Some(1.0), None).unwrap();
        let (step, steps) = latest(&dir);
        assert!(steps < 60, "{steps}");
        assert!(summary.fitted);
        assert_eq!(step, summary.step);
        if !summary.out_of_time {
            // The run ended where the fitted schedule does, at its final learning rate.
            assert_eq!(summary.step, steps);
            let log = RunDir::open(&dir).unwrap().read_log().unwrap();
            assert_eq!(log.last().unwrap().lr, o.min_lr);
        }
        // A limit shorter than one step: the first step is checkpointed and the run stops,
        // resumable, with its schedule untouched.
        let dir2 = scratch("time-stop");
        let (mut toy, params) = new_toy(&CpuBackend, None, None);
        toy.delay = std::time::Duration::from_millis(20);
        let summary =
            train_limited(&dir2, o.clone(), &mut toy, &params, Some(0.001), None).unwrap();
        assert!(summary.out_of_time && !summary.interrupted && !summary.fitted);
        assert_eq!(summary.step, 1);
        assert_eq!(latest(&dir2), (1, 100_000));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }

    /// A resumed run's earlier rate fits the schedule at the first step: at 1 step/s a 10 s
    /// session ends at step 9 (with the 5% margin), annealed, long before its own rate could
    /// be measured (a tenth of the limit, 1 s). Without the prior the first 1 s of steps
    /// would run on the 100,000-step schedule, near the peak learning rate.
    #[test]
    fn a_prior_rate_fits_the_schedule_from_the_first_step() {
        let o = TrainOptions {
            steps: 100_000,
            checkpoint_every: 1_000,
            ..options(1)
        };
        let dir = scratch("time-prior");
        let (mut toy, params) = new_toy(&CpuBackend, None, None);
        toy.delay = std::time::Duration::from_millis(5);
        let summary =
            train_limited(&dir, o.clone(), &mut toy, &params, Some(10.0), Some(1.0)).unwrap();
        assert_eq!(summary.step, 9);
        assert!(!summary.out_of_time && !summary.interrupted);
        assert_eq!(latest(&dir), (9, 9));
        let fitted = TrainOptions { steps: 9, ..o }.adamw().schedule;
        let log = RunDir::open(&dir).unwrap().read_log().unwrap();
        for line in &log {
            assert_eq!(line.lr, fitted.lr(line.step), "step {}", line.step);
        }
        assert_eq!(log.last().unwrap().lr, o.min_lr);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The prior is the median rate of the log's last lines up to the checkpoint resumed, per
    /// step, and only on the backend that checkpoint was trained on.
    #[test]
    fn the_prior_rate_is_the_last_sessions_median_on_the_same_backend() {
        let dir = scratch("measured-rate");
        let o = TrainOptions {
            batch: 2,
            accum: 2,
            ..options(1)
        };
        let run = RunDir::create(&dir).unwrap();
        // Ten lines to step 100, one slowed by a checkpoint, and one past the checkpoint (a
        // torn session) that does not count.
        let rates = [1.0, 1.0, 40.0, 44.0, 8.0, 40.0, 48.0, 36.0, 44.0, 40.0, 1e6];
        for (i, &samples_per_s) in rates.iter().enumerate() {
            let line = LogLine {
                step: 10 * (i as u32 + 1),
                loss: 1.0,
                val_loss: None,
                lr: 1e-3,
                samples_per_s,
                elapsed_s: i as f64,
            };
            run.append_log(&line).unwrap();
        }
        let meta = CheckpointMeta {
            step: 100,
            ..toy_meta(&dir, &o)
        };
        let start = |resumed: Option<CheckpointMeta>| crate::session::Start {
            run: run.clone(),
            model_config: serde_json::json!({}),
            options: o.clone(),
            resumed,
            init: None,
        };
        // The last 8 lines to step 100: 40 44 8 40 48 36 44 40, median 40 samples/s, 4 a step.
        let rate = crate::session::measured_rate(&start(Some(meta.clone())), "toy");
        assert_eq!(rate, Some(10.0));
        assert_eq!(
            crate::session::measured_rate(&start(Some(meta)), "cpu (2 threads)"),
            None
        );
        assert_eq!(crate::session::measured_rate(&start(None), "toy"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
