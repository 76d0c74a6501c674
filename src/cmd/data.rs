//! `lemur data info`: describe a Well-layout dataset, ours or The Well's own.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lemur_well::WellFile;
use lemur_well::dataset::{SPLITS, Stats, data_dir, labels, split_files};

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Describe a Well-layout dataset: a dataset directory (`<name>` holding `data/`), a
    /// split directory, or a single `.hdf5` file.
    Info { path: PathBuf },
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Info { path } => info(&path),
    }
}

fn info(path: &Path) -> anyhow::Result<()> {
    if path.is_file() {
        let file = WellFile::open(path)?;
        describe_file(&file);
        return Ok(());
    }
    anyhow::ensure!(
        path.is_dir(),
        "{}: no such file or directory",
        path.display()
    );
    let mut splits = Vec::new();
    for split in SPLITS {
        let files = split_files(path, split)?;
        if !files.is_empty() {
            splits.push((split.to_string(), files));
        }
    }
    if splits.is_empty() {
        // A split directory itself, or any directory of files.
        let files = split_files(
            path.parent().unwrap_or(path),
            &path.file_name().unwrap_or_default().to_string_lossy(),
        )?;
        anyhow::ensure!(
            !files.is_empty(),
            "{}: no .hdf5 files and no train/valid/test splits",
            path.display()
        );
        splits.push((path.display().to_string(), files));
    }
    println!("dataset: {}", data_dir(path).display());
    let mut first = None;
    for (split, files) in &splits {
        let mut trajectories = 0;
        let mut frames = 0;
        for f in files {
            let file = WellFile::open(f).with_context(|| format!("split {split}"))?;
            trajectories += file.meta().n_trajectories;
            frames += file.meta().n_trajectories * file.meta().n_steps();
            first.get_or_insert(file);
        }
        println!(
            "split {split}: {} files, {trajectories} trajectories, {frames} frames",
            files.len()
        );
    }
    if let Some(file) = &first {
        println!("first file: {}", file.path().display());
        describe_file(file);
    }
    match Stats::load(path) {
        Ok(stats) => {
            println!(
                "statistics ({} training frames, after the transform):",
                stats.frames
            );
            for (i, name) in stats.channels.iter().enumerate() {
                println!(
                    "  {name:<20} {:<8} mean {:>12.6} std {:>12.6}",
                    format!("{:?}", stats.transforms[i]).to_lowercase(),
                    stats.mean[i],
                    stats.std[i]
                );
            }
        }
        Err(_) => println!("statistics: none ({} absent)", Stats::path(path).display()),
    }
    Ok(())
}

fn describe_file(file: &WellFile) {
    let m = file.meta();
    let shape: Vec<String> = m.spatial_shape().iter().map(|n| n.to_string()).collect();
    println!(
        "name: {}  grid: {} ({})",
        m.dataset_name,
        shape.join(" x "),
        m.grid_type
    );
    println!("axes: {}", m.spatial_dims.join(", "));
    println!(
        "trajectories: {}  steps: {}  time: {:.4} .. {:.4}",
        m.n_trajectories,
        m.n_steps(),
        m.time.first().copied().unwrap_or(0.0),
        m.time.last().copied().unwrap_or(0.0)
    );
    let d = m.n_spatial_dims;
    for f in &m.fields {
        let mut dims = vec![m.n_trajectories, m.n_steps()];
        dims.extend(m.spatial_shape());
        dims.extend(std::iter::repeat_n(d, f.order));
        let dims: Vec<String> = dims.iter().map(|n| n.to_string()).collect();
        println!(
            "field t{} {:<16} [{}] (as read: trajectories, steps, grid, components)",
            f.order,
            f.name,
            dims.join(", ")
        );
    }
    println!("channels: {}", m.channel_names().join(", "));
    for s in &m.scalars {
        let varying = match (s.sample_varying, s.time_varying) {
            (false, false) => String::new(),
            (sv, tv) => format!(
                " (varies{}{})",
                if sv { " by trajectory" } else { "" },
                if tv { " in time" } else { "" }
            ),
        };
        println!(
            "scalar {} = {}{varying}",
            s.name,
            s.values.first().copied().unwrap_or(f64::NAN)
        );
    }
    for bc in &m.boundary_conditions {
        println!(
            "boundary {}: {} along {}",
            bc.name,
            bc.bc_type.as_str(),
            bc.dims.join(", ")
        );
    }
    let labels: Vec<String> = labels(m).iter().map(|v| format!("{v:.4}")).collect();
    println!("labels: [{}]", labels.join(", "));
}
