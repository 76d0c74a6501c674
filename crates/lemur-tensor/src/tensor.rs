//! `Tensor`: a shaped, reference-counted view of backend storage that records how it was made,
//! so that `backward()` can run reverse-mode autodiff over backend ops.
//!
//! The graph is built eagerly as ops run (a tape in creation order): each result made while
//! gradients are enabled and from at least one input that needs a gradient keeps its inputs
//! and a closure mapping the output gradient to input gradients. Backward closures run with
//! recording disabled and are written with the same `Tensor` ops, so every op's backward is
//! itself made of tested primitives.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::backend::Backend;
use crate::error::{Error, Result, shape_err};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` without recording the graph (inference, optimizer updates, backward closures).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let prev = GRAD_ENABLED.with(|g| g.replace(false));
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(prev);
    f()
}

pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

type BackwardFn<B> = Box<dyn Fn(&Tensor<B>) -> Result<Vec<Option<Tensor<B>>>>>;

struct Node<B: Backend> {
    op: &'static str,
    parents: Vec<Tensor<B>>,
    backward: BackwardFn<B>,
}

struct Inner<B: Backend> {
    backend: B,
    storage: RefCell<B::Storage>,
    shape: Vec<usize>,
    node: Option<Node<B>>,
    /// Leaves that collect gradients (parameters) hold them here across micro-batches.
    grad: Option<RefCell<Option<Tensor<B>>>>,
}

pub struct Tensor<B: Backend> {
    inner: Rc<Inner<B>>,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{:?}", self.inner.shape)?;
        if let Some(n) = &self.inner.node {
            write!(f, " <- {}", n.op)?;
        }
        Ok(())
    }
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl<B: Backend> Tensor<B> {
    /// A constant tensor (no gradient) over existing storage.
    pub fn from_storage(backend: &B, storage: B::Storage, shape: &[usize]) -> Result<Self> {
        let len = backend.len(&storage);
        if len != numel(shape) {
            return Err(shape_err(
                "from_storage",
                format!("storage of {len} elements cannot have shape {shape:?}"),
            ));
        }
        Ok(Self::raw(
            backend.clone(),
            storage,
            shape.to_vec(),
            None,
            None,
        ))
    }

    fn raw(
        backend: B,
        storage: B::Storage,
        shape: Vec<usize>,
        node: Option<Node<B>>,
        grad: Option<RefCell<Option<Tensor<B>>>>,
    ) -> Self {
        Self {
            inner: Rc::new(Inner {
                backend,
                storage: RefCell::new(storage),
                shape,
                node,
                grad,
            }),
        }
    }

    pub fn from_slice(backend: &B, data: &[f32], shape: &[usize]) -> Result<Self> {
        if data.len() != numel(shape) {
            return Err(shape_err(
                "from_slice",
                format!("{} values cannot have shape {shape:?}", data.len()),
            ));
        }
        Self::from_storage(backend, backend.upload(data)?, shape)
    }

    pub fn full(backend: &B, shape: &[usize], value: f32) -> Result<Self> {
        Self::from_storage(backend, backend.fill(numel(shape), value)?, shape)
    }

    pub fn zeros(backend: &B, shape: &[usize]) -> Result<Self> {
        Self::full(backend, shape, 0.0)
    }

    /// Standard normal samples `offset..offset + numel` of stream `seed` (same on every backend).
    pub fn randn(backend: &B, shape: &[usize], seed: u64, offset: u64) -> Result<Self> {
        Self::from_storage(
            backend,
            backend.random(crate::backend::Dist::Normal, seed, offset, numel(shape))?,
            shape,
        )
    }

    /// Uniform samples on (0, 1].
    pub fn rand(backend: &B, shape: &[usize], seed: u64, offset: u64) -> Result<Self> {
        Self::from_storage(
            backend,
            backend.random(crate::backend::Dist::Uniform, seed, offset, numel(shape))?,
            shape,
        )
    }

    /// A leaf that collects gradients: a trainable parameter.
    pub fn param(backend: &B, storage: B::Storage, shape: &[usize]) -> Result<Self> {
        let len = backend.len(&storage);
        if len != numel(shape) {
            return Err(shape_err(
                "param",
                format!("storage of {len} elements cannot have shape {shape:?}"),
            ));
        }
        Ok(Self::raw(
            backend.clone(),
            storage,
            shape.to_vec(),
            None,
            Some(RefCell::new(None)),
        ))
    }

    /// The result of an op: records `backward` when gradients are enabled and any parent needs one.
    pub(crate) fn from_op(
        backend: &B,
        storage: B::Storage,
        shape: Vec<usize>,
        op: &'static str,
        parents: &[&Tensor<B>],
        backward: impl Fn(&Tensor<B>) -> Result<Vec<Option<Tensor<B>>>> + 'static,
    ) -> Self {
        let node = (grad_enabled() && parents.iter().any(|p| p.requires_grad())).then(|| Node {
            op,
            parents: parents.iter().map(|p| (*p).clone()).collect(),
            backward: Box::new(backward),
        });
        Self::raw(backend.clone(), storage, shape, node, None)
    }

    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }

    pub fn rank(&self) -> usize {
        self.inner.shape.len()
    }

    pub fn dim(&self, axis: usize) -> usize {
        self.inner.shape[axis]
    }

    pub fn numel(&self) -> usize {
        numel(&self.inner.shape)
    }

    pub fn storage(&self) -> B::Storage {
        self.inner.storage.borrow().clone()
    }

    pub fn requires_grad(&self) -> bool {
        self.inner.grad.is_some() || self.inner.node.is_some()
    }

    pub fn is_param(&self) -> bool {
        self.inner.grad.is_some()
    }

    /// Same storage, no graph: a constant.
    pub fn detach(&self) -> Self {
        Self::raw(
            self.inner.backend.clone(),
            self.storage(),
            self.inner.shape.clone(),
            None,
            None,
        )
    }

    /// Replaces a parameter's values (optimizer updates, checkpoint loads).
    pub fn set_storage(&self, storage: B::Storage) -> Result<()> {
        let len = self.inner.backend.len(&storage);
        if len != self.numel() {
            return Err(shape_err(
                "set_storage",
                format!("{len} elements for a tensor of shape {:?}", self.shape()),
            ));
        }
        *self.inner.storage.borrow_mut() = storage;
        Ok(())
    }

    /// The gradient accumulated in a parameter by `backward` calls since `zero_grad`.
    pub fn grad(&self) -> Option<Tensor<B>> {
        self.inner.grad.as_ref().and_then(|g| g.borrow().clone())
    }

    pub fn zero_grad(&self) {
        if let Some(g) = &self.inner.grad {
            *g.borrow_mut() = None;
        }
    }

    pub fn same(&self, other: &Tensor<B>) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        self.inner.backend.read(&self.storage()).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.to_vec_async())
    }

    /// The single value of a one-element tensor (a loss).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(shape_err(
                "item",
                format!("tensor of shape {:?} is not a scalar", self.shape()),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// Reverse-mode autodiff from this scalar: adds d self / d p into every parameter `p` that
    /// it depends on (so successive calls accumulate micro-batch gradients).
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Autodiff(format!(
                "backward needs a scalar loss, got shape {:?}",
                self.shape()
            )));
        }
        if !self.requires_grad() {
            return Err(Error::Autodiff(
                "the loss does not depend on any parameter".into(),
            ));
        }
        let seed = Tensor::full(self.backend(), self.shape(), 1.0)?;
        self.backward_with(seed)
    }

    /// Backward from an arbitrary output gradient `dy` of this tensor's shape.
    pub fn backward_with(&self, dy: Tensor<B>) -> Result<()> {
        if dy.shape() != self.shape() {
            return Err(shape_err(
                "backward",
                format!("gradient {:?} for output {:?}", dy.shape(), self.shape()),
            ));
        }
        // Topological order by iterative DFS (deep models would overflow a recursive one).
        let mut order: Vec<Tensor<B>> = Vec::new();
        let mut seen: HashMap<*const Inner<B>, ()> = HashMap::new();
        let mut stack: Vec<(Tensor<B>, bool)> = vec![(self.clone(), false)];
        while let Some((t, expanded)) = stack.pop() {
            let key = Rc::as_ptr(&t.inner);
            if expanded {
                order.push(t);
                continue;
            }
            if seen.insert(key, ()).is_some() {
                continue;
            }
            stack.push((t.clone(), true));
            if let Some(node) = &t.inner.node {
                for p in &node.parents {
                    if p.requires_grad() && !seen.contains_key(&Rc::as_ptr(&p.inner)) {
                        stack.push((p.clone(), false));
                    }
                }
            }
        }
        let mut grads: HashMap<*const Inner<B>, Tensor<B>> = HashMap::new();
        grads.insert(Rc::as_ptr(&self.inner), dy);
        no_grad(|| {
            for t in order.iter().rev() {
                let Some(g) = grads.remove(&Rc::as_ptr(&t.inner)) else {
                    continue;
                };
                if let Some(cell) = &t.inner.grad {
                    let mut slot = cell.borrow_mut();
                    *slot = Some(match slot.take() {
                        Some(prev) => prev.add(&g)?,
                        None => g.clone(),
                    });
                }
                let Some(node) = &t.inner.node else { continue };
                let pgrads = (node.backward)(&g)?;
                for (p, pg) in node.parents.iter().zip(pgrads) {
                    let Some(pg) = pg else { continue };
                    if !p.requires_grad() {
                        continue;
                    }
                    if pg.shape() != p.shape() {
                        return Err(Error::Autodiff(format!(
                            "{}: gradient of shape {:?} for an input of shape {:?}",
                            node.op,
                            pg.shape(),
                            p.shape()
                        )));
                    }
                    let key = Rc::as_ptr(&p.inner);
                    let acc = match grads.remove(&key) {
                        Some(prev) => prev.add(&pg)?,
                        None => pg,
                    };
                    grads.insert(key, acc);
                }
            }
            Ok(())
        })
    }
}
