//! Tensors in the files numerical users keep their arrays in: NumPy's `.npy` (one
//! array) and `.npz` (an archive of named arrays, compressed or not), and safetensors.
//!
//! Reading converts what NumPy writes by default to wgrad's element types: floats of
//! any width to `f32` (a finite value beyond `f32`'s range is an error, not an
//! infinity), signed integers to `i32` and unsigned ones to `u32` (values out of range
//! are errors), bools to `bool`. Big-endian and Fortran-ordered arrays are read too.
//! Writing uses `<f4`, `<i4`, `<u4` and `|b1` (`F32`, `I32`, `U32`, `BOOL` in
//! safetensors), which NumPy and PyTorch read back unchanged.
//!
//! [`read_inputs`] and [`write_outputs`] choose the format by the path: a `.json`,
//! `.npz` or `.safetensors` file, or a directory of `.npy` files named after the
//! inputs.
//!
//! Every file is written atomically (to a temporary file renamed into place), so a
//! failed write leaves nothing half-written. The formats are read and written with
//! `npyz`, `zip` and `safetensors`.

use crate::compiler::{Error, Result};
use crate::json::{self, Precision};
use crate::{DType, Tensor, Type};
use npyz::{NpyFile, Order, TypeChar, WriterBuilder};
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

fn file_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| file_error(path, format!("cannot read: {e}")))
}

/// Writes the file at `path` through `write`, atomically: into a temporary file beside
/// it, renamed over `path` only once everything is written, so a failure leaves no
/// half-written file. A symbolic link is followed (the file it names is replaced), and
/// what is not a regular file (`/dev/null`, a pipe) is written in place. The file gets
/// the permissions a newly created one would (the umask applies).
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| file_error(path, format!("cannot write: {e}"));
    let flush = |file: &mut std::fs::File| -> std::io::Result<()> {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush()
    };
    let target = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| fail(&e))?;
            return flush(&mut file).map_err(|e| fail(&e));
        }
        Ok(_) => std::fs::canonicalize(path).map_err(|e| fail(&e))?,
        Err(_) => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| fail(&e))?;
    flush(tmp.as_file_mut()).map_err(|e| fail(&e))?;
    tmp.persist(&target).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// Writes `text` to `path` as [`write_npy`] writes arrays: to a temporary file in the
/// same directory, then renamed over `path`, so nothing is ever half-written.
pub fn write_text(path: impl AsRef<Path>, text: &str) -> Result<()> {
    write_atomically(path.as_ref(), |w| w.write_all(text.as_bytes()))
}

// ---- .npy ---------------------------------------------------------------------------

/// Reads the `.npy` file at `path`.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    read_npy_from(BufReader::new(open(path)?)).map_err(|m| file_error(path, m))
}

/// Reads one `.npy` array from `reader`; the error is a message.
fn read_npy_from(reader: impl Read) -> std::result::Result<Tensor, String> {
    let npy = NpyFile::new(reader).map_err(|e| format!("not a .npy array: {e}"))?;
    // npyz counts elements with wrapping arithmetic: a header whose shape overflows
    // would claim a few elements and index past them.
    let counted = npy.shape().iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    if counted != Some(npy.len()) {
        return Err(format!(
            "shape {:?} has more elements than can be counted",
            npy.shape()
        ));
    }
    if npy.len() > MAX_ELEMENTS {
        return Err(format!(
            "{} elements is more than an array read here may hold ({MAX_ELEMENTS})",
            npy.len()
        ));
    }
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("extent {d} is too large")))
        .collect::<std::result::Result<_, _>>()?;
    let fortran = npy.order() == Order::Fortran;
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(format!(
            "dtype {} is a structured or nested array; wgrad reads plain arrays",
            npy.dtype().descr()
        ));
    };
    let descr = npy.dtype().descr();
    let (dtype, data): (DType, Vec<f64>) = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => (DType::F32, widen::<f32>(npy)?),
        (TypeChar::Float, 8) => (DType::F32, widen::<f64>(npy)?),
        (TypeChar::Int, 1) => (DType::I32, widen::<i8>(npy)?),
        (TypeChar::Int, 2) => (DType::I32, widen::<i16>(npy)?),
        (TypeChar::Int, 4) => (DType::I32, widen::<i32>(npy)?),
        // Values beyond 2^53 are beyond i32 too: the range check below rejects them.
        (TypeChar::Int, 8) => (DType::I32, convert(npy, |x: i64| x as f64)?),
        (TypeChar::Uint, 1) => (DType::U32, widen::<u8>(npy)?),
        (TypeChar::Uint, 2) => (DType::U32, widen::<u16>(npy)?),
        (TypeChar::Uint, 4) => (DType::U32, widen::<u32>(npy)?),
        (TypeChar::Uint, 8) => (DType::U32, convert(npy, |x: u64| x as f64)?),
        (TypeChar::Bool, 1) => (DType::Bool, convert(npy, |b: bool| f64::from(u8::from(b)))?),
        _ => {
            return Err(format!(
                "dtype {descr} has no wgrad element type (floats, integers and bools do)"
            ));
        }
    };
    let data = if fortran {
        fortran_to_c(&data, &shape)
    } else {
        data
    };
    tensor(dtype, &shape, data)
}

