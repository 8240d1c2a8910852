//! WGSL expressions: the [`Emitter`] every kernel emitter writes its code with.
//!
//! [`Emitter::at`] writes
//! the expression for any fused value at symbolic coordinates (WGSL `u32` expressions),
//! turning re-indexing ops (broadcast, reshape, transpose, slice, pad, concat, gather)
//! into index arithmetic and reading buffers for inputs and other kernels' roots. Each
//! (value, coordinates) pair is emitted once per scope as a `let`, so a value used twice
//! in a kernel is computed once. Reductions, products and scatters wrap their operand's
//! expression in a loop.

use crate::error::{Error, Result};
use crate::ir::{
    BinaryOp, CmpOp, DType, DotDims, Graph, Op, ReduceKind, Scalar, Type, UnaryOp, Value,
};
use crate::lower::fuse::row_scatter;
use crate::lower::placement::Placement;
use crate::lower::program::{BufferId, KernelBinding};
use std::collections::HashMap;
use std::fmt::Write;

/// One expression being written by [`Emitter::evaluate`]: its value and coordinates,
/// and the expressions of the operands gathered so far.
struct Frame {
    v: Value,
    coords: Vec<String>,
    got: Vec<String>,
    /// The expression asked for from outside: computed even when stored, not memoized.
    top: bool,
}

/// What writing an expression needs next.
enum Step {
    /// The expression of this operand at these coordinates.
    Need(Value, Vec<String>),
    /// Nothing: this is the finished expression.
    Done(String),
}

/// A dynamic start index (an `i32` expression) clamped into `0 ..= max`, as `u32`.
fn clamped_start(start: &str, max: usize) -> String {
    format!("u32(clamp({start}, 0i, {max}i))")
}

/// Emits the body of one kernel.
pub struct Emitter<'a> {
    g: &'a Graph,
    place: &'a [Placement],
    buffer_of: &'a [Option<BufferId>],
    /// The buffers bound, in binding order, and whether each is written.
    pub bindings: Vec<(BufferId, Type, bool)>,
    lines: Vec<String>,
    indent: usize,
    memo: HashMap<(Value, Vec<String>), String>,
    next: usize,
    /// Arithmetic operations emitted in the current scope (for the flop count).
    pub ops: u64,
    first_binding: usize,
    prefix: &'static str,
    /// Stored values this kernel computes itself rather than loads (the results of a
    /// kernel with several).
    inline: Vec<Value>,
    /// Buffers declared as `array<vec4<f32>>`, read four elements at a time.
    vec4: Vec<BufferId>,
    /// Module-scope functions the kernel calls (`lgamma`, `digamma`, `tanh`).
    helpers: Vec<&'static str>,
}

/// `lgamma` and `digamma` in f32, shared by every kernel that calls either: shifted
/// past 8 (`Γ(x + 1) = x·Γ(x)`, `ψ(x + 1) = ψ(x) + 1/x`), then Stirling's and the
/// asymptotic series; reflection below ½. `lgamma` is `+inf` at its poles (0 and the
/// negative integers), `digamma` NaN.
const SPECIAL_FUNCTIONS: &str = include_str!("../../../../shaders/special.wgsl");

/// `wg_tanh`, accurate near 0 where drivers' exponential formula is not.
const TANH: &str = include_str!("../../../../shaders/tanh.wgsl");

/// The WGSL scalar type of a dtype in registers.
pub fn wgsl_type(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::I32 => "i32",
        DType::U32 => "u32",
        DType::Bool => "bool",
    }
}

/// The WGSL element type of a dtype in a storage buffer (`bool` is stored as `u32`).
pub fn storage_type(d: DType) -> &'static str {
    match d {
        DType::Bool => "u32",
        other => wgsl_type(other),
    }
}

