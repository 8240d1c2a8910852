//! The closed set of primitive operations.
//!
//! [`Op`] is one enum with its parameters inline. Every transform (shape inference,
//! printing, parsing, interpretation, VJP, JVP) matches on it exhaustively, so adding an
//! op fails to compile until each of them has an arm.
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
}

impl UnaryOp {
    /// All unary ops.
    pub const ALL: [UnaryOp; 11] = [
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

impl Op {
    /// The mnemonic used in the text format.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Constant { .. } => "constant",
            Op::Iota { .. } => "iota",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Select => "select",
            Op::Cast { .. } => "cast",
            Op::Broadcast { .. } => "broadcast",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::Reduce { kind, .. } => match kind {
                ReduceKind::Sum => "reduce_sum",
                ReduceKind::Max => "reduce_max",
                ReduceKind::Min => "reduce_min",
            },
            Op::Dot(_) => "dot",
            Op::OneHot { .. } => "one_hot",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::StopGradient => "stop_gradient",
            Op::Loop { .. } => "loop",
            Op::Get { .. } => "get",
        }
    }
}
