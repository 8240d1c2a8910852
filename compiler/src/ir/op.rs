//! The closed set of primitive operations.
//!
//! [`Op`] is one enum with its parameters inline. Every transform (shape inference,
//! printing, parsing, interpretation, VJP, JVP) matches on it exhaustively, so adding an
//! op fails to compile until each of them has an arm.
//!
//! The text format reads one table, [`OpKind::syntax`]: every op's mnemonic and the
//! attributes written after its operands. The printer and the parser both take names and
//! attributes from it, so neither keeps a list of its own.
//!
//! Common typing rule: elementwise primitives take operands of *equal* shape and dtype.
//! There is no implicit broadcasting or promotion in the IR; the [`Builder`] inserts
//! explicit [`Op::Broadcast`] nodes.
//!
//! [`Builder`]: crate::ir::Builder

use super::types::{DType, Scalar};

/// Elementwise functions of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    /// `-x`. Integers wrap (`-i32::MIN == i32::MIN`), as in WGSL.
    Neg,
    /// `e^x`. Float only.
    Exp,
    /// Natural logarithm. Float only.
    Log,
    /// Sine. Float only.
    Sin,
    /// Cosine. Float only.
    Cos,
    /// Hyperbolic tangent. Float only.
    Tanh,
    /// Square root. Float only.
    Sqrt,
    /// `1 / sqrt(x)`. Float only.
    Rsqrt,
    /// `1 / x`. Float only.
    Recip,
    /// `|x|`. The subgradient at 0 is 0. Integers wrap (`|i32::MIN| == i32::MIN`).
    Abs,
    /// `-1`, `0` or `1` (`0` for NaN too). Its derivative is zero everywhere.
    Sign,
    /// `ln |Γ(x)|`. Float only. `+inf` at the poles, 0 and the negative integers, as
    /// the standard function gives. On a device: `wg_lgamma` of `shaders/special.wgsl`
    /// (Stirling's series after shifting the argument past 8, reflection below ½),
    /// within 4e-6·(1 + |result|) of the exact value on (0, 1e4] and at negative
    /// non-integers (measured worst on lavapipe: 2.0e-6, near x = 1.5, where the
    /// shift's logarithm cancels the series'). Its derivative is [`UnaryOp::Digamma`].
    Lgamma,
    /// `ψ(x) = Γ'(x)/Γ(x)`, the derivative of [`UnaryOp::Lgamma`]. Float only. NaN at
    /// the poles (0 and the negative integers). On a device: the asymptotic series
    /// after shifting past 8, reflection below ½, within 4e-6·(1 + |result|) where
    /// `lgamma` is. Its derivative, the trigamma function, is computed from primitives
    /// ([`Builder::trigamma`](crate::ir::Builder::trigamma): a shift and a series),
    /// valid for `x > 0`.
    Digamma,
}

impl UnaryOp {
    /// All unary ops.
    pub const ALL: [UnaryOp; 13] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Lgamma,
        UnaryOp::Digamma,
    ];

    /// The mnemonic used in the text format.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Recip => "recip",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Lgamma => "lgamma",
            UnaryOp::Digamma => "digamma",
        }
    }

    /// Whether the op is defined on integer operands as well as floats.
    pub fn accepts_int(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign)
    }
}

/// Elementwise functions of two operands of equal type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// `a + b`, wrapping for integers.
    Add,
    /// `a - b`, wrapping for integers.
    Sub,
    /// `a * b`, wrapping for integers.
    Mul,
    /// `a / b`. For integers it truncates, and as in WGSL `a / 0 == a` and
    /// `i32::MIN / -1 == i32::MIN`.
    Div,
    /// The larger operand. On ties the cotangent is split evenly between the operands.
    /// A NaN operand gives NaN in the interpreter; on a device it is
    /// implementation-defined, as in WGSL.
    Max,
    /// The smaller operand. On ties the cotangent is split evenly between the operands.
    Min,
    /// `a^b`. Float only. The interpreter follows `f64::powf`; a device computes
    /// `exp2(b·log2 a)` as WGSL does, so only `a > 0` is portable.
    Pow,
}

