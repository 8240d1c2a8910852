//! Host tensors to device bytes and back.
//!
//! The reference interpreter stores every element as `f64`; on the device every element
//! takes 4 bytes: `f32`, `i32` and `u32` as themselves and `bool` as a `u32` 0 or 1.
//! Values are converted as Rust's `as` casts do (saturating for out-of-range integers), so
//! no tensor can make a conversion panic.

use wgrad_compiler::ir::{DType, Tensor, Type};

/// The device bytes of `tensor` (native endianness, 4 bytes per element).
pub(crate) fn to_bytes(tensor: &Tensor) -> Vec<u8> {
    let data = &tensor.data;
    match tensor.ty.dtype {
        DType::F32 => {
            let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
            bytemuck::cast_slice(&v).to_vec()
        }
        DType::I32 => {
            let v: Vec<i32> = data.iter().map(|&x| x as i32).collect();
            bytemuck::cast_slice(&v).to_vec()
        }
        DType::U32 => {
            let v: Vec<u32> = data.iter().map(|&x| x as u32).collect();
            bytemuck::cast_slice(&v).to_vec()
        }
        DType::Bool => {
            let v: Vec<u32> = data.iter().map(|&x| u32::from(x != 0.0)).collect();
            bytemuck::cast_slice(&v).to_vec()
        }
    }
}

/// The tensor of type `ty` whose device bytes start `bytes`; elements missing from a short
/// slice read as zero.
pub(crate) fn from_bytes(ty: &Type, bytes: &[u8]) -> Tensor {
    let n = ty.numel();
    let mut data: Vec<f64> = bytes
        .chunks_exact(4)
        .take(n)
        .map(|chunk| match ty.dtype {
            DType::F32 => f64::from(bytemuck::pod_read_unaligned::<f32>(chunk)),
            DType::I32 => f64::from(bytemuck::pod_read_unaligned::<i32>(chunk)),
            DType::U32 => f64::from(bytemuck::pod_read_unaligned::<u32>(chunk)),
            DType::Bool => f64::from(u8::from(bytemuck::pod_read_unaligned::<u32>(chunk) != 0)),
        })
        .collect();
    data.resize(n, 0.0);
    Tensor {
        ty: ty.clone(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        for (ty, data) in [
            (Type::f32(&[3]), vec![1.5, -0.25, 2f64.powi(100)]),
            (Type::i32(&[3]), vec![-7.0, 0.0, 2147483647.0]),
            (Type::new(DType::U32, &[2]), vec![0.0, 4294967295.0]),
            (Type::new(DType::Bool, &[2]), vec![1.0, 0.0]),
        ] {
            let t = Tensor { ty, data };
            assert_eq!(from_bytes(&t.ty, &to_bytes(&t)), t);
        }
    }
}
