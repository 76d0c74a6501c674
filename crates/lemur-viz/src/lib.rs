//! Images of fluid fields and metrics for lemur, in plain Rust.
//!
//! Everything draws into an RGBA8 [`Image`] with an embedded 5x7 bitmap font (scaled by
//! whole pixels), so no font files, system libraries or GPU are needed. The crate is laid out
//! as:
//!
//! - [`Rgba`], [`Colormap`]: colours and colour maps (`Viridis` for fields and
//!   ensemble means, `Magma`/`Inferno` for spread, diverging `RdBuR` for signed errors) built
//!   from control points with linear interpolation; NaN and infinities are [`NAN_COLOUR`].
//! - [`Image`]: rectangles, 1 px solid or dashed lines, blits and text ([`text_width`]).
//! - [`field_image`], [`colour_bar`], [`Figure`] / [`panels`]: colour-mapped fields upscaled
//!   by whole pixels, vertical colour bars with nice tick labels, and a row of titled panels
//!   under a title line, e.g. `truth | ensemble mean | member | error | spread`.
//! - [`LinePlot`] / [`Series`]: line plots with linear or log axes, grid, dashed lines and a
//!   legend (VRMSE and spread-skill against lead time, power spectra).
//! - [`nice_ticks`], [`log_ticks`], [`format_tick`]: tick values and compact labels.
//! - [`encode_png`], [`write_png`], [`encode_gif`], [`write_gif`]: PNG and looping animated
//!   GIF, written atomically (temporary file in the same directory, then renamed); errors
//!   ([`VizError`]) name the file.
//!
//! ```
//! use lemur_viz::{Colormap, field_image, encode_png};
//! let data: Vec<f32> = (0..64).map(|i| i as f32).collect();
//! let image = field_image(&data, 8, 8, Colormap::Viridis, 0.0, 63.0, 4);
//! assert_eq!((image.width, image.height), (32, 32));
//! let png = encode_png(&image).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

mod colour;
mod encode;
mod field;
mod font;
mod image;
mod plot;
mod ticks;

pub use colour::{Colormap, NAN_COLOUR, Rgba};
pub use encode::{
    EncodeError, VizError, encode_gif, encode_png, write_atomic, write_gif, write_png,
};
pub use field::{
    Figure, Panel, PanelGroup, colour_bar, field_image, finite_range, panels, symmetric_range,
};
pub use image::{Image, text_height, text_width};
pub use plot::{COLOUR_CYCLE, LinePlot, Rect, Series, default_colour};
pub use ticks::{
    format_sig, format_tick, format_ticks, log_minor_ticks, log_ticks, nice_bounds, nice_step,
    nice_ticks, widen_range,
};