impl BinaryOp {
    /// All binary ops.
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Pow,
    ];

    /// The mnemonic used in the text format.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Pow => "pow",
        }
    }

    /// Whether the op is defined on integer operands as well as floats.
    pub fn accepts_int(self) -> bool {
        !matches!(self, BinaryOp::Pow)
    }
}

/// Elementwise comparisons; the result is `bool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
}

impl CmpOp {
    /// All comparisons.
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];

    /// The mnemonic used in the text format.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// How a [`Op::Reduce`] combines elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReduceKind {
    /// The sum (wrapping for integers). The sum over no elements is 0.
    Sum,
    /// The maximum. Ties split the cotangent evenly among the maximal elements.
    Max,
    /// The minimum. Ties split the cotangent evenly among the minimal elements.
    Min,
}

impl ReduceKind {
    /// All reduction kinds.
    pub const ALL: [ReduceKind; 3] = [ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min];

    /// The mnemonic used in the text format.
    pub fn name(self) -> &'static str {
        match self {
            ReduceKind::Sum => "sum",
            ReduceKind::Max => "max",
            ReduceKind::Min => "min",
        }
    }
}

/// Dimension numbers of a [`Op::Dot`]: a batched, generalized matrix product.
///
/// The result's axes are, in order: the batch axes (in `lhs_batch` order), the free axes
/// of `lhs` (those neither batch nor contracting, in order), then the free axes of `rhs`.
/// A plain matrix product `[m,k]·[k,n]` has `lhs_contract = [1]`, `rhs_contract = [0]`
/// and no batch axes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DotDims {
    /// Batch axes of the left operand.
    pub lhs_batch: Vec<usize>,
    /// Batch axes of the right operand, paired with `lhs_batch`.
    pub rhs_batch: Vec<usize>,
    /// Contracted axes of the left operand.
    pub lhs_contract: Vec<usize>,
    /// Contracted axes of the right operand, paired with `lhs_contract`.
    pub rhs_contract: Vec<usize>,
}

impl DotDims {
    /// The dimension numbers of a plain matrix product `[m,k]·[k,n]`.
    pub fn matmul() -> DotDims {
        DotDims {
            lhs_batch: vec![],
            rhs_batch: vec![],
            lhs_contract: vec![1],
            rhs_contract: vec![0],
        }
    }

    /// The free (neither batch nor contracted) axes of an operand of rank `rank`.
    pub fn free_axes(rank: usize, batch: &[usize], contract: &[usize]) -> Vec<usize> {
        (0..rank)
            .filter(|a| !batch.contains(a) && !contract.contains(a))
            .collect()
    }
}

/// A region handle: the index of a body graph in [`Graph::regions`].
///
/// [`Graph::regions`]: crate::ir::Graph::regions
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(pub u32);

