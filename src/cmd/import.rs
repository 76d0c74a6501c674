//! `lemur import lola RUN_DIR --out RUN`: a run trained with the reference implementation
//! (PolymathicAI/lola) as an ordinary lemur run (see `crates/lemur-lola`).

use std::path::PathBuf;

use anyhow::{Result, bail};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum ImportCommand {
    /// A run of the reference implementation (PolymathicAI/lola): an autoencoder, diffusion or
    /// surrogate run directory with config.yaml and state.pth (or state_best.pth).
    Lola(LolaArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct LolaArgs {
    /// The reference run directory.
    pub run_dir: PathBuf,
    /// The lemur run directory to create (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// The autoencoder of a diffusion or surrogate run: a lemur run, or a reference autoencoder
    /// run (imported beside --out as `autoencoder`). Default: an autoencoder run already next
    /// to --out, else the run's `autoencoder` link, else its `ae_run`.
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    /// The physical grid HxW of the data (e.g. 512x512), recorded for rollouts on simulated
    /// truths and the app; the reference's configuration does not hold it. Default: The
    /// Well's grid of the dataset's physics where known.
    #[arg(long, value_parser = parse_grid)]
    pub grid: Option<[usize; 2]>,
}

fn parse_grid(s: &str) -> Result<[usize; 2], String> {
    let parts: Vec<&str> = s.split(['x', 'X', ',']).collect();
    match parts[..] {
        [h, w] => match (h.trim().parse::<usize>(), w.trim().parse::<usize>()) {
            (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok([h, w]),
            _ => Err(format!(
                "{s:?}: expected HxW with positive integers, e.g. 512x512"
            )),
        },
        _ => Err(format!("{s:?}: expected HxW, e.g. 512x512")),
    }
}

pub fn run(command: ImportCommand) -> Result<()> {
    let ImportCommand::Lola(args) = command;
    if args.run_dir.join("checkpoint.json").is_file() {
        bail!(
            "{} is already a lemur run (it has checkpoint.json); `lemur import lola` takes a \
             reference run directory with config.yaml and state.pth",
            args.run_dir.display()
        );
    }
    let done = lemur_lola::import::import(&lemur_lola::import::ImportArgs {
        src: args.run_dir.clone(),
        out: args.out.clone(),
        autoencoder: args.autoencoder.clone(),
        grid: args.grid,
    })?;
    if let Some(ae) = &done.imported_autoencoder {
        report(ae);
    }
    report(&done);
    Ok(())
}

fn report(done: &lemur_lola::import::Imported) {
    println!(
        "imported the {} run {} ({} tensors, {} parameters) to {}",
        done.kind,
        done.state.display(),
        done.tensors,
        done.params,
        done.out.display()
    );
    if let Some((ae, how)) = &done.autoencoder {
        println!("  autoencoder: {} (from {how})", ae.display());
    }
    for note in &done.notes {
        println!("  note: {note}");
    }
}