/// The elements of `npy`, read as `T` and widened to `f64` exactly.
fn widen<T: npyz::Deserialize + Into<f64>>(
    npy: NpyFile<impl Read>,
) -> std::result::Result<Vec<f64>, String> {
    convert(npy, |x: T| x.into())
}

/// The elements of `npy`, read as `T` and converted by `f`.
fn convert<T: npyz::Deserialize>(
    npy: NpyFile<impl Read>,
    f: impl Fn(T) -> f64,
) -> std::result::Result<Vec<f64>, String> {
    Ok(npy
        .into_vec::<T>()
        .map_err(|e| format!("cannot read the data: {e}"))?
        .into_iter()
        .map(f)
        .collect())
}

/// The most elements one array read from a file may hold: the interpreter's default
/// budget per tensor (2 GiB as `f64`). A compressed archive can claim far more than its
/// size, and this bounds what reading it allocates.
const MAX_ELEMENTS: u64 = 1 << 28;

/// A tensor of `dtype` from converted values, checking they fit it.
fn tensor(dtype: DType, shape: &[usize], data: Vec<f64>) -> std::result::Result<Tensor, String> {
    let (lo, hi) = match dtype {
        DType::F32 => (-f64::from(f32::MAX), f64::from(f32::MAX)),
        DType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        DType::U32 => (0.0, f64::from(u32::MAX)),
        DType::Bool => (0.0, 1.0),
    };
    if let Some(i) = data
        .iter()
        .position(|x| x.is_finite() && !(lo..=hi).contains(x))
    {
        return Err(format!(
            "element {i} = {} does not fit in {dtype}{}",
            data[i],
            if dtype == DType::F32 {
                " (beyond its range it would become infinite)"
            } else {
                ""
            }
        ));
    }
    Tensor::new(Type::new(dtype, shape), data).map_err(|e| e.to_string())
}

