//! `torch.save` files of a state dict, read without Python and without running the pickle.
//!
//! The file is a zip archive (entries stored, not compressed) under one top folder `NAME/`:
//!
//! ```text
//! NAME/data.pkl        pickle (protocol 2): OrderedDict{key: _rebuild_tensor_v2(...)}
//! NAME/byteorder       "little"
//! NAME/data/0, 1, ...  raw storages, one per persistent id
//! NAME/version, NAME/.format_version, NAME/.storage_alignment, NAME/.data/serialization_id
//! ```
//!
//! A pickle is a program for a stack machine that may call any Python callable, so this reader
//! is a small pickle machine of its own that accepts only what `torch.save(model.state_dict())`
//! emits: containers (tuples, lists, dicts), ints, floats, strings, booleans, `None`, the memo,
//! persistent ids `('storage', torch.<T>Storage, key, location, numel)` and exactly three
//! kinds of globals (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the
//! float32/float16/bfloat16 storage types), each only with the arguments torch gives them.
//! Anything else is an error naming the opcode or global. Every tensor's offset, size and
//! stride is checked against the length of its storage entry before a value is read.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{LolaError, Result, io_err};

/// Host tensors by name: `(shape, values)`, as `lemur_tensor::params` uses them.
pub use lemur_tensor::HostTensors;

/// The names a run's weights may have, in the order they are looked for.
pub const STATE_FILES: [&str; 2] = ["state.pth", "state_best.pth"];

/// Largest pickle accepted (a state dict's pickle is a few bytes per tensor).
const MAX_PICKLE: u64 = 256 << 20;
/// Largest tensor accepted, in elements (the f32 copy must fit in memory).
const MAX_NUMEL: usize = 1 << 34;
/// Deepest container nesting accepted (a state dict needs 4).
const MAX_DEPTH: usize = 64;
/// Container elements the machine may copy in total (memoised containers are copied when
/// modified), so that no pickle can make it do quadratic work.
const MAX_COPIES: usize = 1 << 24;

/// Element types of the storages accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::Bf16 => "bfloat16",
        }
    }
}

/// The allowed globals.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    Storage(Dtype),
}

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch", "FloatStorage") => Some(Global::Storage(Dtype::F32)),
        ("torch", "HalfStorage") => Some(Global::Storage(Dtype::F16)),
        ("torch", "BFloat16Storage") => Some(Global::Storage(Dtype::Bf16)),
        _ => None,
    }
}

/// A persistent storage reference.
#[derive(Clone, Debug, PartialEq)]
struct StorageRef {
    dtype: Dtype,
    key: String,
    numel: usize,
}

/// A tensor view of a storage.
#[derive(Clone, Debug, PartialEq)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Rc<Value>>),
    List(Vec<Rc<Value>>),
    /// Plain and ordered dicts alike (insertion order kept; later keys replace earlier ones).
    Dict(Vec<(Rc<Value>, Rc<Value>)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    /// Nesting depth, counting every node visited against `budget` (`None` when spent).
    fn depth(&self, budget: &mut usize) -> Option<usize> {
        *budget = budget.checked_sub(1)?;
        Some(match self {
            Value::Tuple(v) | Value::List(v) => {
                let mut d = 0;
                for x in v {
                    d = d.max(x.depth(budget)?);
                }
                1 + d
            }
            Value::Dict(v) => {
                let mut d = 0;
                for (k, x) in v {
                    d = d.max(k.depth(budget)?).max(x.depth(budget)?);
                }
                1 + d
            }
            _ => 0,
        })
    }
}

/// One stack slot: a value or a MARK.
enum Slot {
    Mark,
    Val(Rc<Value>),
}

/// The restricted pickle machine over one pickle.
struct Machine<'a> {
    path: &'a Path,
    entry: &'a str,
    data: &'a [u8],
    pos: usize,
    /// Start of the opcode being run, for messages.
    at: usize,
    stack: Vec<Slot>,
    memo: BTreeMap<u32, Rc<Value>>,
    copies: usize,
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        _ => "unknown",
    }
}

