//! The builder: the one way nodes enter a graph.
//!
//! [`Builder`] appends nodes, inferring each result type with [`infer`] and returning a
//! [`TypeError`] (wrapped in [`Error`]) instead of panicking on
//! a bad shape. Its binary methods broadcast like NumPy by inserting explicit
//! [`Op::Broadcast`] nodes, since the primitives themselves require equal shapes.
//! Composites (`softmax`, `cross_entropy`, `linear`, ...) are written here from
//! primitives; the derivative rules emit their IR through the same methods.

use super::infer::infer;
use super::op::{BinaryOp, CmpOp, DotDims, Op, ReduceKind, Region, UnaryOp};
use super::types::{DType, Scalar, Type, fmt_shape};
use super::{Graph, Node, NodeType, Side, Value, is_valid_name};
use crate::error::{Error, Result, TypeError};

/// Appends type-checked nodes to a [`Graph`].
///
/// ```
/// use wgrad_compiler::ir::{Builder, Type};
/// let mut b = Builder::new();
/// let x = b.input("x", Type::f32(&[2, 3]))?;
/// let y = b.relu(x)?;
/// let s = b.sum(y, &[0, 1])?;
/// b.output("loss", s)?;
/// let graph = b.finish()?;
/// assert_eq!(graph.outputs().len(), 1);
/// # Ok::<(), wgrad_compiler::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    graph: Graph,
    side: Side,
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("Elementwise `", stringify!($name), "`; see [`UnaryOp::", stringify!($op), "`].")]
        pub fn $name(&mut self, x: Value) -> Result<Value> {
            self.push(Op::Unary(UnaryOp::$op), &[x])
        }
    )*};
}

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("Elementwise `", stringify!($name), "` with NumPy broadcasting; see [`BinaryOp::", stringify!($op), "`].")]
        pub fn $name(&mut self, a: Value, b: Value) -> Result<Value> {
            self.binary(BinaryOp::$op, a, b)
        }
    )*};
}

macro_rules! compare_methods {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("Elementwise comparison `", stringify!($name), "` with NumPy broadcasting; the result is `bool`.")]
        pub fn $name(&mut self, a: Value, b: Value) -> Result<Value> {
            self.compare(CmpOp::$op, a, b)
        }
    )*};
}

impl Builder {
    /// An empty program.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Continues appending to an existing graph; its handles stay valid.
    pub fn from_graph(graph: Graph) -> Builder {
        Builder {
            graph,
            side: Side::Primal,
        }
    }

    /// Tags the nodes appended from now on (inputs excepted) as `side`.
    pub fn set_side(&mut self, side: Side) {
        self.side = side;
    }

    /// Makes every node from arena index `first` on read `to` where it read `from`, a
    /// value of the same type computed before `first`: for a rule that has built
    /// nodes reading a value it then learns is equal to an earlier one.
    pub(crate) fn replace_reads_from(&mut self, first: usize, from: Value, to: Value) {
        debug_assert!(
            to.index() < first
                && self.graph.nodes[from.index()].ty == self.graph.nodes[to.index()].ty
        );
        for node in self.graph.nodes.iter_mut().skip(first) {
            for a in &mut node.args {
                if *a == from {
                    *a = to;
                }
            }
        }
    }

    /// The side tag given to the nodes pushed next.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The graph built so far.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Returns the graph after checking it with the verifier.
    pub fn finish(self) -> Result<Graph> {
        super::verify(&self.graph)?;
        Ok(self.graph)
    }

    /// The type of a tensor value.
    pub fn ty(&self, v: Value) -> &Type {
        self.graph.ty(v)
    }

    /// The shape of a tensor value.
    pub fn shape(&self, v: Value) -> Vec<usize> {
        self.graph.ty(v).shape.clone()
    }

    /// Appends `op` applied to `args`, inferring its type.
    pub fn push(&mut self, op: Op, args: &[Value]) -> Result<Value> {
        let len = self.graph.nodes.len();
        if let Some(bad) = args.iter().find(|a| a.index() >= len) {
            return Err(TypeError::new(op.name(), format!("operand {bad} is not defined")).into());
        }
        let tys: Vec<&NodeType> = args
            .iter()
            .map(|a| &self.graph.nodes[a.index()].ty)
            .collect();
        let ty = infer(&self.graph.regions, &op, &tys)?;
        Ok(self.push_typed(op, args.to_vec(), ty))
    }

