//! The JSON form of named tensors, shared by every command that reads inputs or prints
//! outputs.
//!
//! One object maps each name to `{"shape": [..], "dtype": "f32"|"i32"|"u32"|"bool",
//! "data": [..]}` with `data` flat and row-major (a scalar has `"shape": []`). Floats are
//! written as the shortest decimal that round-trips the value; the non-finite ones as
//! the strings `"NaN"`, `"inf"` and `"-inf"`; bools as `true`/`false`.

use crate::compiler::{Error, Result};
use crate::{DType, Graph, Tensor, Type};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};

/// Parses a JSON object of named tensors from text; see [`read_tensors`].
pub fn parse_tensors(text: &str) -> Result<HashMap<String, Tensor>> {
    read_tensors(text.as_bytes())
}

/// Reads a JSON object of named tensors from `reader`, streaming: each tensor's
/// elements go straight into its typed buffer (no tree of JSON values is built), so
/// memory stays near the tensors' own size. A UTF-8 byte-order mark is skipped.
///
/// Malformed JSON, and an object that names one key twice (which JSON readers disagree
/// on), are [`Error::Parse`] errors at the line and column where they are found; a
/// tensor whose shape, dtype and data disagree is an [`Error::Input`] naming it.
pub fn read_tensors(reader: impl Read) -> Result<HashMap<String, Tensor>> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let bom = "\u{feff}".as_bytes();
    let head = reader
        .fill_buf()
        .map_err(|e| Error::Eval(format!("cannot read the inputs: {e}")))?;
    if head.starts_with(bom) {
        reader.consume(bom.len());
    }
    let syntax = |e: serde_json::Error| {
        if e.is_io() {
            return Error::Eval(format!("cannot read the inputs: {e}"));
        }
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
    let mut de = serde_json::Deserializer::from_reader(reader);
    let raw = de.deserialize_map(RootVisitor).map_err(syntax)?;
    de.end().map_err(syntax)?;
    raw.into_iter()
        .map(|(name, raw)| {
            let t = raw.finish().map_err(|message| Error::Input {
                name: name.clone(),
                message,
            })?;
            Ok((name, t))
        })
        .collect()
}

/// The root object: names to tensors, each name once.
struct RootVisitor;

