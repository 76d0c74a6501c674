//! Runs trained with the reference implementation (PolymathicAI/lola), brought to lemur.
//!
//! - [`pth`]: `torch.save` state dicts read without Python by a restricted pickle machine.
//! - [`config`]: the run's `config.yaml` (model block, dataset statistics, trajectory).
//! - [`import`]: the conversion to an ordinary lemur run (`lemur import lola`).

pub mod config;
mod error;
pub mod import;
pub mod pth;

pub use error::{LolaError, Result};
