//! lemur's headless training: `lemur train autoencoder|diffusion|surrogate` and `lemur encode`.
//!
//! - [`run`]: the run directory (atomic checkpoints behind a pointer, `log.jsonl`).
//! - [`session`]: starting or resuming a run, with the configuration checks.
//! - [`trainer`]: the loop (accumulation, AdamW + cosine schedule, clipping, validation,
//!   non-finite loss detection, progress).
//! - [`ema`]: the exponential moving average of the weights (`--ema`).
//! - [`batch`]: batches as pure functions of `(seed, step, micro-batch)`.
//! - [`autoencoder`]: the DCAE on dataset frames.
//! - [`emulator`]: the diffusion denoiser and the surrogate on windows of a latent cache.
//! - [`emulate`]: a trained run end to end: encode, roll out (ensembles), decode.
//! - [`evaluation`]: metrics per field and lead time averaged over trajectories (`lemur eval`).
//!
//! See the crate's README for the commands, the directory layout and the resume semantics.

pub mod autoencoder;
pub mod batch;
pub mod bench;
pub mod ema;
pub mod emulate;
pub mod emulator;
mod error;
pub mod evaluation;
pub mod latents;
mod models;
pub mod options;
pub mod provenance;
pub mod run;
pub mod session;
pub mod trainer;

pub use error::{Result, TrainError};
pub use options::{Overrides, TrainOptions};
pub use run::{CheckpointMeta, LogLine, ModelKind, RunDir};
pub use session::{CommonArgs, ConfigSource};
pub use trainer::Summary;