    fn push_typed(&mut self, op: Op, args: Vec<Value>, ty: NodeType) -> Value {
        let v = Value(self.graph.nodes.len() as u32);
        let side = if matches!(op, Op::Input { .. }) {
            Side::Primal
        } else {
            self.side
        };
        self.graph.nodes.push(Node {
            op,
            args,
            ty,
            side,
            name: None,
        });
        v
    }

    /// Gives `v` the debug name `name` ([`Node::name`]), as the parser does for
    /// `%name`; a name that is empty, all digits (a printed position) or has characters
    /// a value name cannot have is ignored.
    pub fn set_name(&mut self, v: Value, name: &str) {
        let valid = !name.is_empty()
            && !name.bytes().all(|c| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'));
        if let Some(node) = self.graph.nodes.get_mut(v.index())
            && valid
        {
            node.name = Some(name.into());
        }
    }

    /// Gives `v` the debug name of value `of` in `from`, if it has one: for a pass
    /// that copies nodes into a new graph.
    pub fn copy_name(&mut self, v: Value, from: &Graph, of: Value) {
        if let Some(name) = from.nodes.get(of.index()).and_then(|n| n.name.as_deref()) {
            self.set_name(v, name);
        }
    }

    /// Appends `body` to the graph's regions for a loop pushed next, returning its handle.
    ///
    /// The parser builds a loop body before the loop node that refers to it; this is the
    /// step [`Builder::loop_`] does internally.
    pub(crate) fn push_region(&mut self, body: Graph) -> Region {
        let region = Region(self.graph.regions.len() as u32);
        self.graph.regions.push(body);
        region
    }

    /// Declares a named input of type `ty`.
    pub fn input(&mut self, name: &str, ty: Type) -> Result<Value> {
        check_name(name)?;
        if self.graph.inputs.iter().any(|(n, _)| n == name) {
            return Err(Error::Name(format!("input `{name}` is declared twice")));
        }
        if super::infer::checked_numel(&ty.shape).is_none() {
            return Err(TypeError::new(
                "input",
                format!("`{name}` : {}", super::infer::too_large(&ty)),
            )
            .into());
        }
        let index = self.graph.inputs.len() as u32;
        let v = self.push_typed(Op::Input { index }, vec![], NodeType::Tensor(ty));
        self.graph.inputs.push((name.to_string(), v));
        Ok(v)
    }

    /// Declares `v` as the output named `name`.
    pub fn output(&mut self, name: &str, v: Value) -> Result<()> {
        check_name(name)?;
        if self.graph.outputs.iter().any(|(n, _)| n == name) {
            return Err(Error::Name(format!("output `{name}` is declared twice")));
        }
        if v.index() >= self.graph.nodes.len() {
            return Err(Error::Name(format!(
                "output `{name}` refers to undefined {v}"
            )));
        }
        if let NodeType::Tuple(_) = self.graph.nodes[v.index()].ty {
            return Err(Error::Name(format!(
                "output `{name}` is a loop tuple; read its elements with `get`"
            )));
        }
        self.graph.outputs.push((name.to_string(), v));
        Ok(())
    }

    // ---- Leaves -------------------------------------------------------------------

    /// A tensor of `shape` filled with the literal `value`.
    pub fn constant(&mut self, value: Scalar, shape: &[usize]) -> Result<Value> {
        self.push(
            Op::Constant {
                value,
                shape: shape.to_vec(),
            },
            &[],
        )
    }

    /// A dense literal of type `ty` with the row-major elements `data` (each converted
    /// to the dtype): an index table, an identity matrix, a mask. Fails when `data` has
    /// not as many elements as `ty` holds.
    pub fn literal(&mut self, ty: &Type, data: &[f64]) -> Result<Value> {
        let values = data.iter().map(|&x| Scalar::of(ty.dtype, x)).collect();
        self.push(
            Op::Literal {
                dtype: ty.dtype,
                values,
                shape: ty.shape.clone(),
            },
            &[],
        )
    }

    /// The `[.., d, d]` lower-triangular matrices whose diagonal is `diag[.., d]` and
    /// whose strictly lower entries are `lower[.., d(d-1)/2]`, column by column (ADBench's
    /// layout of a GMM's inverse covariance factors): one `gather` from the two
    /// concatenated (spread along a new last axis) through a literal `d × d` index
    /// table, whose entries above the diagonal are out of range and so read 0.
    pub fn lower_triangular(&mut self, diag: Value, lower: Value) -> Result<Value> {
        let ds = self.shape(diag);
        let ls = self.shape(lower);
        let (Some((&d, batch)), Some((&m, lbatch))) = (ds.split_last(), ls.split_last()) else {
            return Err(TypeError::new(
                "lower_triangular",
                "the diagonal and the lower entries need at least one axis".to_string(),
            )
            .into());
        };
        if batch != lbatch || m != d * d.saturating_sub(1) / 2 {
            return Err(TypeError::new(
                "lower_triangular",
                format!(
                    "a diagonal {} needs lower entries [.., d(d-1)/2] = [.., {}] with the same leading axes, got {}",
                    self.ty(diag),
                    d * d.saturating_sub(1) / 2,
                    self.ty(lower)
                ),
            )
            .into());
        }
        let axis = batch.len();
        let both = self.concat(&[diag, lower], axis)?;
        // Row-major position (i, j) reads element i of the diagonal, the strictly lower
        // entry (i, j) stored column by column after it, or nothing (an index past the
        // end) above the diagonal.
        let mut table = vec![(d + m) as f64; d * d];
        let mut next = d;
        for j in 0..d {
            table[j * d + j] = j as f64;
            for i in j + 1..d {
                table[i * d + j] = next as f64;
                next += 1;
            }
        }
        // Gathered straight into [.., d, d]: the entries spread along a last axis of d,
        // the table indexing along the entries' axis.
        let table = self.literal(&Type::i32(&[d, d]), &table)?;
        let mut out = batch.to_vec();
        out.extend([d, d]);
        let idx = self.broadcast_in_dim(table, &out, &[axis, axis + 1])?;
        let mut wide = batch.to_vec();
        wide.extend([d + m, d]);
        let dims: Vec<usize> = (0..=axis).collect();
        let spread = self.broadcast_in_dim(both, &wide, &dims)?;
        self.gather(spread, idx, axis)
    }

    /// A tensor of type `ty` filled with `x` (converted to the dtype).
    pub fn full(&mut self, x: f64, ty: &Type) -> Result<Value> {
        self.constant(Scalar::of(ty.dtype, x), &ty.shape)
    }

    /// A tensor of `v`'s type filled with `x`.
    pub fn full_like(&mut self, x: f64, v: Value) -> Result<Value> {
        let ty = self.ty(v).clone();
        self.full(x, &ty)
    }

    /// An `f32` scalar.
    pub fn scalar(&mut self, x: f64) -> Result<Value> {
        self.constant(Scalar::float(x), &[])
    }

    /// Indices along `axis` of a tensor of `shape`.
    pub fn iota(&mut self, dtype: DType, shape: &[usize], axis: usize) -> Result<Value> {
        self.push(
            Op::Iota {
                dtype,
                shape: shape.to_vec(),
                axis,
            },
            &[],
        )
    }

    // ---- Elementwise --------------------------------------------------------------

    unary_methods! {
        neg => Neg, exp => Exp, log => Log, sin => Sin, cos => Cos, tanh => Tanh,
        sqrt => Sqrt, rsqrt => Rsqrt, recip => Recip, abs => Abs, sign => Sign,
        lgamma => Lgamma, digamma => Digamma,
    }

    binary_methods! {
        add => Add, sub => Sub, mul => Mul, div => Div, max => Max, min => Min, pow => Pow,
    }

    compare_methods! {
        eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge,
    }

    /// A binary op after broadcasting both operands to their common shape.
    pub fn binary(&mut self, op: BinaryOp, a: Value, b: Value) -> Result<Value> {
        let (a, b) = self.broadcast_pair(op.name(), a, b)?;
        self.push(Op::Binary(op), &[a, b])
    }

    /// A comparison after broadcasting both operands to their common shape.
    pub fn compare(&mut self, op: CmpOp, a: Value, b: Value) -> Result<Value> {
        let (a, b) = self.broadcast_pair(op.name(), a, b)?;
        self.push(Op::Compare(op), &[a, b])
    }

    /// `cond ? a : b`, broadcasting all three operands to their common shape.
    pub fn select(&mut self, cond: Value, a: Value, b: Value) -> Result<Value> {
        let shape = self.broadcast_shape("select", &[cond, a, b])?;
        let cond = self.broadcast_to(cond, &shape)?;
        let a = self.broadcast_to(a, &shape)?;
        let b = self.broadcast_to(b, &shape)?;
        self.push(Op::Select, &[cond, a, b])
    }

    /// Converts elements to `dtype`; see [`Op::Cast`].
    pub fn cast(&mut self, x: Value, dtype: DType) -> Result<Value> {
        self.push(Op::Cast { dtype }, &[x])
    }

    /// The identity whose derivative is zero.
    pub fn stop_gradient(&mut self, x: Value) -> Result<Value> {
        self.push(Op::StopGradient, &[x])
    }

    // ---- Shapes -------------------------------------------------------------------

    /// The NumPy broadcast of the shapes of `vals`, or a type error naming `op`.
    pub fn broadcast_shape(&self, op: &str, vals: &[Value]) -> Result<Vec<usize>> {
        let rank = vals.iter().map(|&v| self.ty(v).rank()).max().unwrap_or(0);
        let mut out = vec![1usize; rank];
        for &v in vals {
            let s = &self.ty(v).shape;
            for (i, &d) in s.iter().enumerate() {
                let o = &mut out[rank - s.len() + i];
                if *o == 1 {
                    *o = d;
                } else if d != 1 && d != *o {
                    let shapes: Vec<String> =
                        vals.iter().map(|&v| self.ty(v).to_string()).collect();
                    return Err(TypeError::new(
                        op,
                        format!("cannot broadcast {} together", shapes.join(" and ")),
                    )
                    .into());
                }
            }
        }
        Ok(out)
    }

    fn broadcast_pair(&mut self, op: &str, a: Value, b: Value) -> Result<(Value, Value)> {
        let shape = self.broadcast_shape(op, &[a, b])?;
        Ok((self.broadcast_to(a, &shape)?, self.broadcast_to(b, &shape)?))
    }

    /// NumPy-style broadcast of `x` to `shape` (trailing axes aligned); no node is added
    /// when the shape already matches.
    pub fn broadcast_to(&mut self, x: Value, shape: &[usize]) -> Result<Value> {
        let rank = self.ty(x).rank();
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        if rank > shape.len() {
            return Err(TypeError::new(
                "broadcast",
                format!("cannot broadcast {} to {}", self.ty(x), fmt_shape(shape)),
            )
            .into());
        }
        let dims: Vec<usize> = (shape.len() - rank..shape.len()).collect();
        self.broadcast_in_dim(x, shape, &dims)
    }

    /// Broadcasts `x` into `shape`, operand axis `i` becoming result axis `dims[i]`.
    pub fn broadcast_in_dim(&mut self, x: Value, shape: &[usize], dims: &[usize]) -> Result<Value> {
        self.push(
            Op::Broadcast {
                shape: shape.to_vec(),
                dims: dims.to_vec(),
            },
            &[x],
        )
    }

    /// The same elements under a new shape; no node when the shape is unchanged.
    pub fn reshape(&mut self, x: Value, shape: &[usize]) -> Result<Value> {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        self.push(
            Op::Reshape {
                shape: shape.to_vec(),
            },
            &[x],
        )
    }

    /// Permutes axes: result axis `i` is operand axis `perm[i]`.
    pub fn transpose(&mut self, x: Value, perm: &[usize]) -> Result<Value> {
        self.push(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }

    /// The sub-tensor `start..limit` on every axis.
    pub fn slice(&mut self, x: Value, start: &[usize], limit: &[usize]) -> Result<Value> {
        self.push(
            Op::Slice {
                start: start.to_vec(),
                limit: limit.to_vec(),
            },
            &[x],
        )
    }

    /// Concatenates `xs` along `axis`.
    pub fn concat(&mut self, xs: &[Value], axis: usize) -> Result<Value> {
        self.push(Op::Concat { axis }, xs)
    }

    /// Pads with `low`/`high` elements of `value` on each axis.
    pub fn pad(&mut self, x: Value, low: &[usize], high: &[usize], value: Scalar) -> Result<Value> {
        self.push(
            Op::Pad {
                low: low.to_vec(),
                high: high.to_vec(),
                value,
            },
            &[x],
        )
    }

    // ---- Reductions and products --------------------------------------------------

    /// Reduces over `axes` (any order), removing them.
    pub fn reduce(&mut self, kind: ReduceKind, x: Value, axes: &[usize]) -> Result<Value> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        self.push(Op::Reduce { kind, axes }, &[x])
    }

    /// The sum over `axes`.
    pub fn sum(&mut self, x: Value, axes: &[usize]) -> Result<Value> {
        self.reduce(ReduceKind::Sum, x, axes)
    }

    /// The sum of every element: a scalar.
    pub fn sum_all(&mut self, x: Value) -> Result<Value> {
        let axes: Vec<usize> = (0..self.ty(x).rank()).collect();
        self.sum(x, &axes)
    }

    /// The maximum over `axes`.
    pub fn reduce_max(&mut self, x: Value, axes: &[usize]) -> Result<Value> {
        self.reduce(ReduceKind::Max, x, axes)
    }

    /// The mean over `axes`.
    pub fn mean(&mut self, x: Value, axes: &[usize]) -> Result<Value> {
        let n: usize = axes
            .iter()
            .map(|&a| self.ty(x).shape.get(a).copied().unwrap_or(1))
            .product();
        let s = self.sum(x, axes)?;
        let inv = self.full_like(1.0 / n.max(1) as f64, s)?;
        self.mul(s, inv)
    }

    /// The mean of every element: a scalar.
    pub fn mean_all(&mut self, x: Value) -> Result<Value> {
        let axes: Vec<usize> = (0..self.ty(x).rank()).collect();
        self.mean(x, &axes)
    }

    /// A generalized batched product; see [`DotDims`].
    pub fn dot(&mut self, a: Value, b: Value, dims: DotDims) -> Result<Value> {
        self.push(Op::Dot(dims), &[a, b])
    }

    /// The matrix product `[.., m, k] · [.., k, n]`, with equal leading batch axes.
    pub fn matmul(&mut self, a: Value, b: Value) -> Result<Value> {
        let (ra, rb) = (self.ty(a).rank(), self.ty(b).rank());
        if ra < 2 || ra != rb {
            return Err(TypeError::new(
                "matmul",
                format!(
                    "needs two operands of equal rank ≥ 2, got {} and {}",
                    self.ty(a),
                    self.ty(b)
                ),
            )
            .into());
        }
        let batch: Vec<usize> = (0..ra - 2).collect();
        self.dot(
            a,
            b,
            DotDims {
                lhs_batch: batch.clone(),
                rhs_batch: batch,
                lhs_contract: vec![ra - 1],
                rhs_contract: vec![rb - 2],
            },
        )
    }

    // ---- Indexing -----------------------------------------------------------------

    /// One-hot rows of extent `depth` for integer `indices`.
    pub fn one_hot(&mut self, indices: Value, depth: usize, dtype: DType) -> Result<Value> {
        self.push(Op::OneHot { depth, dtype }, &[indices])
    }

    /// `take_along_axis(x, idx, axis)`; see [`Op::Gather`].
    pub fn gather(&mut self, x: Value, idx: Value, axis: usize) -> Result<Value> {
        self.push(Op::Gather { axis }, &[x, idx])
    }

    /// The window of extents `sizes` of `x` starting at the `i32` scalars `starts`, one
    /// per axis (clamped into range); see [`Op::DynamicSlice`].
    pub fn dynamic_slice(&mut self, x: Value, starts: &[Value], sizes: &[usize]) -> Result<Value> {
        let args: Vec<Value> = std::iter::once(x).chain(starts.iter().copied()).collect();
        self.push(
            Op::DynamicSlice {
                sizes: sizes.to_vec(),
            },
            &args,
        )
    }

    /// `x` with the window at `starts` (clamped into range) replaced by `update`; see
    /// [`Op::DynamicUpdateSlice`].
    pub fn dynamic_update_slice(
        &mut self,
        x: Value,
        update: Value,
        starts: &[Value],
    ) -> Result<Value> {
        let args: Vec<Value> = [x, update]
            .into_iter()
            .chain(starts.iter().copied())
            .collect();
        self.push(Op::DynamicUpdateSlice, &args)
    }

    /// The transpose of [`Builder::gather`]; see [`Op::ScatterAdd`].
    pub fn scatter_add(&mut self, u: Value, idx: Value, axis: usize, size: usize) -> Result<Value> {
        self.push(Op::ScatterAdd { axis, size }, &[u, idx])
    }

    // ---- Control flow -------------------------------------------------------------

    /// Copies the nodes of `g` (a loop body, say) into this graph with `g`'s inputs
    /// bound to `inputs`, nested loops copied as loops; returns the values of `g`'s
    /// outputs.
    pub fn inline_graph(&mut self, g: &Graph, inputs: &[Value]) -> Result<Vec<Value>> {
        let lost = |v: Value| Error::Name(format!("{v} of an inlined graph has no copy"));
        let mut map: Vec<Option<Value>> = Vec::with_capacity(g.len());
        let mut tuples: Vec<Vec<Value>> = vec![Vec::new(); g.len()];
        for (j, node) in g.nodes.iter().enumerate() {
            let args = node
                .args
                .iter()
                .map(|a| map[a.index()].ok_or_else(|| lost(*a)))
                .collect::<Result<Vec<Value>>>();
            let value = match &node.op {
                Op::Input { index } => Some(
                    *inputs
                        .get(*index as usize)
                        .ok_or_else(|| Error::Name(format!("no value for input {index}")))?,
                ),
                Op::Loop {
                    trips,
                    carried,
                    body,
                } => {
                    let args = args?;
                    let (c, x) = args.split_at(*carried as usize);
                    tuples[j] = self.loop_of(*trips, c, x, g.region(*body))?;
                    None
                }
                Op::Get { index } => tuples[node.args[0].index()].get(*index as usize).copied(),
                op => Some(self.push(op.clone(), &args?)?),
            };
            map.push(value);
        }
        g.outputs
            .iter()
            .map(|(_, v)| map[v.index()].ok_or_else(|| lost(*v)))
            .collect()
    }

    /// A loop of `trips` iterations over `carried` values with read-only `invariants`
    /// whose body is a copy of `body` (inputs: the index, the carried values, the
    /// invariants; outputs: the next carried values). Returns the final carried values.
    pub fn loop_of(
        &mut self,
        trips: u32,
        carried: &[Value],
        invariants: &[Value],
        body: &Graph,
    ) -> Result<Vec<Value>> {
        self.loop_(trips, carried, invariants, |inner, i, params, inv| {
            let mut inputs = vec![i];
            inputs.extend(params);
            inputs.extend(inv);
            inner.inline_graph(body, &inputs)
        })
    }

    /// A loop of `trips` iterations over `carried` values with read-only `invariants`.
    ///
    /// `body` receives a builder for the body region, the iteration index (`i32[]`), the
    /// carried values and the invariants, and returns the next carried values. The result
    /// is one value per carried value: its final state.
    pub fn loop_<F>(
        &mut self,
        trips: u32,
        carried: &[Value],
        invariants: &[Value],
        body: F,
    ) -> Result<Vec<Value>>
    where
        F: FnOnce(&mut Builder, Value, &[Value], &[Value]) -> Result<Vec<Value>>,
    {
        let mut inner = Builder::new();
        let i = inner.input("i", Type::i32(&[]))?;
        let mut params = Vec::new();
        for (k, &v) in carried.iter().enumerate() {
            params.push(inner.input(&format!("c{k}"), self.ty(v).clone())?);
        }
        let mut inv = Vec::new();
        for (k, &v) in invariants.iter().enumerate() {
            inv.push(inner.input(&format!("x{k}"), self.ty(v).clone())?);
        }
        let next = body(&mut inner, i, &params, &inv)?;
        for (k, v) in next.into_iter().enumerate() {
            inner.output(&format!("c{k}"), v)?;
        }
        let region = Region(self.graph.regions.len() as u32);
        self.graph.regions.push(inner.graph);
        let args: Vec<Value> = carried.iter().chain(invariants).copied().collect();
        let tuple = self.push(
            Op::Loop {
                trips,
                carried: carried.len() as u32,
                body: region,
            },
            &args,
        );
        let tuple = match tuple {
            Ok(t) => t,
            Err(e) => {
                self.graph.regions.pop();
                return Err(e);
            }
        };
        (0..carried.len() as u32)
            .map(|index| self.push(Op::Get { index }, &[tuple]))
            .collect()
    }

    // ---- Composites ---------------------------------------------------------------

    /// The trigamma function `ψ'(x)` for `x > 0`, from primitives: shifted by six with
    /// `ψ'(x) = ψ'(x + 1) + 1/x²`, then the asymptotic series
    /// `1/z + 1/2z² + 1/6z³ − 1/30z⁵ + 1/42z⁷ − 1/30z⁹` (relative error below 1e-9 in
    /// f64 for `z ≥ 6`). The derivative of `digamma`; being primitives, it
    /// differentiates again.
    pub fn trigamma(&mut self, x: Value) -> Result<Value> {
        let one = self.full_like(1.0, x)?;
        let mut shifted = Vec::new();
        let mut z = x;
        for _ in 0..6 {
            let r = self.recip(z)?;
            shifted.push(self.mul(r, r)?);
            z = self.add(z, one)?;
        }
        let r = self.recip(z)?;
        let r2 = self.mul(r, r)?;
        // r·(1 + r/2 + r²·P) with P = ((−1/30·r² + 1/42)·r² − 1/30)·r² + 1/6.
        let mut p = self.full_like(-1.0 / 30.0, x)?;
        for c in [1.0 / 42.0, -1.0 / 30.0, 1.0 / 6.0] {
            p = self.mul(p, r2)?;
            let k = self.full_like(c, x)?;
            p = self.add(p, k)?;
        }
        let acc = self.mul(p, r2)?;
        let half = self.full_like(0.5, x)?;
        let hr = self.mul(half, r)?;
        let acc = self.add(acc, hr)?;
        let acc = self.add(acc, one)?;
        let mut total = self.mul(acc, r)?;
        for s in shifted {
            total = self.add(total, s)?;
        }
        Ok(total)
    }

    /// `max(x, 0)`. Its derivative at 0 is 0.
    pub fn relu(&mut self, x: Value) -> Result<Value> {
        let zero = self.full_like(0.0, x)?;
        let pos = self.gt(x, zero)?;
        self.select(pos, x, zero)
    }

    /// `1 / (1 + e^-x)`, written `(1 + tanh(x/2)) / 2` so it never overflows.
    pub fn sigmoid(&mut self, x: Value) -> Result<Value> {
        let half = self.full_like(0.5, x)?;
        let t = self.mul(x, half)?;
        let t = self.tanh(t)?;
        let t = self.mul(t, half)?;
        self.add(t, half)
    }

    /// `log(1 + e^x)`, computed stably as `max(x, 0) + log(1 + e^-|x|)`.
    pub fn softplus(&mut self, x: Value) -> Result<Value> {
        let r = self.relu(x)?;
        let a = self.abs(x)?;
        let na = self.neg(a)?;
        let e = self.exp(na)?;
        let one = self.full_like(1.0, x)?;
        let s = self.add(one, e)?;
        let l = self.log(s)?;
        self.add(r, l)
    }

    /// `e^(x - m)` and `Σ_axis e^(x - m)` where `m = max_axis x` (held constant for
    /// differentiation, since the result does not depend on it): the stable core of
    /// `logsumexp` and `softmax`. Returns the exponentials, their sum and `m`.
    fn shifted_exp(&mut self, x: Value, axis: usize) -> Result<(Value, Value, Value)> {
        let shape = self.shape(x);
        let m = self.reduce_max(x, &[axis])?;
        let m = self.stop_gradient(m)?;
        let mb = self.unsqueeze_to(m, &shape, axis)?;
        let d = self.sub(x, mb)?;
        let e = self.exp(d)?;
        let s = self.sum(e, &[axis])?;
        Ok((e, s, m))
    }

    /// `log Σ_axis e^x`, with the maximum subtracted first for stability. The axis is
    /// removed from the shape.
    pub fn logsumexp(&mut self, x: Value, axis: usize) -> Result<Value> {
        let (_, s, m) = self.shifted_exp(x, axis)?;
        let l = self.log(s)?;
        self.add(l, m)
    }

    /// `x - logsumexp(x)` along `axis`.
    pub fn log_softmax(&mut self, x: Value, axis: usize) -> Result<Value> {
        let shape = self.shape(x);
        let l = self.logsumexp(x, axis)?;
        let l = self.unsqueeze_to(l, &shape, axis)?;
        self.sub(x, l)
    }

    /// `e^x / Σ_axis e^x`, with the maximum subtracted first.
    pub fn softmax(&mut self, x: Value, axis: usize) -> Result<Value> {
        let shape = self.shape(x);
        let (e, s, _) = self.shifted_exp(x, axis)?;
        let s = self.unsqueeze_to(s, &shape, axis)?;
        self.div(e, s)
    }

    /// Mean cross-entropy of `logits[B, C]` against integer class `labels[B]`:
    /// `mean_b(logsumexp(z_b) - z_b[label_b])`.
    pub fn cross_entropy(&mut self, logits: Value, labels: Value) -> Result<Value> {
        let (zt, lt) = (self.ty(logits).clone(), self.ty(labels).clone());
        if zt.rank() != 2 || lt.shape != [zt.shape[0]] || !lt.dtype.is_int() {
            return Err(TypeError::new(
                "cross_entropy",
                format!("needs logits [B,C] and integer labels [B], got {zt} and {lt}"),
            )
            .into());
        }
        let b = zt.shape[0];
        let lse = self.logsumexp(logits, 1)?;
        let idx = self.reshape(labels, &[b, 1])?;
        let picked = self.gather(logits, idx, 1)?;
        let picked = self.reshape(picked, &[b])?;
        let per_row = self.sub(lse, picked)?;
        self.mean_all(per_row)
    }

    /// Mean cross-entropy of `logits[B, C]` against dense target distributions
    /// `targets[B, C]`: `mean_b(-Σ_c targets · log_softmax(logits))`.
    pub fn cross_entropy_dense(&mut self, logits: Value, targets: Value) -> Result<Value> {
        let (zt, tt) = (self.ty(logits).clone(), self.ty(targets).clone());
        if zt.rank() != 2 || zt != tt {
            return Err(TypeError::new(
                "cross_entropy_dense",
                format!("needs logits [B,C] and targets of the same type, got {zt} and {tt}"),
            )
            .into());
        }
        let ls = self.log_softmax(logits, 1)?;
        let p = self.mul(targets, ls)?;
        let s = self.sum(p, &[1])?;
        let m = self.mean_all(s)?;
        self.neg(m)
    }

    /// Mean squared error: `mean((pred - target)^2)`.
    pub fn mse(&mut self, pred: Value, target: Value) -> Result<Value> {
        let d = self.sub(pred, target)?;
        let sq = self.mul(d, d)?;
        self.mean_all(sq)
    }

    /// The affine layer `x · w + b` for `x[.., in]`, `w[in, out]`, `b[out]`.
    pub fn linear(&mut self, x: Value, w: Value, b: Value) -> Result<Value> {
        let rx = self.ty(x).rank();
        if rx == 0 || self.ty(w).rank() != 2 {
            return Err(TypeError::new(
                "linear",
                format!(
                    "needs x[..,in] and w[in,out], got {} and {}",
                    self.ty(x),
                    self.ty(w)
                ),
            )
            .into());
        }
        let y = self.dot(
            x,
            w,
            DotDims {
                lhs_batch: vec![],
                rhs_batch: vec![],
                lhs_contract: vec![rx - 1],
                rhs_contract: vec![0],
            },
        )?;
        self.add(y, b)
    }

    /// Broadcasts `x` (of `shape` with `axis` removed) back to `shape`.
    pub fn unsqueeze_to(&mut self, x: Value, shape: &[usize], axis: usize) -> Result<Value> {
        let dims: Vec<usize> = (0..shape.len()).filter(|&i| i != axis).collect();
        self.broadcast_in_dim(x, shape, &dims)
    }
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::Name(format!(
            "`{name}` is not a valid name (expected [A-Za-z_][A-Za-z0-9_.]*)"
        )))
    }
}