/// A template from `shaders/` without its leading comment (the placeholder notes).
pub fn template(text: &str) -> String {
    text.lines()
        .skip_while(|line| line.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fills `{{NAME}}` placeholders of a template from `shaders/` (its leading comment
/// dropped), and fails when one is left unfilled or one given is not in the template:
/// either is a compiler bug.
pub fn fill(text: &str, kernel: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut out = template(text);
    for (name, value) in values {
        let key = format!("{{{{{name}}}}}");
        if !out.contains(&key) {
            return Err(Error::Internal(format!(
                "kernel {kernel}: the template has no placeholder {key}"
            )));
        }
        out = out.replace(&key, value);
    }
    if let Some(at) = out.find("{{") {
        let rest = &out[at..];
        let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
        return Err(Error::Internal(format!(
            "kernel {kernel}: placeholder {} left unfilled",
            &rest[..end]
        )));
    }
    Ok(out + "\n")
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl<'a> Emitter<'a> {
    /// An emitter over graph `g` with the given placement and buffers.
    pub fn new(
        g: &'a Graph,
        place: &'a [Placement],
        buffer_of: &'a [Option<BufferId>],
    ) -> Emitter<'a> {
        Emitter {
            g,
            place,
            buffer_of,
            bindings: Vec::new(),
            lines: Vec::new(),
            indent: 1,
            memo: HashMap::new(),
            next: 0,
            ops: 0,
            first_binding: 0,
            prefix: "b",
            inline: Vec::new(),
            vec4: Vec::new(),
            helpers: Vec::new(),
        }
    }

    /// The graph whose values this emitter writes.
    pub fn graph(&self) -> &'a Graph {
        self.g
    }

    /// Computes the stored values `values` here instead of loading them.
    pub fn with_inline(mut self, values: Vec<Value>) -> Emitter<'a> {
        self.inline = values;
        self
    }

    /// Numbers this emitter's bindings from `first` on and names them `<prefix><k>`,
    /// for code that joins a template with bindings of its own.
    pub fn with_bindings_from(mut self, first: usize, prefix: &'static str) -> Emitter<'a> {
        self.first_binding = first;
        self.prefix = prefix;
        self
    }

    /// Forgets every memoized expression (before writing another function).
    pub fn clear_memo(&mut self) {
        self.memo.clear();
    }

    /// Declares that `v` at `coords` is already available as the WGSL expression `name`.
    pub fn seed(&mut self, v: Value, coords: &[String], name: &str) {
        self.memo.insert((v, coords.to_vec()), name.to_string());
    }

    /// Appends one statement at the current indentation.
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.lines
            .push(format!("{}{}", "    ".repeat(self.indent), s.as_ref()));
    }

    /// Opens a block (`for`, `if`): later lines are indented and memoized values
    /// computed inside are forgotten when it closes.
    pub fn open(&mut self, header: impl AsRef<str>) -> HashMap<(Value, Vec<String>), String> {
        self.line(format!("{} {{", header.as_ref()));
        self.indent += 1;
        self.memo.clone()
    }

    /// Closes a block opened by [`Emitter::open`].
    pub fn close(&mut self, saved: HashMap<(Value, Vec<String>), String>) {
        self.indent -= 1;
        self.line("}");
        self.memo = saved;
    }

    /// A fresh identifier.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    /// Binds `expr` to a fresh `let` of WGSL type `ty` and returns its name.
    pub fn let_(&mut self, ty: &str, expr: String) -> String {
        let name = self.fresh("t");
        self.line(format!("let {name}: {ty} = {expr};"));
        name
    }

    /// The binding name of a buffer, binding it on first use. A buffer read and then
    /// written (a row kernel overwriting its input) is bound once, `read_write`.
    pub fn bind(&mut self, buffer: BufferId, ty: &Type, writable: bool) -> String {
        let k = match self.bindings.iter().position(|(b, _, _)| *b == buffer) {
            Some(k) => {
                self.bindings[k].2 |= writable;
                k
            }
            None => {
                self.bindings.push((buffer, ty.clone(), writable));
                self.bindings.len() - 1
            }
        };
        format!("{}{}", self.prefix, k + self.first_binding)
    }

    /// The binding name of an `f32` buffer read four elements at a time, as
    /// `array<vec4<f32>>`.
    pub fn bind_vec4(&mut self, buffer: BufferId, ty: &Type) -> String {
        if !self.vec4.contains(&buffer) {
            self.vec4.push(buffer);
        }
        self.bind(buffer, ty, false)
    }

    /// Coordinates of the linear index `i` in `shape` (let-bound), one per axis.
    pub fn unravel(&mut self, i: &str, shape: &[usize], prefix: &str) -> Vec<String> {
        let st = strides(shape);
        (0..shape.len())
            .map(|k| {
                if shape[k] == 1 {
                    return "0u".to_string();
                }
                if k == 0 && st[0] == 1 {
                    return i.to_string();
                }
                let name = self.fresh(prefix);
                let e = if k == 0 {
                    format!("{i} / {}u", st[0])
                } else if st[k] == 1 {
                    format!("{i} % {}u", shape[k])
                } else {
                    format!("({i} / {}u) % {}u", st[k], shape[k])
                };
                self.line(format!("let {name}: u32 = {e};"));
                name
            })
            .collect()
    }

    /// The row-major linear index of `coords` in `shape`, as an expression.
    pub fn linear(&self, coords: &[String], shape: &[usize]) -> String {
        let st = strides(shape);
        let terms: Vec<String> = (0..shape.len())
            .filter(|&k| shape[k] != 1 && coords[k] != "0u")
            .map(|k| {
                if st[k] == 1 {
                    coords[k].clone()
                } else {
                    format!("{} * {}u", coords[k], st[k])
                }
            })
            .collect();
        if terms.is_empty() {
            "0u".into()
        } else {
            terms.join(" + ")
        }
    }

    /// Writes `value` (of dtype `d`) to element `index` of buffer `name`.
    pub fn store(&mut self, name: &str, index: &str, d: DType, value: &str) {
        let v = match d {
            DType::Bool => format!("select(0u, 1u, {value})"),
            _ => value.to_string(),
        };
        self.line(format!("{name}[{index}] = {v};"));
    }

    /// The expression of value `v` at `coords`.
    pub fn at(&mut self, v: Value, coords: &[String]) -> Result<String> {
        if let Some(name) = self.memo.get(&(v, coords.to_vec())) {
            return Ok(name.clone());
        }
        self.evaluate(v, coords.to_vec(), false)
    }

    /// The expression of `v` at `coords` computed here, even when `v` is a root: what
    /// the root's own kernel evaluates.
    pub fn root_expr(&mut self, v: Value, coords: &[String]) -> Result<String> {
        self.evaluate(v, coords.to_vec(), true)
    }

    /// Writes the expression of `v` at `coords` with an explicit stack rather than
    /// recursion, so the depth of an expression is bounded by memory, not by the
    /// thread's stack. Operands are written before their users, in argument order,
    /// exactly as a recursive walk would. `top` computes `v` even when it is stored,
    /// and does not memoize it.
    fn evaluate(&mut self, v: Value, coords: Vec<String>, top: bool) -> Result<String> {
        let mut stack = vec![Frame {
            v,
            coords,
            got: Vec::new(),
            top,
        }];
        loop {
            let Some(frame) = stack.last() else {
                return Err(Error::Compile(format!("{v}: an empty expression stack")));
            };
            let step = if !frame.top && self.is_loaded(frame.v) {
                Step::Done(self.load(frame.v, &frame.coords)?)
            } else {
                self.step(frame.v, &frame.coords, &frame.got)?
            };
            match step {
                Step::Need(a, ac) => match self.memo.get(&(a, ac.clone())) {
                    Some(name) => {
                        let name = name.clone();
                        if let Some(f) = stack.last_mut() {
                            f.got.push(name);
                        }
                    }
                    None => stack.push(Frame {
                        v: a,
                        coords: ac,
                        got: Vec::new(),
                        top: false,
                    }),
                },
                Step::Done(name) => {
                    let Some(done) = stack.pop() else {
                        return Ok(name);
                    };
                    if !done.top {
                        self.memo.insert((done.v, done.coords), name.clone());
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.got.push(name),
                        None => return Ok(name),
                    }
                }
            }
        }
    }

    /// Whether this kernel reads `v` from a buffer rather than computing it.
    fn is_loaded(&self, v: Value) -> bool {
        self.place[v.index()].is_stored() && !self.inline.contains(&v)
    }

    /// One step of writing `v` at `coords`, given the expressions of the operands
    /// asked for so far (`got`, in the order they were asked for): the next operand
    /// needed, or the finished expression.
    fn step(&mut self, v: Value, coords: &[String], got: &[String]) -> Result<Step> {
        let g = self.g;
        let node = g.node(v);
        let x = &node.args;
        let same = |k: usize| Step::Need(x[k], coords.to_vec());
        match &node.op {
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. }
                if got.len() < x.len() =>
            {
                Ok(same(got.len()))
            }
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. } => {
                let e = self.elementwise(v, got)?;
                let t = wgsl_type(g.ty(v).dtype);
                Ok(Step::Done(self.let_(t, e)))
            }
            Op::StopGradient
            | Op::Broadcast { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. } => match got.first() {
                Some(name) => Ok(Step::Done(name.clone())),
                None => Ok(Step::Need(x[0], self.reindexed(v, coords))),
            },
            Op::Dot(dims) if crate::lower::fuse_rows::inline_product(g, v).is_some() => {
                self.inline_dot(v, dims, coords).map(Step::Done)
            }
            Op::Input { .. }
            | Op::Literal { .. }
            | Op::Reduce { .. }
            | Op::Dot(_)
            | Op::ScatterAdd { .. }
            | Op::Loop { .. }
            | Op::Get { .. }
                if !row_scatter(g, v) =>
            {
                Err(Error::Compile(format!(
                    "{v} ({}) must be computed by its own kernel",
                    node.op.name()
                )))
            }
            Op::Constant { value, .. } => Ok(Step::Done(self.literal(*value))),
            Op::Iota { axis, .. } => {
                let ty = g.ty(v);
                let e = match ty.dtype {
                    DType::U32 => coords[*axis].clone(),
                    d => format!("{}({})", wgsl_type(d), coords[*axis]),
                };
                Ok(Step::Done(self.let_(wgsl_type(ty.dtype), e)))
            }
            Op::Input { .. }
            | Op::Literal { .. }
            | Op::Reduce { .. }
            | Op::Dot(_)
            | Op::ScatterAdd { .. }
            | Op::Loop { .. }
            | Op::Get { .. }
            | Op::Pad { .. }
            | Op::Concat { .. }
            | Op::OneHot { .. }
            | Op::Gather { .. }
            | Op::DynamicSlice { .. }
            | Op::DynamicUpdateSlice => self.index_step(v, coords, got),
        }
    }

    /// Product `v` at `coords`, computed here by a loop over K (a row kernel's inline
    /// product, [`inline_product`](crate::lower::fuse_rows::inline_product)): one `fma`
    /// per step in K's order, as the tiled kernel accumulates each element, so the
    /// result is the same to the bit. Its operands are read from their buffers, or
    /// computed at each step when they are cheap re-indexings (a transpose).
    fn inline_dot(&mut self, v: Value, dims: &DotDims, coords: &[String]) -> Result<String> {
        let g = self.g;
        let (l, r) = (g.node(v).args[0], g.node(v).args[1]);
        let trips = g.ty(l).shape[dims.lhs_contract[0]];
        let acc = self.fresh("dot");
        let k = self.fresh("k");
        self.line(format!("var {acc}: f32 = 0.0f;"));
        let saved = self.open(format!(
            "for (var {k}: u32 = 0u; {k} < {trips}u; {k} = {k} + 1u)"
        ));
        let (lc, rc) = dot_operand_coords(dims, 2, 2, coords, std::slice::from_ref(&k));
        let a = self.at(l, &lc)?;
        let b = self.at(r, &rc)?;
        self.line(format!("{acc} = fma({a}, {b}, {acc});"));
        self.close(saved);
        self.ops += 2 * trips as u64;
        Ok(acc)
    }

    /// The expression of an elementwise op from its operands' expressions.
    fn elementwise(&mut self, v: Value, a: &[String]) -> Result<String> {
        let g = self.g;
        let node = g.node(v);
        let d = g.ty(v).dtype;
        // An op on literals alone is a WGSL constant expression, which the shader
        // compiler evaluates and rejects when the result is not finite or overflows
        // (`0.0f / 0.0f`, `log(0.0f)`, `2147483647i + 1i`). Reading one operand from a
        // variable makes it an ordinary run-time operation.
        let mut a = a.to_vec();
        if !a.is_empty() && a.iter().all(|s| is_literal(s)) {
            let k = self.fresh("k");
            let ty = wgsl_type(g.ty(node.args[0]).dtype);
            self.line(format!("var {k}: {ty} = {};", a[0]));
            a[0] = k;
        }
        let a = &a[..];
        Ok(match &node.op {
            Op::Unary(u @ (UnaryOp::Lgamma | UnaryOp::Digamma)) => {
                // A series after a shift: about 30 operations.
                self.ops += 30;
                self.helper(SPECIAL_FUNCTIONS);
                let f = if *u == UnaryOp::Lgamma {
                    "wg_lgamma"
                } else {
                    "wg_digamma"
                };
                format!("{f}({})", a[0])
            }
            Op::Unary(u) => {
                self.ops += 1;
                if *u == UnaryOp::Tanh {
                    self.helper(TANH);
                }
                unary(*u, d, &a[0])
            }
            Op::Binary(op) => {
                self.ops += 1;
                binary(*op, d, &a[0], &a[1])
            }
            Op::Compare(c) => {
                self.ops += 1;
                let sym = match c {
                    CmpOp::Eq => "==",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                format!("{} {sym} {}", a[0], a[1])
            }
            Op::Select => {
                self.ops += 1;
                format!("select({}, {}, {})", a[2], a[1], a[0])
            }
            Op::Cast { dtype } => cast(g.ty(node.args[0]).dtype, *dtype, &a[0]),
            other => {
                return Err(Error::Internal(format!(
                    "{v} ({}) is not elementwise",
                    other.name()
                )));
            }
        })
    }

    /// The coordinates of the operand that a re-indexing op (broadcast, reshape,
    /// transpose, slice, stop_gradient) reads at `coords`.
    fn reindexed(&mut self, v: Value, coords: &[String]) -> Vec<String> {
        let g = self.g;
        let node = g.node(v);
        let x = &node.args;
        match &node.op {
            Op::Broadcast { dims, .. } => {
                let s = &g.ty(x[0]).shape;
                dims.iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if s[i] == 1 {
                            "0u".into()
                        } else {
                            coords[d].clone()
                        }
                    })
                    .collect()
            }
            Op::Reshape { shape } => {
                let lin = self.linear(coords, shape);
                let lin = if lin.contains(' ') {
                    self.let_("u32", lin)
                } else {
                    lin
                };
                let s = g.ty(x[0]).shape.clone();
                self.unravel(&lin, &s, "r")
            }
            Op::Transpose { perm } => {
                let mut oc = vec![String::new(); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    oc[p] = coords[i].clone();
                }
                oc
            }
            Op::Slice { start, .. } => coords
                .iter()
                .zip(start)
                .map(|(c, &s)| {
                    if s == 0 {
                        c.clone()
                    } else {
                        format!("({c} + {s}u)")
                    }
                })
                .collect(),
            _ => coords.to_vec(),
        }
    }

    /// One step of the ops that compute indices: a scatter of one element per row,
    /// pad, concat, one_hot and gather.
    fn index_step(&mut self, v: Value, coords: &[String], got: &[String]) -> Result<Step> {
        let g = self.g;
        let node = g.node(v);
        let ty = g.ty(v);
        let t = wgsl_type(ty.dtype);
        let x = &node.args;
        let hit = |idx: &str, dtype: DType, c: &str| match dtype {
            DType::I32 => format!("{idx} >= 0i && u32({idx}) == {c}"),
            _ => format!("{idx} == {c}"),
        };
        match (&node.op, got) {
            // Scattering one element per row is a comparison, not a loop.
            (Op::ScatterAdd { axis, .. }, _) if got.len() < 2 => {
                let mut uc = coords.to_vec();
                uc[*axis] = "0u".into();
                Ok(Step::Need(x[1 - got.len()], uc))
            }
            (Op::ScatterAdd { axis, .. }, [idx, u]) => {
                let hit = hit(idx, g.ty(x[1]).dtype, &coords[*axis]);
                let zero = self.literal(Scalar::of(ty.dtype, 0.0));
                Ok(Step::Done(
                    self.let_(t, format!("select({zero}, {u}, {hit})")),
                ))
            }
            (Op::Pad { low, value, .. }, _) => {
                let s = &g.ty(x[0]).shape;
                if s.contains(&0) {
                    return Ok(Step::Done(self.literal(*value)));
                }
                let mut inside = Vec::new();
                let mut oc = Vec::new();
                for k in 0..s.len() {
                    let c = &coords[k];
                    if low[k] == 0 && ty.shape[k] == s[k] {
                        oc.push(c.clone());
                        continue;
                    }
                    if low[k] > 0 {
                        inside.push(format!("{c} >= {}u", low[k]));
                    }
                    inside.push(format!("{c} < {}u", low[k] + s[k]));
                    oc.push(format!("min({c} - {}u, {}u)", low[k], s[k] - 1));
                }
                let Some(a) = got.first() else {
                    return Ok(Step::Need(x[0], oc));
                };
                if inside.is_empty() {
                    return Ok(Step::Done(a.clone()));
                }
                let pv = self.literal(*value);
                let e = format!("select({pv}, {a}, {})", inside.join(" && "));
                Ok(Step::Done(self.let_(t, e)))
            }
            (Op::Concat { axis }, _) => {
                // The non-empty operands, where each is read, and where each ends.
                let mut pieces = Vec::new();
                let mut off = 0usize;
                for &a in x {
                    let size = g.ty(a).shape[*axis];
                    if size > 0 {
                        let mut oc = coords.to_vec();
                        oc[*axis] = format!("min({} - {off}u, {}u)", coords[*axis], size - 1);
                        pieces.push((a, oc, off + size));
                    }
                    off += size;
                }
                if let Some((a, oc, _)) = pieces.get(got.len()) {
                    return Ok(Step::Need(*a, oc.clone()));
                }
                let Some((last, rest)) = got.split_last() else {
                    return Err(Error::Compile(format!("{v}: concat of empty operands")));
                };
                // One `let` per operand rather than one nested expression: WGSL
                // parsers bound expression depth (naga at about 200 levels).
                let mut acc = last.clone();
                for (p, (_, _, end)) in rest.iter().zip(&pieces).rev() {
                    let e = format!("select({acc}, {p}, {} < {end}u)", coords[*axis]);
                    acc = self.let_(t, e);
                }
                Ok(Step::Done(acc))
            }
            (Op::OneHot { .. }, []) => Ok(Step::Need(x[0], coords[..coords.len() - 1].to_vec())),
            (Op::OneHot { .. }, [idx, ..]) => {
                let hit = hit(idx, g.ty(x[0]).dtype, &coords[coords.len() - 1]);
                let (zero, one) = (
                    self.literal(Scalar::of(ty.dtype, 0.0)),
                    self.literal(Scalar::of(ty.dtype, 1.0)),
                );
                Ok(Step::Done(
                    self.let_(t, format!("select({zero}, {one}, {hit})")),
                ))
            }
            (Op::Gather { axis }, _) => {
                let extent = g.ty(x[0]).shape[*axis];
                let zero = self.literal(Scalar::of(ty.dtype, 0.0));
                if extent == 0 {
                    return Ok(Step::Done(zero));
                }
                let Some(idx) = got.first() else {
                    return Ok(Step::Need(x[1], coords.to_vec()));
                };
                let (ok, u) = match g.ty(x[1]).dtype {
                    DType::I32 => (
                        format!("{idx} >= 0i && u32({idx}) < {extent}u"),
                        format!("u32({idx})"),
                    ),
                    _ => (format!("{idx} < {extent}u"), idx.clone()),
                };
                let Some(a) = got.get(1) else {
                    let mut oc = coords.to_vec();
                    oc[*axis] = format!("min({u}, {}u)", extent - 1);
                    return Ok(Step::Need(x[0], oc));
                };
                Ok(Step::Done(
                    self.let_(t, format!("select({zero}, {a}, {ok})")),
                ))
            }
            (Op::DynamicSlice { sizes }, _) => {
                // The starts first (scalars), then the operand at the shifted coordinates.
                let rank = sizes.len();
                if got.len() < rank {
                    return Ok(Step::Need(x[1 + got.len()], Vec::new()));
                }
                if let Some(a) = got.get(rank) {
                    return Ok(Step::Done(a.clone()));
                }
                let shape = &g.ty(x[0]).shape;
                let oc = (0..rank)
                    .map(|k| {
                        let start = clamped_start(&got[k], shape[k] - sizes[k]);
                        format!("({} + {start})", coords[k])
                    })
                    .collect();
                Ok(Step::Need(x[0], oc))
            }
            (Op::DynamicUpdateSlice, _) => {
                // The starts, then the operand here, then the update where it lands.
                let rank = ty.rank();
                let u = &g.ty(x[1]).shape;
                if got.len() < rank {
                    return Ok(Step::Need(x[2 + got.len()], Vec::new()));
                }
                let starts: Vec<String> = (0..rank)
                    .map(|k| clamped_start(&got[k], ty.shape[k] - u[k]))
                    .collect();
                match got.len() - rank {
                    0 => Ok(Step::Need(x[0], coords.to_vec())),
                    1 => Ok(Step::Need(
                        x[1],
                        (0..rank)
                            .map(|k| {
                                format!("min({} - {}, {}u)", coords[k], starts[k], u[k].max(1) - 1)
                            })
                            .collect(),
                    )),
                    _ => {
                        let inside: Vec<String> = (0..rank)
                            .map(|k| {
                                format!(
                                    "{c} >= {s} && {c} < {s} + {}u",
                                    u[k],
                                    c = coords[k],
                                    s = starts[k]
                                )
                            })
                            .collect();
                        let (here, update) = (&got[rank], &got[rank + 1]);
                        let e = if inside.is_empty() {
                            update.clone()
                        } else {
                            format!("select({here}, {update}, {})", inside.join(" && "))
                        };
                        Ok(Step::Done(self.let_(t, e)))
                    }
                }
            }
            (op, _) => Err(Error::Compile(format!(
                "{v} ({}) must be computed by its own kernel",
                op.name()
            ))),
        }
    }

    /// Reads element `coords` of the buffer holding `v`.
    fn load(&mut self, v: Value, coords: &[String]) -> Result<String> {
        let ty = self.g.ty(v).clone();
        let Some(buffer) = self.buffer_of[v.index()] else {
            return Err(Error::Compile(format!("{v} has no buffer")));
        };
        let name = self.bind(buffer, &ty, false);
        let idx = self.linear(coords, &ty.shape);
        let e = match ty.dtype {
            DType::Bool => format!("{name}[{idx}] != 0u"),
            _ => format!("{name}[{idx}]"),
        };
        Ok(self.let_(wgsl_type(ty.dtype), e))
    }

    /// A literal, written so that naga's constant evaluator accepts it.
    pub fn literal(&mut self, s: Scalar) -> String {
        match s {
            Scalar::Float(bits) => {
                let x = f64::from_bits(bits) as f32;
                if x.is_finite() {
                    format!("{x:?}f")
                } else {
                    // Non-finite values are not valid constants: build them at run time.
                    let k = self.fresh("k");
                    self.line(format!("var {k}: u32 = {:#010x}u;", x.to_bits()));
                    format!("bitcast<f32>({k})")
                }
            }
            Scalar::Int(i) if i == i32::MIN => "(-2147483647i - 1i)".into(),
            Scalar::Int(i) => format!("{i}i"),
            Scalar::Uint(u) => format!("{u}u"),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// Declares the module-scope functions `text` once, after the bindings.
    fn helper(&mut self, text: &'static str) {
        if !self.helpers.contains(&text) {
            self.helpers.push(text);
        }
    }

    /// Sets the indentation of later statements.
    pub fn set_indent(&mut self, indent: usize) {
        self.indent = indent;
    }

    /// The statements written so far, which are then forgotten (the memo is kept).
    pub fn take_lines(&mut self) -> String {
        let s = self.body();
        self.lines.clear();
        s.trim_end().to_string()
    }

    /// The finished statements.
    pub fn body(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let _ = writeln!(s, "{l}");
        }
        s
    }

    /// The bindings as the program records them.
    pub fn kernel_bindings(&self) -> Vec<KernelBinding> {
        self.bindings
            .iter()
            .enumerate()
            .map(|(k, (buffer, _, writable))| KernelBinding {
                binding: (k + self.first_binding) as u32,
                buffer: *buffer,
                writable: *writable,
            })
            .collect()
    }

    /// Bytes of every buffer bound: what the kernel reads and writes.
    pub fn bytes_bound(&self) -> u64 {
        self.bindings
            .iter()
            .map(|(_, t, _)| (t.numel() * t.dtype.size_bytes()) as u64)
            .sum()
    }

    /// The `@group(0) @binding(k)` declarations.
    pub fn declarations(&self) -> String {
        let mut s = String::new();
        for (k, (buffer, ty, writable)) in self.bindings.iter().enumerate() {
            let access = if *writable { "read_write" } else { "read" };
            let k = k + self.first_binding;
            let element = if self.vec4.contains(buffer) {
                "vec4<f32>"
            } else {
                storage_type(ty.dtype)
            };
            let _ = writeln!(
                s,
                "@group(0) @binding({k}) var<storage, {access}> {}{k}: array<{element}>; // {ty}",
                self.prefix,
            );
        }
        for text in &self.helpers {
            s.push_str(text);
        }
        s
    }
}

