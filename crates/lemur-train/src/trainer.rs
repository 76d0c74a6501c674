//! The training loop shared by every model: gradient accumulation, AdamW or SOAP with the
//! cosine schedule, non-finite loss detection, validation, checkpoints, the JSONL log and
//! progress.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lemur_tensor::{Backend, Optimizer, ParamStore, Tensor, no_grad};

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
    pub options: TrainOptions,
    /// Metadata of the checkpoints to write (step, losses and timing are filled in).
    pub template: CheckpointMeta,
    /// Training time of earlier sessions of the run, in seconds.
    pub elapsed_before: f64,
    /// Stop (with a checkpoint) after this step instead of `options.steps`: as if the run had
    /// been interrupted there.
    pub stop_after: Option<u32>,
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
        let end = self.stop_after.map_or(o.steps, |s| s.min(o.steps));
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
        let (mut interval_loss, mut interval_steps) = (0.0f64, 0u32);
        let mut summary = Summary {
            step: start,
            first_loss: None,
            last_loss: None,
            val_loss: None,
            samples_per_s: 0.0,
            interrupted: false,
        };
        let samples = o.samples_per_step() as f64;

        for step in start + 1..=end {
            let mut step_loss = 0.0f64;
            for micro in 0..o.accum {
                let loss = objective.train_loss(step, micro)?;
                let scaled = if o.accum > 1 {
                    loss.scale(1.0 / o.accum as f32)?
                } else {
                    loss.clone()
                };
                scaled.backward()?;
                let value = loss.item()?;
                if !value.is_finite() {
                    self.params.zero_grad();
                    bar.abandon();
                    return Err(TrainError::NonFinite {
                        step: u64::from(step),
                        loss: value,
                        last_good: self.last_good.clone(),
                    });
                }
                step_loss += f64::from(value);
            }
            let lr = o.adamw().schedule.lr(step);
            self.optimizer.step(self.params)?;
            interval_loss += step_loss / o.accum as f64;
            interval_steps += 1;
            bar.set_position(u64::from(step));

            // An interrupt is only looked at between steps, so the checkpoint it writes is of
            // a whole step, exactly what an uninterrupted run had at that point.
            let interrupted =
                step < end && self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
            // The last step always checkpoints, so a finished (or stopped) run is resumable.
            let checkpoint = step % o.checkpoint_every == 0 || step == end || interrupted;
            if step % o.log_every == 0 || checkpoint {
                let loss = (interval_loss / f64::from(interval_steps)) as f32;
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
                interval_loss = 0.0;
                interval_steps = 0;
                interval_start = Instant::now();
            }
            summary.step = step;
            if interrupted {
                summary.interrupted = true;
                bar.abandon();
                return Ok(summary);
            }
        }
        bar.finish();
        Ok(summary)
    }

    fn validate(&self, objective: &mut dyn Objective<B>) -> Result<Option<f32>> {
        if self.options.val_batches == 0 {
            return Ok(None);
        }
        no_grad(|| {
            let mut sum = 0.0f64;
            for i in 0..self.options.val_batches {
                let Some(loss) = objective.val_loss(i)? else {
                    return Ok(None);
                };
                sum += f64::from(loss.item()?);
            }
            Ok(Some((sum / self.options.val_batches as f64) as f32))
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
        let weights = pollster::block_on(self.params.to_host())?;
        let moments = pollster::block_on(self.optimizer.state_to_host(self.params))?;
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
