//! The JSON form of named tensors, shared by every command that reads inputs or prints
//! outputs.
//!
//! One object maps each name to `{"shape": [..], "dtype": "f32"|"i32"|"u32"|"bool",
//! "data": [..]}` with `data` flat and row-major (a scalar has `"shape": []`). Floats are
//! written as the shortest decimal that round-trips the value; the non-finite ones as
//! the strings `"NaN"`, `"inf"` and `"-inf"`; bools as `true`/`false`.

use crate::compiler::{Error, Result};
use crate::{DType, Graph, Tensor, Type};
use serde_json::{Value as Json, json};
use std::collections::HashMap;

/// Parses a JSON object of named tensors.
///
/// Malformed JSON, and an object that names one key twice (which JSON readers disagree
/// on), are [`Error::Parse`] errors at the line and column where they are found.
pub fn parse_tensors(text: &str) -> Result<HashMap<String, Tensor>> {
    let syntax = |e: serde_json::Error| {
        let message = e.to_string();
        // serde_json ends its messages with the position, which the error carries.
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        Error::Parse(crate::compiler::error::ParseError {
            line: e.line(),
            column: e.column(),
            message,
        })
    };
    serde_json::from_str::<NoDuplicates>(text).map_err(syntax)?;
    let root: Json = serde_json::from_str(text).map_err(syntax)?;
    let Json::Object(map) = root else {
        return Err(Error::Eval(
            "the inputs must be one JSON object mapping names to tensors".into(),
        ));
    };
    map.into_iter()
        .map(|(name, v)| {
            let t = parse_tensor(&v).map_err(|message| Error::Input {
                name: name.clone(),
                message,
            })?;
            Ok((name, t))
        })
        .collect()
}

fn parse_tensor(v: &Json) -> std::result::Result<Tensor, String> {
    let obj = v
        .as_object()
        .ok_or("expected an object with `shape`, `dtype` and `data`")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["shape", "dtype", "data"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field `{k}` (expected `shape`, `dtype`, `data`)"
        ));
    }
    let shape = obj
        .get("shape")
        .and_then(Json::as_array)
        .ok_or("`shape` must be an array of extents")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or("`shape` must hold non-negative integers")?;
    let dtype_name = obj
        .get("dtype")
        .and_then(Json::as_str)
        .ok_or("`dtype` must be one of \"f32\", \"i32\", \"u32\", \"bool\"")?;
    let dtype = DType::from_name(dtype_name)
        .ok_or_else(|| format!("unknown dtype `{dtype_name}` (expected f32, i32, u32 or bool)"))?;
    let data = obj
        .get("data")
        .and_then(Json::as_array)
        .ok_or("`data` must be a flat array")?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("the shape's element count overflows")?;
    if data.len() != numel {
        return Err(format!(
            "shape {} holds {numel} elements but `data` has {}",
            wgrad_compiler::ir::fmt_shape(&shape),
            data.len()
        ));
    }
    let values = data
        .iter()
        .enumerate()
        .map(|(i, x)| {
            element(dtype, x).ok_or_else(|| match (dtype, x.as_f64()) {
                (DType::F32, Some(v)) if v.is_finite() => format!(
                    "data[{i}] = {x} is beyond f32's range (±{:e}; write \"inf\" or \"-inf\")",
                    f32::MAX
                ),
                _ => format!("data[{i}] = {x} is not a valid {dtype}"),
            })
        })
        .collect::<std::result::Result<Vec<f64>, String>>()?;
    Tensor::new(Type::new(dtype, &shape), values).map_err(|e| e.to_string())
}

fn element(dtype: DType, x: &Json) -> Option<f64> {
    match (dtype, x) {
        // A finite number beyond f32's range would silently become infinite on the
        // device: write "inf" or "-inf" for that.
        (DType::F32, Json::Number(n)) => n.as_f64().filter(|x| x.abs() <= f64::from(f32::MAX)),
        (DType::F32, Json::String(s)) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        (DType::I32, Json::Number(n)) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(f64::from),
        (DType::U32, Json::Number(n)) => n
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .map(f64::from),
        (DType::Bool, Json::Bool(b)) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Checks named tensors against a program's inputs: every input given, no unknown name,
/// each with the declared shape and dtype.
pub fn check_inputs(graph: &Graph, inputs: &HashMap<String, Tensor>) -> Result<()> {
    for (name, v) in graph.inputs() {
        let want = graph.ty(*v);
        match inputs.get(name) {
            None => {
                return Err(Error::Input {
                    name: name.clone(),
                    message: format!("missing (the program declares it as {want})"),
                });
            }
            Some(t) if t.ty != *want => {
                return Err(Error::Input {
                    name: name.clone(),
                    message: format!("expected {want}, got {}", t.ty),
                });
            }
            Some(_) => {}
        }
    }
    let mut given: Vec<&String> = inputs.keys().collect();
    given.sort();
    if let Some(extra) = given.iter().find(|n| graph.input(n).is_err()) {
        return Err(Error::Name(format!(
            "the program has no input named `{extra}`"
        )));
    }
    Ok(())
}

/// How precisely float values were computed, which decides how they print: each value
/// is written as the shortest decimal that round-trips it *at that precision*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Computed in f64 (the reference interpreter).
    F64,
    /// Computed in f32 (a device).
    F32,
}

/// Writes named tensors as one JSON object, one tensor per line, in the given order.
pub fn format_tensors(tensors: &[(String, Tensor)], precision: Precision) -> String {
    let mut out = String::from("{");
    for (i, (name, t)) in tensors.iter().enumerate() {
        let data: Vec<String> = t
            .data
            .iter()
            .map(|&x| element_text(t.ty.dtype, x, precision))
            .collect();
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(&format!(
            "{}: {{\"shape\":{},\"dtype\":\"{}\",\"data\":[{}]}}",
            Json::String(name.clone()),
            json!(t.ty.shape),
            t.ty.dtype.name(),
            data.join(",")
        ));
    }
    out.push_str("\n}\n");
    out
}

/// One element as JSON text. Rust's `{:?}` writes the shortest decimal that parses back
/// to the same value of that float type, always with a `.` or an exponent.
fn element_text(dtype: DType, x: f64, precision: Precision) -> String {
    match dtype {
        DType::F32 if x.is_nan() => "\"NaN\"".into(),
        DType::F32 if x.is_infinite() => if x > 0.0 { "\"inf\"" } else { "\"-inf\"" }.into(),
        DType::F32 if precision == Precision::F32 => format!("{:?}", x as f32),
        DType::F32 => format!("{x:?}"),
        DType::I32 | DType::U32 => format!("{}", x as i64),
        DType::Bool => (x != 0.0).to_string(),
    }
}

/// Any JSON value, accepted only when no object in it names a key twice.
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_u64<E>(self, _: u64) -> std::result::Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_str<E>(self, _: &str) -> std::result::Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_unit<E>(self) -> std::result::Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
}