fn unary(u: UnaryOp, d: DType, a: &str) -> String {
    match u {
        UnaryOp::Neg => match d {
            DType::U32 => format!("0u - {a}"),
            _ => format!("-{a}"),
        },
        UnaryOp::Exp => format!("exp({a})"),
        UnaryOp::Log => format!("log({a})"),
        UnaryOp::Sin => format!("sin({a})"),
        UnaryOp::Cos => format!("cos({a})"),
        // A call of the module's helper, which `Emitter::elementwise` declares.
        UnaryOp::Tanh => format!("wg_tanh({a})"),
        UnaryOp::Sqrt => format!("sqrt({a})"),
        UnaryOp::Rsqrt => format!("inverseSqrt({a})"),
        UnaryOp::Recip => format!("1.0f / {a}"),
        UnaryOp::Abs => format!("abs({a})"),
        // Emitted as calls of the module's helpers (`Emitter::elementwise`).
        UnaryOp::Lgamma => format!("wg_lgamma({a})"),
        UnaryOp::Digamma => format!("wg_digamma({a})"),
        UnaryOp::Sign => match d {
            DType::F32 => format!("select(select(0.0f, -1.0f, {a} < 0.0f), 1.0f, {a} > 0.0f)"),
            DType::I32 => format!("select(select(0i, -1i, {a} < 0i), 1i, {a} > 0i)"),
            _ => format!("select(0u, 1u, {a} > 0u)"),
        },
    }
}

