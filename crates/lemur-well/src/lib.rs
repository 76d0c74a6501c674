//! The Well's HDF5 layout, read and written in pure Rust, and the training datasets built on it.
//!
//! - [`WellFile`] opens a Well-layout file (ours or The Well's own) and reads one
//!   (trajectory, time) frame at a time as `[C, X, Y]` channels-first `f32`.
//! - [`write_file`] writes solver trajectories ([`TrajectoryData`]) in the same layout.
//! - [`dataset`] handles the `<name>/data/{train,valid,test}/*.hdf5` directory layout,
//!   normalisation statistics, windows, conditioning labels and augmentations.
//!
//! See the crate's README for the layout and every convention.

mod error;
mod format;
mod read;
mod write;

pub mod dataset;
pub mod testing;

pub use error::{Result, WellError};
pub use format::{BoundaryCondition, BoundaryType, Field, Scalar, WellMeta};
pub use read::WellFile;
pub use write::{TrajectoryData, to_bytes, write_file};
