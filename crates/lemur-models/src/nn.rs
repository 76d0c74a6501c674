//! Building blocks shared by the models: a parameter builder that names tensors with the
//! reference's `state_dict` keys and initialises them reproducibly, `Linear` and `Conv2d`.

use lemur_tensor::{Backend, ParamStore, Tensor, rng};

use crate::error::{Error, Result};

/// Creates parameters under a dotted prefix (`encoder.descent.0.0` ...). Initial values come
/// from the counter-based stream of `seed` mixed with the parameter's full name, so a model's
/// initialisation does not depend on construction order and is identical on every backend.
pub struct Builder<'a, B: Backend> {
    pub backend: B,
    store: &'a mut ParamStore<B>,
    prefix: String,
    seed: u64,
    /// The most scalars the store may hold, and why (see [`Builder::with_limit`]).
    limit: Option<(usize, &'static str)>,
}

fn name_hash(name: &str) -> u64 {
    // FNV-1a: stable across platforms and Rust versions.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl<'a, B: Backend> Builder<'a, B> {
    pub fn new(backend: &B, store: &'a mut ParamStore<B>, seed: u64) -> Self {
        Self {
            backend: backend.clone(),
            store,
            prefix: String::new(),
            seed,
            limit: None,
        }
    }

    /// A builder that refuses, before allocating, any parameter that would take the store
    /// past `max_params` scalars. Models built from a configuration read from a file use it
    /// with the number of values the weights file holds: a corrupt configuration with huge
    /// sizes is then an error instead of an allocation sized by an unchecked number.
    pub fn with_limit(
        backend: &B,
        store: &'a mut ParamStore<B>,
        seed: u64,
        max_params: usize,
    ) -> Self {
        Self {
            limit: Some((max_params, "the values its weights hold")),
            ..Self::new(backend, store, seed)
        }
    }

    /// A builder for a model about to be trained: it refuses, before allocating, a model
    /// larger than `max_params` scalars, the most that the machine's memory can train (the
    /// caller counts the weights, their gradients and the optimizer's moments).
    pub fn with_memory_limit(
        backend: &B,
        store: &'a mut ParamStore<B>,
        seed: u64,
        max_params: usize,
    ) -> Self {
        Self {
            limit: Some((
                max_params,
                "the values this machine's free memory can train",
            )),
            ..Self::new(backend, store, seed)
        }
    }

    /// The number of values of a parameter of `shape`, checked against overflow and the
    /// limit.
    fn numel(&self, name: &str, shape: &[usize]) -> Result<usize> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let total = n.and_then(|n| n.checked_add(self.store.count()));
        match (n, total, self.limit) {
            (Some(n), Some(t), Some((limit, _))) if t <= limit => Ok(n),
            (Some(n), Some(_), None) => Ok(n),
            (n, _, limit) => Err(Error::Config(format!(
                "parameter `{}` of shape {shape:?} ({} values) takes the model past {}",
                self.full_name(name),
                n.map_or("more than 2^64".into(), |n| n.to_string()),
                limit.map_or("2^64 values".into(), |(l, why)| format!("{l}, {why}"))
            ))),
        }
    }

    /// A builder for the child `name` (`self.prefix + "." + name`).
    pub fn sub(&mut self, name: impl std::fmt::Display) -> Builder<'_, B> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Builder {
            backend: self.backend.clone(),
            store: self.store,
            prefix,
            seed: self.seed,
            limit: self.limit,
        }
    }

    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The random stream that initialises parameter `name` under this prefix.
    pub fn stream(&self, name: &str) -> u64 {
        self.seed ^ name_hash(&self.full_name(name))
    }

    /// A parameter with the given values.
    pub fn tensor(&mut self, name: &str, data: &[f32], shape: &[usize]) -> Result<Tensor<B>> {
        self.numel(name, shape)?;
        let full = self.full_name(name);
        Ok(self.store.add(&self.backend, &full, data, shape)?)
    }

    /// U(-bound, bound): PyTorch's default `Linear`/`Conv` initialisation uses
    /// bound = 1/sqrt(fan_in) for weights and biases.
    pub fn uniform(&mut self, name: &str, shape: &[usize], bound: f32) -> Result<Tensor<B>> {
        let s = self.stream(name);
        let n = self.numel(name, shape)?;
        let data: Vec<f32> = (0..n as u64)
            .map(|i| (2.0 * rng::uniform(s, i) - 1.0) * bound)
            .collect();
        self.tensor(name, &data, shape)
    }

    /// N(0, std^2).
    pub fn normal(&mut self, name: &str, shape: &[usize], std: f32) -> Result<Tensor<B>> {
        let s = self.stream(name);
        let n = self.numel(name, shape)?;
        let data: Vec<f32> = (0..n as u64).map(|i| rng::normal(s, i) * std).collect();
        self.tensor(name, &data, shape)
    }

    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> Result<Tensor<B>> {
        let n = self.numel(name, shape)?;
        self.tensor(name, &vec![0.0; n], shape)
    }
}

/// `y = x @ weight^T + bias`, weight (out, in) as in PyTorch.
pub struct Linear<B: Backend> {
    pub weight: Tensor<B>,
    pub bias: Option<Tensor<B>>,
}

impl<B: Backend> Linear<B> {
    /// PyTorch's default initialisation under `b`'s prefix (`<prefix>.weight`, `<prefix>.bias`).
    pub fn new(b: &mut Builder<'_, B>, fan_in: usize, fan_out: usize, bias: bool) -> Result<Self> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let weight = b.uniform("weight", &[fan_out, fan_in], bound)?;
        let bias = if bias {
            Some(b.uniform("bias", &[fan_out], bound)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(x.linear(&self.weight, self.bias.as_ref())?)
    }
}

/// Stride-1 "same" convolution with zeros or circular padding along each of H and W, weight
/// (Cout, Cin, k, k).
pub struct Conv2d<B: Backend> {
    pub weight: Tensor<B>,
    pub bias: Option<Tensor<B>>,
    pub circular: [bool; 2],
}

impl<B: Backend> Conv2d<B> {
    pub fn new(
        b: &mut Builder<'_, B>,
        cin: usize,
        cout: usize,
        kernel: usize,
        circular: [bool; 2],
    ) -> Result<Self> {
        let bound = 1.0 / ((cin * kernel * kernel) as f32).sqrt();
        let weight = b.uniform("weight", &[cout, cin, kernel, kernel], bound)?;
        let bias = Some(b.uniform("bias", &[cout], bound)?);
        Ok(Self {
            weight,
            bias,
            circular,
        })
    }

    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(x.conv2d(&self.weight, self.bias.as_ref(), self.circular)?)
    }
}