/// Column-major elements of `shape` in row-major order (`data` holds exactly the
/// shape's elements: the reader checks the count).
fn fortran_to_c(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = data.len();
    if shape.iter().product::<usize>() != n {
        return data.to_vec();
    }
    let mut out = vec![0.0; n];
    let rank = shape.len();
    let mut index = vec![0usize; rank];
    for slot in out.iter_mut() {
        // `index` is the row-major multi-index of `c`; its column-major offset is read.
        let mut f = 0usize;
        let mut stride = 1usize;
        for (k, &i) in index.iter().enumerate() {
            f += i * stride;
            stride *= shape[k];
        }
        *slot = data[f];
        for k in (0..rank).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Writes `tensor` as a `.npy` file at `path`.
pub fn write_npy(path: impl AsRef<Path>, tensor: &Tensor) -> Result<()> {
    write_atomically(path.as_ref(), |w| write_npy_to(w, tensor))
}

fn write_npy_to(w: &mut impl Write, t: &Tensor) -> std::io::Result<()> {
    let shape: Vec<u64> = t.ty.shape.iter().map(|&d| d as u64).collect();
    match t.ty.dtype {
        DType::F32 => write_elements(w, &shape, t.data.iter().map(|&x| x as f32)),
        DType::I32 => write_elements(w, &shape, t.data.iter().map(|&x| x as i32)),
        DType::U32 => write_elements(w, &shape, t.data.iter().map(|&x| x as u32)),
        DType::Bool => write_elements(w, &shape, t.data.iter().map(|&x| x != 0.0)),
    }
}

/// Writes one `.npy` array of `shape` whose elements, in row-major order, are `data`.
fn write_elements<T: npyz::AutoSerialize>(
    w: &mut impl Write,
    shape: &[u64],
    data: impl IntoIterator<Item = T>,
) -> std::io::Result<()> {
    let mut out = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(w)
        .begin_nd()?;
    out.extend(data)?;
    out.finish()
}

// ---- .npz ---------------------------------------------------------------------------

/// Reads every array of the `.npz` archive at `path` (as `np.savez` or
/// `np.savez_compressed` writes it), in the archive's order.
pub fn read_npz(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    read_npz_from(BufReader::new(open(path)?)).map_err(|m| file_error(path, m))
}

fn read_npz_from(reader: impl Read + Seek) -> std::result::Result<Vec<(String, Tensor)>, String> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| format!("not a .npz archive: {e}"))?;
    let files: Vec<String> = zip.file_names().map(str::to_string).collect();
    let mut out = Vec::new();
    for file in files {
        let Some(name) = npyz::npz::array_name_from_file_name(&file) else {
            continue;
        };
        let name = name.to_string();
        let entry = zip
            .by_name(&file)
            .map_err(|e| format!("array `{name}`: {e}"))?;
        let t = read_npy_from(entry).map_err(|m| format!("array `{name}`: {m}"))?;
        out.push((name, t));
    }
    Ok(out)
}

/// Writes named tensors as a `.npz` archive at `path` (deflate-compressed, as
/// `np.savez_compressed` writes it; `np.load` reads it).
pub fn write_npz(path: impl AsRef<Path>, tensors: &[(String, Tensor)]) -> Result<()> {
    write_atomically(path.as_ref(), |w| {
        let mut zip = zip::ZipWriter::new(w);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, t) in tensors {
            zip.start_file(npyz::npz::file_name_from_array_name(name), options)?;
            write_npy_to(&mut zip, t)?;
        }
        zip.finish()?;
        Ok(())
    })
}

// ---- safetensors --------------------------------------------------------------------

/// Reads every tensor of the safetensors file at `path`, in name order.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    use safetensors::Dtype as S;
    let path = path.as_ref();
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| file_error(path, format!("not a safetensors file: {e}")))?;
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    let mut out = Vec::new();
    for name in names {
        let fail = |m: String| file_error(path, format!("tensor `{name}`: {m}"));
        let view = file.tensor(name).map_err(|e| fail(e.to_string()))?;
        if view.shape().iter().product::<usize>() as u64 > MAX_ELEMENTS {
            return Err(fail(format!(
                "more elements than an array read here may hold ({MAX_ELEMENTS})"
            )));
        }
        let b = view.data();
        let le4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
        let le8 = |c: &[u8]| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
        let (dtype, data): (DType, Vec<f64>) = match view.dtype() {
            S::F32 => (
                DType::F32,
                b.chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(le4(c))))
                    .collect(),
            ),
            S::F64 => (
                DType::F32,
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(le8(c)))
                    .collect(),
            ),
            S::I32 => (
                DType::I32,
                b.chunks_exact(4)
                    .map(|c| f64::from(i32::from_le_bytes(le4(c))))
                    .collect(),
            ),
            S::I64 => (
                DType::I32,
                b.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(le8(c)) as f64)
                    .collect(),
            ),
            S::U32 => (
                DType::U32,
                b.chunks_exact(4)
                    .map(|c| f64::from(u32::from_le_bytes(le4(c))))
                    .collect(),
            ),
            S::U8 => (DType::U32, b.iter().map(|&x| f64::from(x)).collect()),
            S::BOOL => (DType::Bool, b.iter().map(|&x| f64::from(x != 0)).collect()),
            other => {
                return Err(fail(format!(
                    "dtype {other:?} has no wgrad element type (F32, F64, I32, I64, U32, U8 and BOOL do)"
                )));
            }
        };
        out.push((
            name.to_string(),
            tensor(dtype, view.shape(), data).map_err(fail)?,
        ));
    }
    Ok(out)
}