/// A primitive operation. Each variant documents its operands and typing rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// The program input declared at position `index` of the graph's inputs.
    /// No operands; its type is declared.
    Input {
        /// Position in [`Graph::inputs`](crate::ir::Graph::inputs).
        index: u32,
    },
    /// A tensor of the given shape with every element equal to `value`.
    /// No operands; dtype is the literal's.
    Constant {
        /// The element value.
        value: Scalar,
        /// The result shape.
        shape: Vec<usize>,
    },
    /// A tensor of the given shape with the given elements, in row-major order: an
    /// index table, an identity matrix, a triangular mask. No operands; every element
    /// is a literal of one dtype, the result's. Written `constant [[1, 0], [2, 3]]` in
    /// the text format, nested as the shape is.
    Literal {
        /// The element type.
        dtype: DType,
        /// The elements, row-major, as many as the shape holds.
        values: Vec<Scalar>,
        /// The result shape.
        shape: Vec<usize>,
    },
    /// A tensor whose elements are their index along `axis`.
    /// No operands; `dtype` may be any numeric type.
    Iota {
        /// Element type of the result.
        dtype: DType,
        /// The result shape.
        shape: Vec<usize>,
        /// The axis whose index is the element value.
        axis: usize,
    },
    /// `f(x)` elementwise. One operand; result has the operand's type.
    Unary(UnaryOp),
    /// `f(a, b)` elementwise. Two operands of equal type; result has that type.
    Binary(BinaryOp),
    /// Elementwise comparison. Two operands of equal type; result is `bool` of that shape.
    Compare(CmpOp),
    /// `cond ? a : b` elementwise. Operands `(cond: bool, a, b)`, all of one shape, `a`
    /// and `b` of one dtype.
    Select,
    /// Converts elements to `dtype`: floats to integers truncate and saturate (NaN gives
    /// 0), anything to `bool` tests `!= 0`, `bool` converts to 0 or 1.
    Cast {
        /// The result element type.
        dtype: DType,
    },
    /// Broadcasts the operand into `shape`: operand axis `i` becomes result axis
    /// `dims[i]` (strictly increasing), whose extent must equal the operand's or the
    /// operand's must be 1. The remaining result axes are new.
    Broadcast {
        /// The result shape.
        shape: Vec<usize>,
        /// For each operand axis, the result axis it maps to.
        dims: Vec<usize>,
    },
    /// The same elements in row-major order under a new shape of equal element count.
    Reshape {
        /// The result shape.
        shape: Vec<usize>,
    },
    /// Permutes axes: result axis `i` is operand axis `perm[i]`.
    Transpose {
        /// A permutation of `0..rank`.
        perm: Vec<usize>,
    },
    /// The sub-tensor `start[i] .. limit[i]` along every axis.
    Slice {
        /// Inclusive start per axis.
        start: Vec<usize>,
        /// Exclusive end per axis.
        limit: Vec<usize>,
    },
    /// Concatenates one or more operands of equal dtype along `axis`; all other extents
    /// must agree.
    Concat {
        /// The axis joined along.
        axis: usize,
    },
    /// Pads every axis with `low[i]` elements before and `high[i]` after, all `value`.
    Pad {
        /// Elements added before, per axis.
        low: Vec<usize>,
        /// Elements added after, per axis.
        high: Vec<usize>,
        /// The padding value, of the operand's dtype.
        value: Scalar,
    },
    /// Reduces over `axes` (strictly increasing), which are removed from the shape.
    Reduce {
        /// How elements are combined.
        kind: ReduceKind,
        /// The reduced axes.
        axes: Vec<usize>,
    },
    /// A batched generalized matrix product; see [`DotDims`]. Two operands of one dtype.
    Dot(DotDims),
    /// `one_hot(i)[.., j] = (i[..] == j)` as `dtype`, with a new last axis of extent
    /// `depth`. One integer operand. An out-of-range index gives a row of zeros.
    OneHot {
        /// The extent of the new last axis.
        depth: usize,
        /// The result element type.
        dtype: DType,
    },
    /// The window of extents `sizes` of `x` starting at run-time indices: operands `x`
    /// and then one `i32` scalar start per axis of `x`. Each start is clamped into
    /// `0 ..= dim - size` (as XLA does), so the window always lies inside `x`: a start
    /// below 0 reads from 0, one too large reads the last window. The result has `x`'s
    /// dtype and shape `sizes`. JAX's `x[i]` inside a loop is
    /// `dynamic_slice(x, i) sizes=[1]`.
    DynamicSlice {
        /// The window's extent along each axis (each at most `x`'s).
        sizes: Vec<usize>,
    },
    /// `x` with a window replaced by `update`: operands `x`, `update` (same dtype and
    /// rank as `x`, each extent at most `x`'s) and then one `i32` scalar start per axis.
    /// Each start is clamped into `0 ..= dim - extent`, like [`Op::DynamicSlice`]'s. The
    /// result has `x`'s type. JAX's `out.at[i].set(v)`.
    DynamicUpdateSlice,
    /// `take_along_axis`: operands `(x, idx)` where `idx` is an integer tensor of `x`'s
    /// rank whose extents equal `x`'s except along `axis`. The result has `idx`'s shape:
    /// `out[.., j, ..] = x[.., idx[.., j, ..], ..]`. An out-of-range index reads 0.
    Gather {
        /// The axis indexed.
        axis: usize,
    },
    /// The transpose of [`Op::Gather`]: operands `(u, idx)` of equal shape; the result
    /// has `u`'s shape with extent `size` along `axis`, and
    /// `out[.., i, ..] = Σ_j [idx[.., j, ..] == i] · u[.., j, ..]`, summed in order of
    /// `j` (deterministic). Out-of-range indices are dropped.
    ScatterAdd {
        /// The axis scattered along.
        axis: usize,
        /// The result extent along `axis`.
        size: usize,
    },
    /// The identity whose derivative is zero.
    StopGradient,
    /// Structured loop with a fixed trip count, running the body graph `body` `trips`
    /// times. Operands: `carried` initial values, then any number of loop-invariant
    /// values. The body's inputs are the iteration index (`i32[]`), the carried values,
    /// then the invariants; its outputs are the next carried values, of the same types.
    /// The result is a tuple of the final carried values, read with [`Op::Get`].
    Loop {
        /// The number of iterations.
        trips: u32,
        /// How many leading operands are carried.
        carried: u32,
        /// The body graph.
        body: Region,
    },
    /// Element `index` of a loop's tuple result.
    Get {
        /// The tuple position.
        index: u32,
    },
}

