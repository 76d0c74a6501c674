//! `lemur encode`: encode every split of a dataset with a trained autoencoder into a latent
//! cache for the emulators (see `crates/lemur-train/README.md`).

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args, Clone, Debug)]
pub struct EncodeArgs {
    /// The autoencoder: a run directory (its latest checkpoint), one checkpoint directory, or
    /// an embedded one (`pretrained-autoencoder`, `pretrained-rb-autoencoder`).
    #[arg(long)]
    pub autoencoder: PathBuf,
    /// The dataset directory (with stats.json).
    #[arg(long)]
    pub data: PathBuf,
    /// The latent cache directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Augmented copies of each training trajectory, under random symmetries of the data.
    #[arg(long, default_value_t = 0)]
    pub augment: usize,
    /// Seed of the augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Frames per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Backend: gpu, cpu or auto [default: $LEMUR_BACKEND, else auto].
    #[arg(long)]
    pub backend: Option<String>,
}

pub fn run(args: EncodeArgs) -> Result<()> {
    super::common::check_out_dir(&args.out)?;
    let start = std::time::Instant::now();
    let manifest = lemur_train::latents::encode(&lemur_train::latents::EncodeArgs {
        autoencoder: super::pretrained::resolve_autoencoder(&args.autoencoder)?,
        data: args.data,
        out: args.out.clone(),
        augment: args.augment,
        seed: args.seed,
        batch: args.batch,
        backend: super::common::backend_kind(args.backend.as_deref())?,
    })?;
    let counts: Vec<String> = manifest
        .splits
        .iter()
        .map(|(k, s)| format!("{k} {}", s.trajectories.len()))
        .collect();
    println!(
        "encoded trajectories ({}) to latents {:?} in {} in {:.2} s",
        counts.join(", "),
        manifest.latent_shape,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