impl<'a> Machine<'a> {
    fn err(&self, detail: impl Into<String>) -> LolaError {
        LolaError::Pickle {
            path: self.path.into(),
            entry: self.entry.into(),
            offset: self.at,
            detail: detail.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(format!("truncated: {n} more bytes needed")))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("truncated: a line without its newline"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("a line is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: u64) -> Result<Rc<Value>> {
        let n = usize::try_from(n).map_err(|_| self.err("string length overflows"))?;
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| self.err("a string is not UTF-8"))?;
        Ok(Rc::new(Value::Str(s.to_string())))
    }

    fn push(&mut self, v: Rc<Value>) -> Result<()> {
        self.stack.push(Slot::Val(v));
        Ok(())
    }

    /// Refuses a new container nested too deeply (dropping it would recurse that deep), with
    /// the nodes visited counted against the work budget.
    fn check_depth(&mut self, v: &Value) -> Result<()> {
        let mut budget = MAX_COPIES.saturating_sub(self.copies);
        let before = budget;
        let d = v.depth(&mut budget);
        self.copies += before - budget;
        match d {
            None => Err(self.err("too much work (a pathological pickle)")),
            Some(d) if d > MAX_DEPTH => {
                Err(self.err(format!("containers nested deeper than {MAX_DEPTH}")))
            }
            Some(_) => Ok(()),
        }
    }

    /// Values about to go into an existing container: each at most `MAX_DEPTH - 1` deep, so the
    /// container stays within `MAX_DEPTH`. (A container is only modified while nothing else
    /// holds it, copy-on-write, so no container it is nested in grows deeper.)
    fn check_items(&mut self, items: &[Rc<Value>]) -> Result<()> {
        for v in items {
            let mut budget = MAX_COPIES.saturating_sub(self.copies);
            let before = budget;
            let d = v.depth(&mut budget);
            self.copies += before - budget;
            match d {
                None => return Err(self.err("too much work (a pathological pickle)")),
                Some(d) if d >= MAX_DEPTH => {
                    return Err(self.err(format!("containers nested deeper than {MAX_DEPTH}")));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn push_container(&mut self, v: Value) -> Result<()> {
        self.check_depth(&v)?;
        self.push(Rc::new(v))
    }

    fn pop(&mut self) -> Result<Rc<Value>> {
        match self.stack.pop() {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Mark) => Err(self.err("a MARK where a value was expected")),
            None => Err(self.err("stack underflow")),
        }
    }

    fn top(&self) -> Result<&Rc<Value>> {
        match self.stack.last() {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Mark) => Err(self.err("a MARK where a value was expected")),
            None => Err(self.err("stack underflow")),
        }
    }

    /// The values above the topmost MARK (which is removed).
    fn pop_mark(&mut self) -> Result<Vec<Rc<Value>>> {
        let i = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self
            .stack
            .drain(i + 1..)
            .map(|s| match s {
                Slot::Val(v) => v,
                Slot::Mark => unreachable!("the topmost mark is at i"),
            })
            .collect();
        self.stack.pop();
        Ok(items)
    }

    /// The container on top of the stack, for in-place modification (copied first when the
    /// memo shares it, within the copy budget).
    fn top_mut(&mut self) -> Result<&mut Value> {
        let len = match self.stack.last() {
            Some(Slot::Val(v)) => match &**v {
                Value::List(x) | Value::Tuple(x) => x.len(),
                Value::Dict(x) => x.len(),
                _ => 0,
            },
            _ => 0,
        };
        if Rc::strong_count(self.top()?) > 1 {
            self.copies += len + 1;
            if self.copies > MAX_COPIES {
                return Err(self.err("too many container copies (a pathological pickle)"));
            }
        }
        match self.stack.last_mut() {
            Some(Slot::Val(v)) => Ok(Rc::make_mut(v)),
            _ => unreachable!("checked by top()"),
        }
    }

    fn set_items(&mut self, items: Vec<Rc<Value>>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of values"));
        }
        self.check_items(&items)?;
        let at = self.at;
        let dict = self.top_mut()?;
        let Value::Dict(d) = dict else {
            let kind = dict.kind();
            return Err(LolaError::Pickle {
                path: PathBuf::new(),
                entry: String::new(),
                offset: at,
                detail: format!("SETITEM(S) on {kind}, not a dict"),
            });
        };
        // Pairs in order; a repeated key (which torch never writes) is refused when the state
        // dict is read, so nothing here searches the dict (no quadratic work).
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn memo_get(&self, key: u32) -> Result<Rc<Value>> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.err(format!("memo key {key} was never stored")))
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<Rc<Value>> {
        match allowed_global(module, name) {
            Some(g) => Ok(Rc::new(Value::Global(g))),
            None => Err(LolaError::ForbiddenGlobal {
                path: self.path.into(),
                entry: self.entry.into(),
                global: format!("{module}.{name}"),
            }),
        }
    }

    fn int(&self, v: &Value, what: &str) -> Result<usize> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as usize),
            Value::Int(i) => Err(self.err(format!("{what} is negative ({i})"))),
            other => Err(self.err(format!("{what} is {}, not an int", other.kind()))),
        }
    }

    fn ints(&self, v: &Value, what: &str) -> Result<Vec<usize>> {
        match v {
            Value::Tuple(items) => items.iter().map(|x| self.int(x, what)).collect(),
            other => Err(self.err(format!("{what} is {}, not a tuple", other.kind()))),
        }
    }

    /// `persistent_load(('storage', torch.<T>Storage, key, location, numel))`.
    fn persistent(&self, pid: &Value) -> Result<Rc<Value>> {
        let Value::Tuple(t) = pid else {
            return Err(self.err(format!("a persistent id is {}, not a tuple", pid.kind())));
        };
        let [tag, ty, key, _location, numel] = &t[..] else {
            return Err(self.err(format!(
                "a persistent id has {} fields, not 5 ('storage', type, key, location, numel)",
                t.len()
            )));
        };
        if **tag != Value::Str("storage".into()) {
            return Err(self.err("a persistent id that is not a ('storage', ...) tuple"));
        }
        let Value::Global(Global::Storage(dtype)) = **ty else {
            return Err(self.err(format!(
                "a storage type is {}, not a float storage type",
                ty.kind()
            )));
        };
        let Value::Str(key) = &**key else {
            return Err(self.err(format!("a storage key is {}, not a string", key.kind())));
        };
        // The key names an archive entry: nothing but a plain name may reach the file system
        // of the archive.
        if key.is_empty()
            || key.len() > 64
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(self.err(format!("storage key {key:?} is not a plain name")));
        }
        let numel = self.int(numel, "a storage's element count")?;
        Ok(Rc::new(Value::Storage(StorageRef {
            dtype,
            key: key.clone(),
            numel,
        })))
    }

    fn reduce(&self, callable: &Value, args: &Value) -> Result<Rc<Value>> {
        let Value::Tuple(args) = args else {
            return Err(self.err(format!("REDUCE arguments are {}, not a tuple", args.kind())));
        };
        match callable {
            Value::Global(Global::OrderedDict) if args.is_empty() => {
                Ok(Rc::new(Value::Dict(Vec::new())))
            }
            Value::Global(Global::OrderedDict) => Err(self.err(
                "collections.OrderedDict called with arguments (torch.save calls it with none)",
            )),
            Value::Global(Global::RebuildTensorV2) => {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if !(6..=7).contains(&args.len()) {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 with {} arguments (torch.save gives 6 or 7)",
                        args.len()
                    )));
                }
                let Value::Storage(storage) = &*args[0] else {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2's storage is {}",
                        args[0].kind()
                    )));
                };
                let offset = self.int(&args[1], "a storage offset")?;
                let size = self.ints(&args[2], "a tensor size")?;
                let stride = self.ints(&args[3], "a tensor stride")?;
                if !matches!(*args[4], Value::Bool(_)) {
                    return Err(self.err("_rebuild_tensor_v2's requires_grad is not a bool"));
                }
                match &*args[5] {
                    Value::Dict(h) if h.is_empty() => {}
                    _ => {
                        return Err(self.err(
                            "_rebuild_tensor_v2 with backward hooks (a state dict has none)",
                        ));
                    }
                }
                if let Some(meta) = args.get(6)
                    && !matches!(&**meta, Value::None | Value::Dict(_))
                {
                    return Err(self.err("_rebuild_tensor_v2's metadata is not a dict"));
                }
                if size.len() != stride.len() || size.len() > 8 {
                    return Err(
                        self.err(format!("a tensor of size {size:?} with stride {stride:?}"))
                    );
                }
                Ok(Rc::new(Value::Tensor(TensorRef {
                    storage: storage.clone(),
                    offset,
                    size,
                    stride,
                })))
            }
            Value::Global(Global::Storage(_)) => {
                Err(self.err("a storage type called directly (torch.save never does)"))
            }
            other => Err(self.err(format!("REDUCE on {}, not an allowed global", other.kind()))),
        }
    }

    fn run(mut self) -> Result<Rc<Value>> {
        loop {
            self.at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("pickle protocol {p}")));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only.
                }
                b'(' => self.stack.push(Slot::Mark),
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'N' => self.push(Rc::new(Value::None))?,
                0x88 => self.push(Rc::new(Value::Bool(true)))?,
                0x89 => self.push(Rc::new(Value::Bool(false)))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Rc::new(Value::Int(v as i64)))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Rc::new(Value::Int(v as i64)))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Rc::new(Value::Int(v as i64)))?
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n <= 8 bytes.
                    let n = self.u8()? as usize;
                    if n > 8 {
                        return Err(self.err(format!("an integer of {n} bytes")));
                    }
                    let b = self.take(n)?;
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Rc::new(Value::Int(i64::from_le_bytes(buf))))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                    self.push(Rc::new(Value::Float(v)))?
                }
                b'X' => {
                    let n = self.u32()?;
                    let v = self.utf8(n as u64)?;
                    self.push(v)?
                }
                0x8c => {
                    let n = self.u8()?;
                    let v = self.utf8(n as u64)?;
                    self.push(v)?
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.utf8(n)?;
                    self.push(v)?
                }
                b')' => self.push(Rc::new(Value::Tuple(Vec::new())))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_container(Value::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_container(Value::Tuple(items))?
                }
                b']' => self.push(Rc::new(Value::List(Vec::new())))?,
                b'}' => self.push(Rc::new(Value::Dict(Vec::new())))?,
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    self.check_items(&items)?;
                    let at = self.at;
                    let list = self.top_mut()?;
                    match list {
                        Value::List(l) => l.extend(items),
                        other => {
                            let kind = other.kind();
                            return Err(LolaError::Pickle {
                                path: self.path.into(),
                                entry: self.entry.into(),
                                offset: at,
                                detail: format!("APPEND(S) on {kind}, not a list"),
                            });
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v]).map_err(|e| self.relabel(e))?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items).map_err(|e| self.relabel(e))?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    let v = self.memo_get(k)?;
                    self.push(v)?
                }
                b'j' => {
                    let k = self.u32()?;
                    let v = self.memo_get(k)?;
                    self.push(v)?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k =
                        u32::try_from(self.memo.len()).map_err(|_| self.err("memo overflow"))?;
                    self.memo_put(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.push(g)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&*module, &*name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = self.global(m, n)?;
                            self.push(g)?
                        }
                        _ => return Err(self.err("STACK_GLOBAL without two strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(&pid)?;
                    self.push(v)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(&callable, &args)?;
                    self.push(v)?
                }
                b'b' => {
                    // BUILD on the state dict sets its `_metadata` attribute (module versions);
                    // the state is dropped, and any other target is refused.
                    let state = self.pop()?;
                    let target = self.top()?;
                    if !matches!(&**target, Value::Dict(_)) {
                        return Err(self.err(format!(
                            "BUILD on {} (torch.save only builds the state dict)",
                            target.kind()
                        )));
                    }
                    if !matches!(&*state, Value::Dict(_) | Value::None) {
                        return Err(self.err(format!("BUILD with {} as state", state.kind())));
                    }
                }
                other => {
                    return Err(LolaError::ForbiddenOpcode {
                        path: self.path.into(),
                        entry: self.entry.into(),
                        offset: self.at,
                        opcode: other,
                        name: opcode_name(other),
                    });
                }
            }
        }
    }

    fn relabel(&self, e: LolaError) -> LolaError {
        match e {
            LolaError::Pickle { offset, detail, .. } => LolaError::Pickle {
                path: self.path.into(),
                entry: self.entry.into(),
                offset,
                detail,
            },
            e => e,
        }
    }
}

