//! The Well's layout as plain Rust values, independent of how it is stored.

use serde::{Deserialize, Serialize};

/// The geometric boundary type of one axis, as The Well's `bc_type` attribute names it.
///
/// The numeric [`code`](BoundaryType::code) is the conditioning label the models see; it
/// follows The Well's own `BoundaryCondition` enum so labels agree with data prepared by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoundaryType {
    Wall,
    Open,
    Periodic,
}

impl BoundaryType {
    /// WALL = 0, OPEN = 1, PERIODIC = 2.
    pub fn code(self) -> f32 {
        match self {
            BoundaryType::Wall => 0.0,
            BoundaryType::Open => 1.0,
            BoundaryType::Periodic => 2.0,
        }
    }

    /// The spelling written to `bc_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundaryType::Wall => "WALL",
            BoundaryType::Open => "OPEN",
            BoundaryType::Periodic => "PERIODIC",
        }
    }

    /// Case-insensitive, because The Well's documentation writes `'periodic'` while its files
    /// hold `'PERIODIC'`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "WALL" => Some(BoundaryType::Wall),
            "OPEN" => Some(BoundaryType::Open),
            "PERIODIC" => Some(BoundaryType::Periodic),
            _ => None,
        }
    }
}

/// One `boundary_conditions/<name>` group.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundaryCondition {
    pub name: String,
    /// `associated_dims`: the spatial dimensions this condition applies along.
    pub dims: Vec<String>,
    pub bc_type: BoundaryType,
    /// `mask`: true on the grid points where the condition is imposed.
    pub mask: Vec<bool>,
}

/// A field of tensor order 0 (scalar), 1 (vector) or 2 (matrix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub order: usize,
}

/// One dataset of the `scalars` group.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub name: String,
    pub values: Vec<f64>,
    pub time_varying: bool,
    pub sample_varying: bool,
}

/// Everything in a Well file except the field arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct WellMeta {
    pub dataset_name: String,
    pub grid_type: String,
    pub n_spatial_dims: usize,
    pub n_trajectories: usize,
    /// `dimensions@spatial_dims`, e.g. `["x", "y"]`: the order of the spatial axes of every
    /// array and of every vector's components.
    pub spatial_dims: Vec<String>,
    pub time: Vec<f64>,
    /// Cell-centre coordinates, one vector per spatial dimension.
    pub coords: Vec<Vec<f64>>,
    /// t0 fields first, then t1, then t2, each group in its `field_names` order.
    pub fields: Vec<Field>,
    pub scalars: Vec<Scalar>,
    /// Root `simulation_parameters` with the value of each one's root attribute.
    pub simulation_parameters: Vec<(String, f64)>,
    pub boundary_conditions: Vec<BoundaryCondition>,
}

impl WellMeta {
    pub fn n_steps(&self) -> usize {
        self.time.len()
    }

    pub fn spatial_shape(&self) -> Vec<usize> {
        self.coords.iter().map(Vec::len).collect()
    }

    /// Number of grid points in one frame of one channel.
    pub fn frame_points(&self) -> usize {
        self.spatial_shape().iter().product()
    }

    /// Channel names in storage order: t0 fields, then each t1 field's components
    /// (`momentum_x`, `momentum_y`), then each t2 field's (`stress_xx`, `stress_xy`, ...),
    /// components in `spatial_dims` order.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for field in &self.fields {
            for suffix in component_suffixes(&self.spatial_dims, field.order) {
                if suffix.is_empty() {
                    names.push(field.name.clone());
                } else {
                    names.push(format!("{}_{}", field.name, suffix));
                }
            }
        }
        names
    }

    pub fn n_channels(&self) -> usize {
        let d = self.n_spatial_dims;
        self.fields.iter().map(|f| d.pow(f.order as u32)).sum()
    }

    /// For each channel, the field it belongs to and its component index.
    pub fn channel_fields(&self) -> Vec<(usize, usize)> {
        let d = self.n_spatial_dims;
        let mut out = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            for c in 0..d.pow(f.order as u32) {
                out.push((i, c));
            }
        }
        out
    }

    /// The boundary type along spatial axis `axis`: the condition whose `associated_dims`
    /// names that axis.
    pub fn axis_boundary(&self, axis: usize) -> Option<BoundaryType> {
        let dim = self.spatial_dims.get(axis)?;
        self.boundary_conditions
            .iter()
            .find(|bc| bc.dims.iter().any(|d| d == dim))
            .map(|bc| bc.bc_type)
    }

    /// Scalars that vary neither over time nor between trajectories: these are what a model
    /// can be conditioned on.
    pub fn constant_scalars(&self) -> Vec<(String, f64)> {
        self.scalars
            .iter()
            .filter(|s| !s.time_varying && !s.sample_varying && !s.values.is_empty())
            .map(|s| (s.name.clone(), s.values[0]))
            .collect()
    }
}

fn component_suffixes(dims: &[String], order: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    for _ in 0..order {
        out = out
            .iter()
            .flat_map(|prefix| dims.iter().map(move |d| format!("{prefix}{d}")))
            .collect();
    }
    out
}