/// How lowering treats an op: which kernel it may join, whether it is computed where
/// it is read, and what loop structure it needs. Every lowering decision asks
/// [`Op::class`] rather than listing ops, so a new op is classified once, here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// A buffer filled before any kernel runs: a program input, which the host fills,
    /// or a dense literal (`constant [...]`), which the runtime uploads when it loads the
    /// program (indexing an array embedded in a shader compiles very slowly on some
    /// drivers: minutes on lavapipe for a table of 100).
    Input,
    /// Computed from its coordinates alone (`constant`, `iota`): never stored, computed
    /// wherever it is read.
    Generated,
    /// One element from the same element of each operand: `unary`, `binary`, `compare`,
    /// `select`, `cast`.
    Elementwise,
    /// Its operand, unchanged (`stop_gradient`).
    Identity,
    /// Reads its one operand at other coordinates, with no arithmetic: `broadcast`,
    /// `reshape`, `transpose`, `slice`.
    Reindex,
    /// Computes where, or whether, to read its operands: `pad`, `concat`, `one_hot`,
    /// `gather`.
    Indexed,
    /// Folds its operand along axes (`reduce`): a loop per output element.
    Reduction,
    /// Contracts two operands (`dot`): a loop per output element, or a product kernel.
    Contraction,
    /// Adds its operand into computed positions (`scatter_add`).
    Scatter,
    /// A loop or one of its results (`loop`, `get`): unrolled before lowering.
    Loop,
}

