//! lemur's models, generic over the tensor backend: the DCAE autoencoder (DESIGN.md section 2),
//! the ViT backbone (section 3), the EDM denoiser and its schedules (section 4) and the
//! deterministic surrogate (section 5), and the samplers that run the denoiser in reverse. Parameter names, shapes and layouts are the reference
//! implementation's, so its checkpoints load.

pub mod dcae;
pub mod diffusion;
mod error;
pub mod nn;
pub mod rollout;
pub mod sampling;
pub mod surrogate;
pub mod vit;

pub use error::{Error, Result};