fn binary(op: BinaryOp, _d: DType, a: &str, b: &str) -> String {
    match op {
        BinaryOp::Add => format!("{a} + {b}"),
        BinaryOp::Sub => format!("{a} - {b}"),
        BinaryOp::Mul => format!("{a} * {b}"),
        BinaryOp::Div => format!("{a} / {b}"),
        BinaryOp::Max => format!("max({a}, {b})"),
        BinaryOp::Min => format!("min({a}, {b})"),
        BinaryOp::Pow => format!("pow({a}, {b})"),
    }
}

/// A conversion with the interpreter's semantics: floats to integers truncate and
/// saturate, NaN gives 0; between i32 and u32 the bits are kept; to bool tests `!= 0`.
fn cast(from: DType, to: DType, a: &str) -> String {
    use DType::*;
    match (from, to) {
        (F32, F32) | (I32, I32) | (U32, U32) | (Bool, Bool) => a.to_string(),
        (F32, I32) => format!(
            "select(select(i32(clamp({a}, -2147483648.0f, 2147483520.0f)), 2147483647i, {a} >= 2147483648.0f), 0i, {a} != {a})"
        ),
        (F32, U32) => format!(
            "select(select(u32(clamp({a}, 0.0f, 4294967040.0f)), 4294967295u, {a} >= 4294967296.0f), 0u, {a} != {a})"
        ),
        (I32, F32) | (U32, F32) => format!("f32({a})"),
        (I32, U32) => format!("bitcast<u32>({a})"),
        (U32, I32) => format!("bitcast<i32>({a})"),
        (F32, Bool) => format!("{a} != 0.0f"),
        (I32, Bool) => format!("{a} != 0i"),
        (U32, Bool) => format!("{a} != 0u"),
        (Bool, F32) => format!("select(0.0f, 1.0f, {a})"),
        (Bool, I32) => format!("select(0i, 1i, {a})"),
        (Bool, U32) => format!("select(0u, 1u, {a})"),
    }
}