impl<'de> Visitor<'de> for RootVisitor {
    type Value = Vec<(String, RawTensor)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("one JSON object mapping input names to tensors")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out: Vec<(String, RawTensor)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{name}`")));
            }
            let t = map.next_value_seed(TensorSeed { name: &name })?;
            out.push((name, t));
        }
        Ok(out)
    }
}

/// A tensor as written, before its shape, dtype and data are checked against each
/// other: the fields may come in any order, so elements are kept as `f64` with a note
/// of the first element of each JSON kind, which decides what the dtype accepts.
#[derive(Default)]
struct RawTensor {
    shape: Option<Vec<usize>>,
    dtype: Option<String>,
    data: Option<Vec<f64>>,
    /// The first element written as a JSON number with a fraction or an exponent.
    first_float: Option<usize>,
    /// The first element written as a JSON integer.
    first_int: Option<usize>,
    /// The first element written as a string (`"NaN"`, `"inf"`, `"-inf"`).
    first_string: Option<usize>,
    /// The first element written as `true` or `false`.
    first_bool: Option<usize>,
}

impl RawTensor {
    fn finish(self) -> std::result::Result<Tensor, String> {
        let shape = self.shape.ok_or("`shape` is missing")?;
        let dtype_name = self.dtype.ok_or("`dtype` is missing")?;
        let data = self.data.ok_or("`data` is missing")?;
        let dtype = DType::from_name(&dtype_name).ok_or_else(|| {
            format!("unknown dtype `{dtype_name}` (expected f32, i32, u32 or bool)")
        })?;
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
        let invalid = |i: usize| format!("data[{i}] = {} is not a valid {dtype}", data[i]);
        let first = |list: &[Option<usize>]| list.iter().flatten().min().copied();
        match dtype {
            DType::F32 => {
                if let Some(i) = self.first_bool {
                    return Err(format!("data[{i}] is a bool, not a valid f32"));
                }
                if let Some(i) = data
                    .iter()
                    .position(|x| x.is_finite() && x.abs() > f64::from(f32::MAX))
                {
                    return Err(format!(
                        "data[{i}] = {} is beyond f32's range (±{:e}; write \"inf\" or \"-inf\")",
                        data[i],
                        f32::MAX
                    ));
                }
            }
            DType::I32 | DType::U32 => {
                if let Some(i) = first(&[self.first_float, self.first_string, self.first_bool]) {
                    return Err(invalid(i));
                }
                let (lo, hi) = match dtype {
                    DType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
                    _ => (0.0, f64::from(u32::MAX)),
                };
                if let Some(i) = data.iter().position(|x| !(lo..=hi).contains(x)) {
                    return Err(invalid(i));
                }
            }
            DType::Bool => {
                if let Some(i) = first(&[self.first_float, self.first_int, self.first_string]) {
                    return Err(invalid(i));
                }
            }
        }
        Tensor::new(Type::new(dtype, &shape), data).map_err(|e| e.to_string())
    }
}

/// Reads one tensor's object.
struct TensorSeed<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for TensorSeed<'_> {
    type Value = RawTensor;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<RawTensor, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TensorSeed<'_> {
    type Value = RawTensor;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input `{}` as an object with `shape`, `dtype` and `data`",
            self.name
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawTensor, A::Error> {
        let mut t = RawTensor::default();
        let name = self.name;
        let twice = |field: &str| {
            de::Error::custom(format!("input `{name}`: field `{field}` is written twice"))
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "shape" => {
                    if t.shape.is_some() {
                        return Err(twice("shape"));
                    }
                    let shape = map.next_value::<Vec<u64>>().map_err(|_| {
                        de::Error::custom(format!(
                            "input `{name}`: `shape` must be an array of non-negative integers"
                        ))
                    })?;
                    let shape = shape
                        .into_iter()
                        .map(usize::try_from)
                        .collect::<std::result::Result<Vec<usize>, _>>()
                        .map_err(|_| {
                            de::Error::custom(format!("input `{name}`: an extent is too large"))
                        })?;
                    t.shape = Some(shape);
                }
                "dtype" => {
                    if t.dtype.is_some() {
                        return Err(twice("dtype"));
                    }
                    t.dtype = Some(map.next_value::<String>().map_err(|_| {
                        de::Error::custom(format!(
                            "input `{name}`: `dtype` must be one of \"f32\", \"i32\", \"u32\", \"bool\""
                        ))
                    })?);
                }
                "data" => {
                    if t.data.is_some() {
                        return Err(twice("data"));
                    }
                    // Reserve what the shape promises, within reason: a shape is only a
                    // claim until the elements arrive.
                    let hint = t
                        .shape
                        .as_ref()
                        .and_then(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)))
                        .unwrap_or(0)
                        .min(1 << 16);
                    map.next_value_seed(DataSeed {
                        name,
                        hint,
                        raw: &mut t,
                    })?;
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "input `{name}`: unknown field `{other}` (expected `shape`, `dtype`, `data`)"
                    )));
                }
            }
        }
        Ok(t)
    }
}

/// Reads a tensor's flat `data` array into its raw tensor.
struct DataSeed<'a, 'b> {
    name: &'a str,
    hint: usize,
    raw: &'b mut RawTensor,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input `{}`: `data` as a flat array", self.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut data = Vec::with_capacity(self.hint);
        let raw = self.raw;
        while let Some(e) = seq.next_element::<Element>()? {
            let i = data.len();
            let (x, note) = match e {
                Element::Float(x) => (x, &mut raw.first_float),
                Element::Int(x) => (x, &mut raw.first_int),
                Element::Str(x) => (x, &mut raw.first_string),
                Element::Bool(b) => (f64::from(u8::from(b)), &mut raw.first_bool),
            };
            note.get_or_insert(i);
            data.push(x);
        }
        raw.data = Some(data);
        Ok(())
    }
}

/// One element of `data`, by its JSON kind.
enum Element {
    Float(f64),
    Int(f64),
    Str(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Element, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl Visitor<'_> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, a bool, or one of \"NaN\", \"inf\", \"-inf\"")
    }

    fn visit_bool<E>(self, b: bool) -> std::result::Result<Element, E> {
        Ok(Element::Bool(b))
    }

    fn visit_i64<E>(self, x: i64) -> std::result::Result<Element, E> {
        // Integers beyond 2^53 are out of every integer dtype's range anyway.
        Ok(Element::Int(x as f64))
    }

    fn visit_u64<E>(self, x: u64) -> std::result::Result<Element, E> {
        Ok(Element::Int(x as f64))
    }

    fn visit_f64<E>(self, x: f64) -> std::result::Result<Element, E> {
        // serde_json reads the integer `-0` as the float -0.0: it is an integer zero.
        if x == 0.0 && x.is_sign_negative() {
            return Ok(Element::Int(0.0));
        }
        Ok(Element::Float(x))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Element, E> {
        match s {
            "NaN" => Ok(Element::Str(f64::NAN)),
            "inf" => Ok(Element::Str(f64::INFINITY)),
            "-inf" => Ok(Element::Str(f64::NEG_INFINITY)),
            _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
        }
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
    let mut out = Vec::new();
    write_tensors(&mut out, tensors, precision).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("JSON text is UTF-8")
}

/// Writes named tensors as [`format_tensors`] does, element by element into `w`
/// (buffered here), so no text the size of the output is built in memory.
pub fn write_tensors(
    w: impl Write,
    tensors: &[(String, Tensor)],
    precision: Precision,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, w);
    w.write_all(b"{")?;
    for (i, (name, t)) in tensors.iter().enumerate() {
        w.write_all(if i == 0 { b"\n  " } else { b",\n  " })?;
        write!(
            w,
            "{}: {{\"shape\":{},\"dtype\":\"{}\",\"data\":[",
            Json::String(name.clone()),
            json!(t.ty.shape),
            t.ty.dtype.name(),
        )?;
        for (j, &x) in t.data.iter().enumerate() {
            if j > 0 {
                w.write_all(b",")?;
            }
            write_element(&mut w, t.ty.dtype, x, precision)?;
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"\n}\n")?;
    w.flush()
}

/// One element as JSON text. Rust's `{:?}` writes the shortest decimal that parses back
/// to the same value of that float type, always with a `.` or an exponent.
fn write_element(
    w: &mut impl Write,
    dtype: DType,
    x: f64,
    precision: Precision,
) -> std::io::Result<()> {
    match dtype {
        DType::F32 if x.is_nan() => w.write_all(b"\"NaN\""),
        DType::F32 if x.is_infinite() => {
            w.write_all(if x > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })
        }
        DType::F32 if precision == Precision::F32 => write!(w, "{:?}", x as f32),
        DType::F32 => write!(w, "{x:?}"),
        DType::I32 | DType::U32 => write!(w, "{}", x as i64),
        DType::Bool => w.write_all(if x != 0.0 { b"true" } else { b"false" }),
    }
}
