//! Renders sample figures into a directory, with timings:
//! `cargo run --release -p lemur-viz --example demo -- /tmp/viz-demo`.

use std::time::Instant;

use lemur_viz::{
    Colormap, Figure, LinePlot, Panel, PanelGroup, Series, default_colour, write_gif, write_png,
};

/// A smooth, moving test field on an `n` x `n` grid.
fn field(n: usize, t: f32, phase: f32) -> Vec<f32> {
    (0..n * n)
        .map(|i| {
            let (y, x) = ((i / n) as f32 / n as f32, (i % n) as f32 / n as f32);
            let v = (6.3 * (x + 0.1 * t) + phase).sin() * (6.3 * y).cos();
            1.0 + 0.5 * v + 0.2 * (25.0 * x * y + t).sin()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("viz-demo".into()));
    std::fs::create_dir_all(&dir)?;
    let n = 128;
    let mut frames = Vec::new();
    let start = Instant::now();
    for step in 0..10 {
        let t = step as f32;
        let truth = field(n, t, 0.0);
        let members: Vec<Vec<f32>> = (0..4).map(|m| field(n, t, 0.05 * m as f32 * t)).collect();
        let mean: Vec<f32> = (0..n * n)
            .map(|i| members.iter().map(|m| m[i]).sum::<f32>() / 4.0)
            .collect();
        let error: Vec<f32> = mean.iter().zip(&truth).map(|(m, u)| m - u).collect();
        let spread: Vec<f32> = (0..n * n)
            .map(|i| {
                (members
                    .iter()
                    .map(|m| (m[i] - mean[i]).powi(2))
                    .sum::<f32>()
                    / 3.0)
                    .sqrt()
            })
            .collect();
        let figure = Figure::new(format!("density  t = {step}"))
            .group(PanelGroup::new(
                vec![
                    Panel::new("truth", &truth, n, n),
                    Panel::new("ensemble mean", &mean, n, n),
                    Panel::new("member 1", &members[1], n, n),
                ],
                Colormap::Viridis,
                0.2,
                1.8,
                true,
            ))
            .group(PanelGroup::auto(
                vec![Panel::new("error", &error, n, n)],
                Colormap::RdBuR,
                true,
            ))
            .group(PanelGroup::auto(
                vec![Panel::new("spread", &spread, n, n)],
                Colormap::Magma,
                true,
            ));
        frames.push(figure.render());
    }
    println!(
        "render 10 frames: {:?} ({}x{})",
        start.elapsed(),
        frames[0].width,
        frames[0].height
    );
    let start = Instant::now();
    write_png(dir.join("frame.png"), &frames[9])?;
    println!("png: {:?}", start.elapsed());
    let start = Instant::now();
    write_gif(dir.join("rollout.gif"), &frames, 20)?;
    println!("gif 10 frames: {:?}", start.elapsed());

    let lead: Vec<f64> = (0..=40).map(f64::from).collect();
    let vrmse = LinePlot::new("VRMSE against lead time")
        .x_label("lead time (steps)")
        .y_label("VRMSE")
        .log_y(true)
        .series(Series::new(
            "diffusion",
            lead.iter().map(|&t| (t, 0.02 * (1.0 + 0.15 * t))).collect(),
            default_colour(0),
        ))
        .series(Series::new(
            "deterministic",
            lead.iter()
                .map(|&t| (t, 0.015 * (1.0 + 0.25 * t)))
                .collect(),
            default_colour(1),
        ))
        .series(
            Series::new(
                "autoencoder floor",
                vec![(0.0, 0.012), (40.0, 0.012)],
                default_colour(2),
            )
            .dashed(),
        );
    write_png(dir.join("vrmse.png"), &vrmse.render(560, 360))?;
    let skill = LinePlot::new("spread-skill against lead time")
        .x_label("lead time (steps)")
        .y_label("spread / RMSE")
        .series(Series::new(
            "diffusion",
            lead.iter()
                .map(|&t| (t, 0.6 + 0.3 * (t / 40.0).sqrt()))
                .collect(),
            default_colour(0),
        ))
        .series(
            Series::new(
                "calibrated",
                vec![(0.0, 1.0), (40.0, 1.0)],
                Colormap::Greys.map(0.3).into(),
            )
            .dashed(),
        );
    write_png(dir.join("spread_skill.png"), &skill.render(560, 360))?;
    let k: Vec<f64> = (1..=64).map(f64::from).collect();
    let spectra = LinePlot::new("power spectra")
        .x_label("wavenumber")
        .y_label("power")
        .log_x(true)
        .log_y(true)
        .series(Series::new(
            "truth",
            k.iter().map(|&k| (k, k.powf(-5.0 / 3.0))).collect(),
            default_colour(0),
        ))
        .series(Series::new(
            "prediction",
            k.iter()
                .map(|&k| (k, k.powf(-5.0 / 3.0) * (-k / 30.0).exp()))
                .collect(),
            default_colour(3),
        ));
    write_png(dir.join("spectra.png"), &spectra.render(560, 360))?;
    println!("wrote {}", dir.display());
    Ok(())
}