/// The identity of a reduction and the statement folding `x` into `acc`.
pub fn reduce_parts(
    e: &mut Emitter<'_>,
    kind: ReduceKind,
    d: DType,
) -> (String, fn(&str, &str) -> String) {
    let init = match (kind, d) {
        (ReduceKind::Sum, _) => e.literal(Scalar::of(d, 0.0)),
        (ReduceKind::Max, DType::F32) => e.literal(Scalar::float(f64::NEG_INFINITY)),
        (ReduceKind::Min, DType::F32) => e.literal(Scalar::float(f64::INFINITY)),
        (ReduceKind::Max, DType::I32) => e.literal(Scalar::Int(i32::MIN)),
        (ReduceKind::Min, DType::I32) => e.literal(Scalar::Int(i32::MAX)),
        (ReduceKind::Max, _) => e.literal(Scalar::Uint(0)),
        (ReduceKind::Min, _) => e.literal(Scalar::Uint(u32::MAX)),
    };
    let fold: fn(&str, &str) -> String = match kind {
        ReduceKind::Sum => |acc, x| format!("{acc} = {acc} + {x};"),
        ReduceKind::Max => |acc, x| format!("{acc} = max({acc}, {x});"),
        ReduceKind::Min => |acc, x| format!("{acc} = min({acc}, {x});"),
    };
    (init, fold)
}