impl Op {
    /// How lowering treats this op.
    pub fn class(&self) -> OpClass {
        match self {
            Op::Input { .. } => OpClass::Input,
            Op::Literal { .. } => OpClass::Input,
            Op::Constant { .. } | Op::Iota { .. } => OpClass::Generated,
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. } => {
                OpClass::Elementwise
            }
            Op::StopGradient => OpClass::Identity,
            Op::Broadcast { .. } | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } => {
                OpClass::Reindex
            }
            Op::Pad { .. }
            | Op::Concat { .. }
            | Op::OneHot { .. }
            | Op::Gather { .. }
            | Op::DynamicSlice { .. }
            | Op::DynamicUpdateSlice => OpClass::Indexed,
            Op::Reduce { .. } => OpClass::Reduction,
            Op::Dot(_) => OpClass::Contraction,
            Op::ScatterAdd { .. } => OpClass::Scatter,
            Op::Loop { .. } | Op::Get { .. } => OpClass::Loop,
        }
    }

    /// A loop's trip count, number of carried values and body; `None` for other ops.
    pub fn as_loop(&self) -> Option<(u32, usize, Region)> {
        match self {
            Op::Loop {
                trips,
                carried,
                body,
            } => Some((*trips, *carried as usize, *body)),
            _ => None,
        }
    }

    /// The mnemonic used in the text format.
    pub fn name(&self) -> &'static str {
        self.kind().syntax().name
    }

    /// What the op is without its parameters: the key of its entry in
    /// [`OpKind::syntax`].
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Input { .. } => OpKind::Input,
            // A literal is written as a constant whose value is a nested list.
            Op::Constant { .. } | Op::Literal { .. } => OpKind::Constant,
            Op::Iota { .. } => OpKind::Iota,
            Op::Unary(u) => OpKind::Unary(*u),
            Op::Binary(b) => OpKind::Binary(*b),
            Op::Compare(c) => OpKind::Compare(*c),
            Op::Select => OpKind::Select,
            Op::Cast { .. } => OpKind::Cast,
            Op::Broadcast { .. } => OpKind::Broadcast,
            Op::Reshape { .. } => OpKind::Reshape,
            Op::Transpose { .. } => OpKind::Transpose,
            Op::Slice { .. } => OpKind::Slice,
            Op::Concat { .. } => OpKind::Concat,
            Op::Pad { .. } => OpKind::Pad,
            Op::Reduce { kind, .. } => OpKind::Reduce(*kind),
            Op::Dot(_) => OpKind::Dot,
            Op::OneHot { .. } => OpKind::OneHot,
            Op::Gather { .. } => OpKind::Gather,
            Op::DynamicSlice { .. } => OpKind::DynamicSlice,
            Op::DynamicUpdateSlice => OpKind::DynamicUpdateSlice,
            Op::ScatterAdd { .. } => OpKind::ScatterAdd,
            Op::StopGradient => OpKind::StopGradient,
            Op::Loop { .. } => OpKind::Loop,
            Op::Get { .. } => OpKind::Get,
        }
    }

    /// The attributes the text format writes after the operands, named as in
    /// [`OpKind::syntax`] and in its order.
    pub(crate) fn attributes(&self) -> impl Iterator<Item = (&'static str, AttrValue)> {
        let names = self.kind().syntax().attrs.iter().map(|&(name, _)| name);
        names.zip(self.attribute_values())
    }

    /// The values of the op's attributes, in the order of its entry in
    /// [`OpKind::syntax`].
    fn attribute_values(&self) -> Vec<AttrValue> {
        use AttrValue::{Index, Int, List, Literal};
        match self {
            Op::Input { .. }
            | Op::Constant { .. }
            | Op::Literal { .. }
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Select
            | Op::Cast { .. }
            | Op::Reshape { .. }
            | Op::StopGradient
            | Op::DynamicUpdateSlice => vec![],
            Op::Iota { axis, .. } | Op::Concat { axis } | Op::Gather { axis } => vec![Int(*axis)],
            Op::Broadcast { dims, .. } => vec![List(dims.clone())],
            Op::Transpose { perm } => vec![List(perm.clone())],
            Op::DynamicSlice { sizes } => vec![List(sizes.clone())],
            Op::Slice { start, limit } => vec![List(start.clone()), List(limit.clone())],
            Op::Pad { low, high, value } => {
                vec![List(low.clone()), List(high.clone()), Literal(*value)]
            }
            Op::Reduce { axes, .. } => vec![List(axes.clone())],
            Op::Dot(DotDims {
                lhs_batch,
                rhs_batch,
                lhs_contract,
                rhs_contract,
            }) => vec![
                List(lhs_batch.clone()),
                List(rhs_batch.clone()),
                List(lhs_contract.clone()),
                List(rhs_contract.clone()),
            ],
            Op::OneHot { depth, .. } => vec![Int(*depth)],
            Op::ScatterAdd { axis, size } => vec![Int(*axis), Int(*size)],
            Op::Loop { trips, carried, .. } => vec![Index(*trips), Index(*carried)],
            Op::Get { index } => vec![Index(*index)],
        }
    }
}

// ---- The text format's table -------------------------------------------------------

/// An op without its parameters: what a mnemonic of the text format names. Each variant
/// stands for the [`Op`] variant of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Input,
    Constant,
    Iota,
    Unary(UnaryOp),
    Binary(BinaryOp),
    Compare(CmpOp),
    Select,
    Cast,
    Broadcast,
    Reshape,
    Transpose,
    Slice,
    Concat,
    Pad,
    Reduce(ReduceKind),
    Dot,
    OneHot,
    Gather,
    DynamicSlice,
    DynamicUpdateSlice,
    ScatterAdd,
    StopGradient,
    Loop,
    Get,
}

/// How an attribute's value is written in the text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrKind {
    /// A non-negative integer below 2^32, such as an axis or extent.
    Int,
    /// A `u32`, such as a tuple index or a trip count.
    Index,
    /// A list of integers, `[0,1]`.
    List,
    /// A scalar literal of the operand's dtype.
    Literal,
}

