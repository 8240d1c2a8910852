//! [`Tensor`]s from and into `ndarray` arrays (cargo feature `ndarray`).
//!
//! A tensor keeps its elements as `f64` (the reference interpreter's precision), so an
//! `ArrayD<f64>` and a tensor share their storage: [`into_array_f64`] and
//! [`from_array_f64`] move the elements without copying when the array is in standard
//! (row-major, contiguous) layout. Arrays of the element types proper — `f32`, `i32`,
//! `u32`, `bool` — convert element by element, in either direction ([`to_tensor`],
//! [`to_array`]), from any layout.
//!
//! ```
//! use ndarray::{ArrayD, IxDyn};
//! use wgrad::arrays::{to_array, to_tensor};
//!
//! let a = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0f32, 2.0, 3.0, 4.0])?;
//! let t = to_tensor(&a.t()); // a transposed view: any layout
//! assert_eq!(t.data, vec![1.0, 3.0, 2.0, 4.0]);
//! let back: ArrayD<f32> = to_array(&t)?;
//! assert_eq!(back, a.t());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::compiler::{Error, Result};
use crate::{DType, Tensor, Type};
use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

/// An element type a tensor may hold, as an `ndarray` element.
pub trait Element: Copy + 'static {
    /// The tensor element type.
    const DTYPE: DType;
    /// The element as the tensor stores it.
    fn to_f64(self) -> f64;
    /// The element from the tensor's value (which fits, since the tensor is checked).
    fn from_f64(x: f64) -> Self;
}

/// `Element` for a numeric type that widens to `f64` exactly and back by a cast.
macro_rules! numeric_element {
    ($($t:ty => $dtype:expr),*) => {$(
        impl Element for $t {
            const DTYPE: DType = $dtype;
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn from_f64(x: f64) -> $t {
                x as $t
            }
        }
    )*};
}

numeric_element!(f32 => DType::F32, i32 => DType::I32, u32 => DType::U32);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn from_f64(x: f64) -> bool {
        x != 0.0
    }
}

/// The tensor holding `array`'s elements in row-major order, whatever its layout.
pub fn to_tensor<A: Element, S: Data<Elem = A>, D: Dimension>(array: &ArrayBase<S, D>) -> Tensor {
    Tensor {
        ty: Type::new(A::DTYPE, array.shape()),
        data: array.iter().map(|&x| x.to_f64()).collect(),
    }
}

/// The array of `tensor`'s elements; an [`Error::Input`] when its dtype is not `A`'s.
pub fn to_array<A: Element>(tensor: &Tensor) -> Result<ArrayD<A>> {
    if tensor.ty.dtype != A::DTYPE {
        return Err(Error::Input {
            name: "<tensor>".into(),
            message: format!("a {} tensor read as {} elements", tensor.ty, A::DTYPE),
        });
    }
    let data = tensor.data.iter().map(|&x| A::from_f64(x)).collect();
    shaped(&tensor.ty.shape, data)
}

/// The tensor's elements as an `f64` array, without copying them.
pub fn into_array_f64(tensor: Tensor) -> ArrayD<f64> {
    let shape = IxDyn(&tensor.ty.shape);
    // A tensor's element count is its shape's, which `Tensor::new` checks.
    ArrayD::from_shape_vec(shape, tensor.data)
        .unwrap_or_else(|_| ArrayD::from_elem(IxDyn(&[0]), 0.0))
}

/// A tensor of `dtype` holding `array`'s values, without copying them when the array is
/// in standard layout; an [`Error::Input`] when a value does not fit `dtype`.
pub fn from_array_f64(array: ArrayD<f64>, dtype: DType) -> Result<Tensor> {
    let shape = array.shape().to_vec();
    let data = if array.is_standard_layout() {
        let (data, offset) = array.into_raw_vec_and_offset();
        match offset {
            Some(0) | None => data,
            Some(start) => data[start..].to_vec(),
        }
    } else {
        array.iter().copied().collect()
    };
    Tensor::new(Type::new(dtype, &shape), data)
}

fn shaped<A>(shape: &[usize], data: Vec<A>) -> Result<ArrayD<A>> {
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Input {
        name: "<tensor>".into(),
        message: format!("its elements do not fill its shape: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_converts_both_ways() {
        let f =
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.5f32, -1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(to_array::<f32>(&to_tensor(&f)).unwrap(), f);
        let i = ArrayD::from_shape_vec(IxDyn(&[3]), vec![i32::MIN, 0, 7]).unwrap();
        assert_eq!(to_array::<i32>(&to_tensor(&i)).unwrap(), i);
        let u = ArrayD::from_shape_vec(IxDyn(&[]), vec![u32::MAX]).unwrap();
        assert_eq!(to_array::<u32>(&to_tensor(&u)).unwrap(), u);
        let b = ArrayD::from_shape_vec(IxDyn(&[2, 0]), Vec::<bool>::new()).unwrap();
        assert_eq!(to_array::<bool>(&to_tensor(&b)).unwrap(), b);
        let e = to_array::<i32>(&to_tensor(&f)).unwrap_err().to_string();
        assert!(e.contains("f32[2,3] tensor read as i32"), "{e}");
    }

    #[test]
    fn f64_arrays_share_the_tensors_storage() {
        let t = Tensor::new(Type::f32(&[2, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let address = t.data.as_ptr();
        let a = into_array_f64(t);
        assert_eq!(a.as_ptr(), address);
        assert_eq!(a[[1, 0]], 3.0);
        let t = from_array_f64(a, DType::F32).unwrap();
        assert_eq!(t.data.as_ptr(), address);
        // A transposed array is copied, in row-major order.
        let a = into_array_f64(t).reversed_axes();
        let t = from_array_f64(a, DType::F32).unwrap();
        assert_eq!(t.data, vec![1.0, 3.0, 2.0, 4.0]);
        let e = from_array_f64(ArrayD::from_elem(IxDyn(&[1]), 0.5), DType::I32).unwrap_err();
        assert!(e.to_string().contains("i32"), "{e}");
    }
}