/// A state dict read from a `torch.save` file.
#[derive(Clone, Debug)]
pub struct StateDict {
    pub path: PathBuf,
    /// Tensors by key, converted to f32, in the file's order of keys sorted by name.
    pub tensors: HostTensors,
    /// The element type each tensor was stored with.
    pub dtypes: BTreeMap<String, Dtype>,
}

/// Reads the state dict of a run directory (`state.pth`, else `state_best.pth`) or of a file.
pub fn read_state(path: &Path) -> Result<StateDict> {
    let file = if path.is_dir() {
        STATE_FILES
            .iter()
            .map(|n| path.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| LolaError::Missing {
                path: path.join(STATE_FILES[0]),
                hint: format!(
                    " (a reference run holds its weights in {} or {})",
                    STATE_FILES[0], STATE_FILES[1]
                ),
            })?
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(io_err(&file))?;
    read_state_bytes(&bytes, &file)
}

fn archive_err(path: &Path, detail: impl std::fmt::Display) -> LolaError {
    LolaError::Archive {
        path: path.into(),
        detail: detail.to_string(),
    }
}

/// Reads one stored entry whole, with its CRC checked by the zip reader.
fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
    path: &Path,
) -> Result<Vec<u8>> {
    let total = limit;
    let mut f = zip
        .by_name(name)
        .map_err(|e| archive_err(path, format!("entry {name}: {e}")))?;
    if f.compression() != zip::CompressionMethod::Stored {
        return Err(archive_err(
            path,
            format!(
                "entry {name} is compressed ({:?}); torch.save stores entries uncompressed",
                f.compression()
            ),
        ));
    }
    let size = f.size();
    if size > limit {
        return Err(archive_err(
            path,
            format!("entry {name} claims {size} bytes, more than the {total} possible"),
        ));
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| archive_err(path, format!("entry {name}: {e}")))?;
    if buf.len() as u64 != size {
        return Err(archive_err(
            path,
            format!(
                "entry {name} holds {} bytes, its header says {size}",
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// Reads a `torch.save` archive held in memory (`path` names it in errors).
pub fn read_state_bytes(bytes: &[u8], path: &Path) -> Result<StateDict> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| archive_err(path, e))?;
    let mut names = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| archive_err(path, format!("entry {i}: {e}")))?;
        names.push(
            f.name()
                .map_err(|e| archive_err(path, format!("entry {i}: {e}")))?
                .to_string(),
        );
    }
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .cloned()
        .ok_or_else(|| {
            archive_err(
                path,
                "no data.pkl entry (a torch.save file holds NAME/data.pkl; a file from \
                 torch.save(..., _use_new_zipfile_serialization=False) is not supported)",
            )
        })?;
    let prefix = pkl
        .strip_suffix("data.pkl")
        .expect("ends with it")
        .to_string();
    let order = format!("{prefix}byteorder");
    if names.contains(&order) {
        let b = read_entry(&mut zip, &order, 16, path)?;
        if b != b"little" {
            return Err(archive_err(
                path,
                format!(
                    "byte order {:?}: only little-endian archives are supported",
                    String::from_utf8_lossy(&b)
                ),
            ));
        }
    }
    let program = read_entry(&mut zip, &pkl, MAX_PICKLE.min(bytes.len() as u64), path)?;
    let machine = Machine {
        path,
        entry: &pkl,
        data: &program,
        pos: 0,
        at: 0,
        stack: Vec::new(),
        memo: BTreeMap::new(),
        copies: 0,
    };
    let root = machine.run()?;
    let Value::Dict(items) = &*root else {
        return Err(LolaError::Pickle {
            path: path.into(),
            entry: pkl,
            offset: program.len(),
            detail: format!(
                "the pickle holds {}, not a state dict (an OrderedDict of tensors)",
                root.kind()
            ),
        });
    };
    let mut storages: BTreeMap<String, (Dtype, Vec<u8>)> = BTreeMap::new();
    let mut tensors = HostTensors::new();
    let mut dtypes = BTreeMap::new();
    for (k, v) in items {
        let Value::Str(name) = &**k else {
            return Err(LolaError::Pickle {
                path: path.into(),
                entry: pkl.clone(),
                offset: program.len(),
                detail: format!("a state dict key is {}, not a string", k.kind()),
            });
        };
        let tensor_err = |detail: String| LolaError::Tensor {
            path: path.into(),
            tensor: name.clone(),
            detail,
        };
        let Value::Tensor(t) = &**v else {
            return Err(tensor_err(format!("holds {}, not a tensor", v.kind())));
        };
        if tensors.contains_key(name) {
            return Err(tensor_err("appears twice in the state dict".into()));
        }
        let s = &t.storage;
        let entry = format!("{prefix}data/{}", s.key);
        if !storages.contains_key(&s.key) {
            if !names.contains(&entry) {
                return Err(tensor_err(format!(
                    "its storage {entry} is not in the archive"
                )));
            }
            let data = read_entry(&mut zip, &entry, bytes.len() as u64, path)?;
            storages.insert(s.key.clone(), (s.dtype, data));
        }
        let (dtype, data) = &storages[&s.key];
        if *dtype != s.dtype {
            return Err(tensor_err(format!(
                "storage {entry} is read both as {} and as {}",
                dtype.name(),
                s.dtype.name()
            )));
        }
        let expected = s.numel.checked_mul(dtype.size());
        if expected != Some(data.len()) {
            return Err(tensor_err(format!(
                "storage {entry} holds {} bytes, {} {} values need {}",
                data.len(),
                s.numel,
                dtype.name(),
                expected.map_or("more than memory".into(), |b| b.to_string())
            )));
        }
        let values = gather(t, data, *dtype).map_err(tensor_err)?;
        tensors.insert(name.clone(), (t.size.clone(), values));
        dtypes.insert(name.clone(), *dtype);
    }
    Ok(StateDict {
        path: path.into(),
        tensors,
        dtypes,
    })
}

/// The tensor's elements in row-major order, every index checked against the storage.
fn gather(t: &TensorRef, data: &[u8], dtype: Dtype) -> std::result::Result<Vec<f32>, String> {
    let numel = t
        .size
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_NUMEL)
        .ok_or_else(|| format!("size {:?} is too large", t.size))?;
    // A state dict's tensors never overlap themselves; a view with more elements than its
    // storage (stride 0) would let a small archive ask for any amount of memory.
    if numel > t.storage.numel {
        return Err(format!(
            "size {:?} with stride {:?} has {numel} elements, more than its storage's {}",
            t.size, t.stride, t.storage.numel
        ));
    }
    if numel > 0 {
        // The last element read: offset + sum (size_i - 1) * stride_i.
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                a.checked_add((d - 1).checked_mul(s)?)
            })
            .ok_or_else(|| format!("offset {} with strides {:?} overflows", t.offset, t.stride))?;
        if last >= t.storage.numel {
            return Err(format!(
                "offset {}, size {:?} and stride {:?} reach element {last} of a storage of {}",
                t.offset, t.size, t.stride, t.storage.numel
            ));
        }
    }
    let at = |i: usize| -> f32 {
        let b = &data[i * dtype.size()..];
        match dtype {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::Bf16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        }
    };
    let mut out = Vec::with_capacity(numel);
    if numel == 0 {
        return Ok(out);
    }
    // Odometer over the index space: row-major order whatever the strides.
    let rank = t.size.len();
    let mut idx = vec![0usize; rank];
    let mut pos = t.offset;
    for _ in 0..numel {
        out.push(at(pos));
        // Wrapping: a dimension of size 1 may have any stride, and stepping past the last
        // element is undone before any read.
        for d in (0..rank).rev() {
            idx[d] += 1;
            pos = pos.wrapping_add(t.stride[d]);
            if idx[d] < t.size[d] {
                break;
            }
            pos = pos.wrapping_sub(t.stride[d].wrapping_mul(t.size[d]));
            idx[d] = 0;
        }
    }
    Ok(out)
}
