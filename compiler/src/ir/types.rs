//! Element types, shapes and scalar literals.
//!
//! Every value in the IR carries a [`Type`]: a [`DType`] and a static shape. Scalars have
//! the empty shape `[]`. Literals ([`Scalar`]) are stored by bit pattern so that ops
//! embedding them can derive `Eq` and `Hash`.

use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float. The reference interpreter evaluates it in f64.
    F32,
    /// 32-bit signed integer with wrapping arithmetic, as in WGSL.
    I32,
    /// 32-bit unsigned integer with wrapping arithmetic, as in WGSL.
    U32,
    /// Boolean, produced by comparisons and consumed by `select`.
    Bool,
}

impl DType {
    /// All element types, in the order they are documented.
    pub const ALL: [DType; 4] = [DType::F32, DType::I32, DType::U32, DType::Bool];

    /// The name used in the text format and in JSON (`f32`, `i32`, `u32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::Bool => "bool",
        }
    }

    /// Parses a name produced by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether this is a floating-point type (the only kind that has derivatives).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32)
    }

    /// Whether this is an integer type.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::U32)
    }

    /// The size of one element in bytes as stored on a device (a bool takes 4 bytes).
    pub fn size_bytes(self) -> usize {
        4
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a value: element type and static shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    /// The element type.
    pub dtype: DType,
    /// The extent of every axis; empty for a scalar.
    pub shape: Vec<usize>,
}

impl Type {
    /// A type from an element type and a shape.
    pub fn new(dtype: DType, shape: &[usize]) -> Type {
        Type {
            dtype,
            shape: shape.to_vec(),
        }
    }

    /// An `f32` tensor of the given shape.
    pub fn f32(shape: &[usize]) -> Type {
        Type::new(DType::F32, shape)
    }

    /// An `i32` tensor of the given shape.
    pub fn i32(shape: &[usize]) -> Type {
        Type::new(DType::I32, shape)
    }

    /// The same shape with another element type.
    pub fn with_dtype(&self, dtype: DType) -> Type {
        Type {
            dtype,
            shape: self.shape.clone(),
        }
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements (1 for a scalar), saturating at `usize::MAX`: a type
    /// too large to count never passes for a small one. Every type in a verified graph
    /// counts exactly.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// The size in bytes, exact for every shape (no product of `usize` extents
    /// overflows 128 bits until the product itself saturates): what limit checks and
    /// their messages compare, before any `usize` or `u64` size is computed.
    pub fn bytes(&self) -> u128 {
        self.shape
            .iter()
            .fold(self.dtype.size_bytes() as u128, |n, &d| {
                n.saturating_mul(d as u128)
            })
    }

    /// Whether this is a scalar (rank 0).
    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Formats a shape as `[a,b,c]` for error messages.
pub fn fmt_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// A scalar literal of some element type, stored by bit pattern so it can be hashed.
///
/// Float literals keep full f64 precision: the reference interpreter evaluates in f64,
/// and a device lowering rounds them to the value's element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// A float literal (f64 bit pattern).
    Float(u64),
    /// A signed integer literal.
    Int(i32),
    /// An unsigned integer literal.
    Uint(u32),
    /// A boolean literal.
    Bool(bool),
}

impl Scalar {
    /// A float literal: an `f32` value kept at `f64` precision for the reference
    /// interpreter. A finite value beyond `f32`'s range is infinite, as a cast to
    /// `f32` (and the device) makes it, so a folded constant means on the interpreter
    /// what it means on the device, and prints as text that parses back.
    pub fn float(x: f64) -> Scalar {
        let x = if x.is_finite() && x.abs() > f64::from(f32::MAX) {
            x.signum() * f64::INFINITY
        } else {
            x
        };
        Scalar::Float(x.to_bits())
    }

    /// The literal of `dtype` whose numeric value is `x` (converted as a cast would).
    pub fn of(dtype: DType, x: f64) -> Scalar {
        match dtype {
            DType::F32 => Scalar::float(x),
            DType::I32 => Scalar::Int(x as i32),
            DType::U32 => Scalar::Uint(x as u32),
            DType::Bool => Scalar::Bool(x != 0.0),
        }
    }

    /// The element type of this literal.
    pub fn dtype(self) -> DType {
        match self {
            Scalar::Float(_) => DType::F32,
            Scalar::Int(_) => DType::I32,
            Scalar::Uint(_) => DType::U32,
            Scalar::Bool(_) => DType::Bool,
        }
    }

    /// The numeric value, as the interpreter stores it (bools are 0 or 1).
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Float(bits) => f64::from_bits(bits),
            Scalar::Int(x) => x as f64,
            Scalar::Uint(x) => x as f64,
            Scalar::Bool(b) => b as u8 as f64,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scalar::Float(bits) => {
                let x = f64::from_bits(bits);
                if x.is_nan() {
                    f.write_str("nan")
                } else if x.is_infinite() {
                    f.write_str(if x > 0.0 { "inf" } else { "-inf" })
                } else {
                    // `{:?}` prints the shortest decimal that round-trips, always with a
                    // `.` or an exponent, so a float literal never reads as an integer.
                    write!(f, "{x:?}")
                }
            }
            Scalar::Int(x) => write!(f, "{x}"),
            Scalar::Uint(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A byte count as a person reads it: `16 EiB`, `128 MiB`, `1.5 KiB`, `12 bytes`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut unit = 0;
    let mut scale: u128 = 1024;
    while unit + 1 < UNITS.len() && bytes >= scale * 1024 {
        unit += 1;
        scale *= 1024;
    }
    let x = bytes as f64 / scale as f64;
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::{Type, human_bytes};

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(128 << 20), "128 MiB");
        let huge = Type::f32(&[2147483648, 2147483648]);
        assert_eq!(huge.bytes(), 1u128 << 64);
        assert_eq!(human_bytes(huge.bytes()), "16 EiB");
        assert_eq!(huge.numel(), 1usize << 62);
        assert_eq!(Type::f32(&[1 << 40, 1 << 40]).numel(), usize::MAX);
    }
}