/// Writes named tensors as a safetensors file at `path`.
pub fn write_safetensors(path: impl AsRef<Path>, tensors: &[(String, Tensor)]) -> Result<()> {
    use safetensors::Dtype as S;
    let path = path.as_ref();
    let fail = |e: &dyn std::fmt::Display| file_error(path, format!("cannot write: {e}"));
    let bytes: Vec<(String, S, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, data): (S, Vec<u8>) = match t.ty.dtype {
                DType::F32 => (
                    S::F32,
                    t.data
                        .iter()
                        .flat_map(|&x| (x as f32).to_le_bytes())
                        .collect(),
                ),
                DType::I32 => (
                    S::I32,
                    t.data
                        .iter()
                        .flat_map(|&x| (x as i32).to_le_bytes())
                        .collect(),
                ),
                DType::U32 => (
                    S::U32,
                    t.data
                        .iter()
                        .flat_map(|&x| (x as u32).to_le_bytes())
                        .collect(),
                ),
                DType::Bool => (
                    S::BOOL,
                    t.data.iter().map(|&x| u8::from(x != 0.0)).collect(),
                ),
            };
            (name.clone(), dtype, t.ty.shape.clone(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    let bytes = safetensors::serialize(views, None).map_err(|e| fail(&e))?;
    write_atomically(path, |w| w.write_all(&bytes))
}

// ---- By path ------------------------------------------------------------------------

/// Reads named tensors from `path` by its form: a `.json` file (see [`crate::json`]), a
/// `.npz` archive, a `.safetensors` file, or a directory whose `NAME.npy` files are the
/// tensors named `NAME`.
pub fn read_inputs(path: impl AsRef<Path>) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    if path.is_dir() {
        let mut out = HashMap::new();
        let entries =
            std::fs::read_dir(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        for entry in entries {
            let p = entry
                .map_err(|e| file_error(path, format!("cannot read: {e}")))?
                .path();
            if extension(&p) == "npy" {
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.insert(name, read_npy(&p)?);
            }
        }
        if out.is_empty() {
            return Err(file_error(path, "the directory holds no .npy files"));
        }
        return Ok(out);
    }
    let pairs = match extension(path).as_str() {
        "npz" => read_npz(path)?,
        "safetensors" => read_safetensors(path)?,
        "npy" => {
            return Err(file_error(
                path,
                "one .npy file holds one unnamed array: give a directory of NAME.npy files, or a .npz",
            ));
        }
        _ => {
            let file = open(path)?;
            return json::read_tensors(file).map_err(|e| file_error(path, e));
        }
    };
    let mut out = HashMap::new();
    for (name, t) in pairs {
        if out.insert(name.clone(), t).is_some() {
            return Err(file_error(path, format!("`{name}` is stored twice")));
        }
    }
    Ok(out)
}

/// Writes named tensors to `path` by its extension: `.npz`, `.safetensors`, or JSON
/// (written at `precision`) for anything else but `.npy` (an error: it holds one array).
pub fn write_outputs(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    precision: Precision,
) -> Result<()> {
    let path = path.as_ref();
    match extension(path).as_str() {
        "npz" => write_npz(path, tensors),
        "safetensors" => write_safetensors(path, tensors),
        "npy" => Err(file_error(
            path,
            "one .npy file holds one unnamed array: write the outputs to a .npz",
        )),
        _ => write_atomically(path, |w| json::write_tensors(w, tensors, precision)),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|x| x.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::fortran_to_c;

    #[test]
    fn column_major_elements_are_reordered_row_major() {
        // [[0, 1, 2], [3, 4, 5]] stored column by column.
        let f = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        assert_eq!(
            fortran_to_c(&f, &[2, 3]),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(fortran_to_c(&[7.0], &[]), vec![7.0]);
    }
}
