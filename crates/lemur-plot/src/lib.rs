//! Images for lemur: colour-mapped fields ([`field_image`]), rows of titled panels with colour
//! bars ([`Panel`], [`panels`]), line plots ([`LinePlot`]), and PNG / animated GIF files written
//! atomically (a temporary file in the same directory, then a rename).
//!
//! Everything draws into an RGBA8 [`Image`] in plain Rust, with an embedded 8x8 bitmap font,
//! so it works the same natively and in wasm and needs no system fonts.

mod colormap;
mod encode;
mod image;
mod plot;

pub use colormap::Colormap;
pub use encode::{encode_gif, encode_png, write_gif, write_png};
pub use image::{
    BLACK, GREY, Image, Panel, Rgba, WHITE, colour_bar, field_image, format_tick, nice_ticks,
    panels, text_width,
};
pub use plot::{LinePlot, Series, palette};

/// Errors of writing images; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: PNG encoding failed: {detail}")]
    Png {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("{path}: GIF encoding failed: {detail}")]
    Gif {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

pub type Result<T, E = PlotError> = std::result::Result<T, E>;