/// An attribute's value. Each variant holds a value written as the [`AttrKind`] of the
/// same name.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AttrValue {
    Int(usize),
    Index(u32),
    List(Vec<usize>),
    Literal(Scalar),
}

/// An op's entry in the text format.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syntax {
    /// The mnemonic, as written.
    pub(crate) name: &'static str,
    /// The attributes written after the operands, in printed order, each with how its
    /// value is written.
    pub(crate) attrs: &'static [(&'static str, AttrKind)],
}

impl OpKind {
    /// Every kind of op, each once.
    pub(crate) fn all() -> impl Iterator<Item = OpKind> {
        use OpKind as K;
        let plain = [
            K::Input,
            K::Constant,
            K::Iota,
            K::Select,
            K::Cast,
            K::Broadcast,
            K::Reshape,
            K::Transpose,
            K::Slice,
            K::Concat,
            K::Pad,
            K::Dot,
            K::OneHot,
            K::Gather,
            K::DynamicSlice,
            K::DynamicUpdateSlice,
            K::ScatterAdd,
            K::StopGradient,
            K::Loop,
            K::Get,
        ];
        plain
            .into_iter()
            .chain(UnaryOp::ALL.map(K::Unary))
            .chain(BinaryOp::ALL.map(K::Binary))
            .chain(CmpOp::ALL.map(K::Compare))
            .chain(ReduceKind::ALL.map(K::Reduce))
    }

    /// The kind whose mnemonic is `name`, if any.
    pub(crate) fn from_name(name: &str) -> Option<OpKind> {
        OpKind::all().find(|k| k.syntax().name == name)
    }

    /// The op's mnemonic and attributes in the text format. This is the one table both
    /// the printer and the parser read; attribute values follow its order in
    /// [`Op::attributes`] and in the parser's constructor.
    pub(crate) fn syntax(self) -> Syntax {
        use AttrKind::{Index, Int, List, Literal};
        let (name, attrs): (&'static str, &'static [(&'static str, AttrKind)]) = match self {
            OpKind::Input => ("input", &[]),
            OpKind::Constant => ("constant", &[]),
            OpKind::Iota => ("iota", &[("axis", Int)]),
            OpKind::Unary(u) => (u.name(), &[]),
            OpKind::Binary(b) => (b.name(), &[]),
            OpKind::Compare(c) => (c.name(), &[]),
            OpKind::Select => ("select", &[]),
            OpKind::Cast => ("cast", &[]),
            OpKind::Broadcast => ("broadcast", &[("dims", List)]),
            OpKind::Reshape => ("reshape", &[]),
            OpKind::Transpose => ("transpose", &[("perm", List)]),
            OpKind::Slice => ("slice", &[("start", List), ("limit", List)]),
            OpKind::Concat => ("concat", &[("axis", Int)]),
            OpKind::Pad => ("pad", &[("low", List), ("high", List), ("value", Literal)]),
            OpKind::Reduce(kind) => {
                let name = match kind {
                    ReduceKind::Sum => "reduce_sum",
                    ReduceKind::Max => "reduce_max",
                    ReduceKind::Min => "reduce_min",
                };
                (name, &[("axes", List)])
            }
            OpKind::Dot => (
                "dot",
                &[
                    ("lhs_batch", List),
                    ("rhs_batch", List),
                    ("lhs_contract", List),
                    ("rhs_contract", List),
                ],
            ),
            OpKind::OneHot => ("one_hot", &[("depth", Int)]),
            OpKind::Gather => ("gather", &[("axis", Int)]),
            OpKind::DynamicSlice => ("dynamic_slice", &[("sizes", List)]),
            OpKind::DynamicUpdateSlice => ("dynamic_update_slice", &[]),
            OpKind::ScatterAdd => ("scatter_add", &[("axis", Int), ("size", Int)]),
            OpKind::StopGradient => ("stop_gradient", &[]),
            OpKind::Loop => ("loop", &[("trips", Index), ("carried", Index)]),
            OpKind::Get => ("get", &[("index", Index)]),
        };
        Syntax { name, attrs }
    }
}