/// Whether an operand's expression is a literal ([`Emitter::literal`]'s finite ones):
/// a constant expression to the shader compiler.
fn is_literal(s: &str) -> bool {
    let s = s.strip_prefix('(').unwrap_or(s);
    let s = s.strip_prefix('-').unwrap_or(s);
    s.starts_with(|c: char| c.is_ascii_digit()) || s == "true" || s == "false"
}

/// Splits a dot's result coordinates into the operands' coordinates, given the
/// coordinates of the contracted axes.
pub fn dot_operand_coords(
    d: &DotDims,
    lhs_rank: usize,
    rhs_rank: usize,
    out: &[String],
    contract: &[String],
) -> (Vec<String>, Vec<String>) {
    let nb = d.lhs_batch.len();
    let lf = DotDims::free_axes(lhs_rank, &d.lhs_batch, &d.lhs_contract);
    let rf = DotDims::free_axes(rhs_rank, &d.rhs_batch, &d.rhs_contract);
    let mut lc = vec![String::new(); lhs_rank];
    let mut rc = vec![String::new(); rhs_rank];
    for i in 0..nb {
        lc[d.lhs_batch[i]] = out[i].clone();
        rc[d.rhs_batch[i]] = out[i].clone();
    }
    for (j, &a) in lf.iter().enumerate() {
        lc[a] = out[nb + j].clone();
    }
    for (j, &a) in rf.iter().enumerate() {
        rc[a] = out[nb + lf.len() + j].clone();
    }
    for (k, c) in contract.iter().enumerate() {
        lc[d.lhs_contract[k]] = c.clone();
        rc[d.rhs_contract[k]] = c.clone();
    }
    (lc, rc)
}

#[cfg(test)]
mod tests {
    use super::fill;

    const TEMPLATE: &str = "// A note on {{A}}.\nfn main() { let x = {{A}} + {{B}}; }";

    #[test]
    fn a_template_is_filled_and_its_leading_comment_dropped() {
        let out = fill(TEMPLATE, "k", &[("A", "1"), ("B", "2")]).unwrap();
        assert_eq!(out, "fn main() { let x = 1 + 2; }\n");
    }

    #[test]
    fn an_unfilled_or_unknown_placeholder_is_an_error() {
        let e = fill(TEMPLATE, "k", &[("A", "1")]).unwrap_err().to_string();
        assert!(e.contains("{{B}} left unfilled"), "{e}");
        let e = fill(TEMPLATE, "k", &[("A", "1"), ("B", "2"), ("C", "3")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no placeholder {{C}}"), "{e}");
    }
}
