//! The parser: reads the text format that [`print`](crate::ir::print()) writes back into a
//! [`Graph`].
//!
//! A program is one statement per line: `%name = op operands attributes : type` or
//! `output name = %v`, with `#` comments, blank lines and free spacing. Values may have any
//! name made of `[A-Za-z0-9_.]`; each is defined once, before its uses, and becomes the
//! next arena handle. Every node goes through the [`Builder`], so its type is inferred and
//! checked against the annotation, and the finished graph is verified. Loop bodies are
//! nested scopes in `{ ... }`. Every mistake is a [`ParseError`] with the line and column
//! of the offending token and what was expected; no input makes the parser panic, and
//! sizes are bounded (nesting depth, integers, element counts) so none overflows.

use super::builder::Builder;
use super::op::{AttrKind, AttrValue, DotDims, Op, OpKind, Region, Syntax};
use super::types::{DType, Scalar, Type};
use super::{Graph, NodeType, Side, Value, is_valid_name};
use crate::error::{Error, ParseError};
use std::collections::HashMap;

/// How deeply loop bodies may nest; deeper programs are rejected, not recursed into.
const MAX_DEPTH: usize = 64;

/// The largest integer accepted in a shape or attribute. Keeping every extent and
/// attribute below 2^32 means shape arithmetic in inference (a padded extent is the sum of
/// three of them, a concatenated one the sum of a few) cannot overflow a 64-bit `usize`.
const MAX_INT: u64 = u32::MAX as u64;

/// Parses a program in the text format.
///
/// ```
/// let g = wgrad_compiler::ir::parse("%0 = input x : f32[2]\n%1 = exp %0 : f32[2]\noutput y = %1\n")?;
/// assert_eq!(g.len(), 2);
/// # Ok::<(), wgrad_compiler::error::ParseError>(())
/// ```
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    let mut parser = Parser::new(lex(text));
    let builder = parser.block(0, None)?;
    let end = parser.peek().at();
    builder
        .finish()
        .map_err(|e| end.error(format!("the parsed program does not verify: {e}")))
}

// ---- Tokens -----------------------------------------------------------------------

/// A 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    /// A parse error at this position.
    fn error(self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// What a token is; punctuation kinds are named after their character.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// A run of `[A-Za-z0-9_.+-]`: an op, a name, a dtype, an integer or a literal.
    Word(String),
    /// `%name`, holding the name without the `%`.
    Value(String),
    Eq,
    Comma,
    Colon,
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Newline,
    Eof,
    /// A character no token starts with; lexing stops here, and the parser reports the
    /// message when it reaches this token.
    Bad(String),
}

/// A token and where it starts.
#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    line: usize,
    column: usize,
}

impl Token {
    fn at(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    /// How the token reads in "found ..." messages.
    fn describe(&self) -> String {
        let quote = |s: &str| format!("`{}`", clip(s));
        match &self.kind {
            Kind::Word(w) => quote(w),
            Kind::Value(v) => quote(&format!("%{v}")),
            Kind::Eq => "`=`".into(),
            Kind::Comma => "`,`".into(),
            Kind::Colon => "`:`".into(),
            Kind::LBracket => "`[`".into(),
            Kind::RBracket => "`]`".into(),
            Kind::LParen => "`(`".into(),
            Kind::RParen => "`)`".into(),
            Kind::LBrace => "`{`".into(),
            Kind::RBrace => "`}`".into(),
            Kind::Newline => "end of line".into(),
            Kind::Eof => "end of input".into(),
            Kind::Bad(m) => m.clone(),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.')
}

/// Splits `text` into tokens. The list always ends with [`Kind::Eof`] or [`Kind::Bad`].
fn lex(text: &str) -> Vec<Token> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1, 1);
    while let Some(c) = chars.next() {
        let (start_line, start_column) = (line, column);
        column += 1;
        let mut push = |kind| {
            toks.push(Token {
                kind,
                line: start_line,
                column: start_column,
            })
        };
        match c {
            ' ' | '\t' | '\r' => {}
            '\n' => {
                push(Kind::Newline);
                line += 1;
                column = 1;
            }
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '=' => push(Kind::Eq),
            ',' => push(Kind::Comma),
            ':' => push(Kind::Colon),
            '[' => push(Kind::LBracket),
            ']' => push(Kind::RBracket),
            '(' => push(Kind::LParen),
            ')' => push(Kind::RParen),
            '{' => push(Kind::LBrace),
            '}' => push(Kind::RBrace),
            '%' => {
                let mut name = String::new();
                while let Some(c) = chars.next_if(|&c| is_value_char(c)) {
                    name.push(c);
                    column += 1;
                }
                if name.is_empty() {
                    push(Kind::Bad(
                        "expected a value name like %0 after `%`".to_string(),
                    ));
                    return toks;
                }
                push(Kind::Value(name));
            }
            c if is_word_char(c) => {
                let mut word = c.to_string();
                while let Some(c) = chars.next_if(|&c| is_word_char(c)) {
                    word.push(c);
                    column += 1;
                }
                push(Kind::Word(word));
            }
            c => {
                push(Kind::Bad(format!(
                    "unexpected character `{}`",
                    c.escape_debug()
                )));
                return toks;
            }
        }
    }
    toks.push(Token {
        kind: Kind::Eof,
        line,
        column,
    });
    toks
}

// ---- Ops and attributes -----------------------------------------------------------

/// The attributes of one op line, in the order of the op's entry in [`OpKind::syntax`],
/// and a cursor that hands them out in that order.
struct Attrs {
    /// The op's entry in the table.
    op: Syntax,
    /// One slot per attribute of `op`, filled when the attribute is written.
    values: Vec<Option<AttrValue>>,
    /// The next attribute to hand out.
    next: usize,
    /// Where the attributes end: missing attributes are reported here.
    end: Pos,
}

impl Attrs {
    /// The next attribute's name and value.
    fn take(&mut self) -> Result<(&'static str, AttrValue), ParseError> {
        let i = self.next;
        self.next += 1;
        let key = self.op.attrs.get(i).map_or("", |&(key, _)| key);
        match self.values.get_mut(i).and_then(Option::take) {
            Some(value) => Ok((key, value)),
            None => Err(self.end.error(format!(
                "`{}` needs the attribute `{key}=...`",
                self.op.name
            ))),
        }
    }

    fn int(&mut self) -> Result<usize, ParseError> {
        match self.take()? {
            (_, AttrValue::Int(x)) => Ok(x),
            (key, _) => Err(self
                .end
                .error(format!("attribute `{key}` is not an integer"))),
        }
    }

    fn index(&mut self) -> Result<u32, ParseError> {
        match self.take()? {
            (_, AttrValue::Index(x)) => Ok(x),
            (key, _) => Err(self.end.error(format!("attribute `{key}` is not an index"))),
        }
    }

    fn list(&mut self) -> Result<Vec<usize>, ParseError> {
        match self.take()? {
            (_, AttrValue::List(x)) => Ok(x),
            (key, _) => Err(self.end.error(format!("attribute `{key}` is not a list"))),
        }
    }

    fn literal(&mut self) -> Result<Scalar, ParseError> {
        match self.take()? {
            (_, AttrValue::Literal(x)) => Ok(x),
            (key, _) => Err(self
                .end
                .error(format!("attribute `{key}` is not a literal"))),
        }
    }
}

/// The op of a line, built from its kind and attributes, which are taken in the order of
/// the kind's entry in [`OpKind::syntax`]. Parameters that come from the type annotation
/// (a constant's value and shape, a reshape's shape, ...) are filled in by [`complete`]
/// once the annotation is read.
fn build_op(kind: OpKind, a: &mut Attrs) -> Result<Op, ParseError> {
    Ok(match kind {
        OpKind::Input => Op::Input { index: 0 },
        OpKind::Constant => Op::Constant {
            value: Scalar::Bool(false),
            shape: vec![],
        },
        OpKind::Iota => Op::Iota {
            dtype: DType::F32,
            shape: vec![],
            axis: a.int()?,
        },
        OpKind::Unary(u) => Op::Unary(u),
        OpKind::Binary(b) => Op::Binary(b),
        OpKind::Compare(c) => Op::Compare(c),
        OpKind::Select => Op::Select,
        OpKind::Cast => Op::Cast { dtype: DType::F32 },
        OpKind::Broadcast => Op::Broadcast {
            shape: vec![],
            dims: a.list()?,
        },
        OpKind::Reshape => Op::Reshape { shape: vec![] },
        OpKind::Transpose => Op::Transpose { perm: a.list()? },
        OpKind::Slice => Op::Slice {
            start: a.list()?,
            limit: a.list()?,
        },
        OpKind::Concat => Op::Concat { axis: a.int()? },
        OpKind::Pad => Op::Pad {
            low: a.list()?,
            high: a.list()?,
            value: a.literal()?,
        },
        OpKind::Reduce(kind) => Op::Reduce {
            kind,
            axes: a.list()?,
        },
        OpKind::Dot => Op::Dot(DotDims {
            lhs_batch: a.list()?,
            rhs_batch: a.list()?,
            lhs_contract: a.list()?,
            rhs_contract: a.list()?,
        }),
        OpKind::OneHot => Op::OneHot {
            depth: a.int()?,
            dtype: DType::F32,
        },
        OpKind::Gather => Op::Gather { axis: a.int()? },
        OpKind::DynamicSlice => Op::DynamicSlice { sizes: a.list()? },
        OpKind::DynamicUpdateSlice => Op::DynamicUpdateSlice,
        OpKind::ScatterAdd => Op::ScatterAdd {
            axis: a.int()?,
            size: a.int()?,
        },
        OpKind::StopGradient => Op::StopGradient,
        OpKind::Loop => Op::Loop {
            trips: a.index()?,
            carried: a.index()?,
            body: Region(0),
        },
        OpKind::Get => Op::Get { index: a.index()? },
    })
}

/// A dense literal as written: a word, or a list of them nested one level per axis.
enum Nested {
    Leaf(String, Pos),
    List(Vec<Nested>, Pos),
}

/// The row-major elements of dense literal `n` written for a value of type `ty`: each
/// list as long as its axis, words at the innermost level, each a literal of `ty`'s
/// dtype.
fn nested_values(n: &Nested, ty: &Type, at: Pos) -> Result<Vec<Scalar>, ParseError> {
    fn walk(
        n: &Nested,
        shape: &[usize],
        axis: usize,
        ty: &Type,
        out: &mut Vec<Scalar>,
    ) -> Result<(), ParseError> {
        match (n, shape.split_first()) {
            (Nested::Leaf(w, at), None) => {
                out.push(literal(w, ty.dtype, *at)?);
                Ok(())
            }
            (Nested::List(items, at), Some((&extent, inner))) => {
                if items.len() != extent {
                    return Err(at.error(format!(
                        "a list of {} elements along axis {axis} of {ty}, which has {extent}",
                        items.len()
                    )));
                }
                items
                    .iter()
                    .try_for_each(|item| walk(item, inner, axis + 1, ty, out))
            }
            (Nested::Leaf(w, at), Some(_)) => Err(at.error(format!(
                "`{}` where a list along axis {axis} of {ty} belongs",
                clip(w)
            ))),
            (Nested::List(_, at), None) => Err(at.error(format!(
                "a list nested deeper than the {} axes of {ty}",
                ty.shape.len()
            ))),
        }
    }
    if ty.shape.is_empty() {
        return Err(at.error(format!(
            "a list for a scalar {ty}: write the value alone (`constant 0.5`)"
        )));
    }
    let mut out = Vec::new();
    walk(n, &ty.shape, 0, ty, &mut out)?;
    Ok(out)
}

/// Fills in the parameters an op takes from its type annotation.
fn complete(op: &mut Op, ann: &Type, constant: Option<Scalar>) {
    match op {
        Op::Constant { value, shape } => {
            if let Some(c) = constant {
                *value = c;
            }
            *shape = ann.shape.clone();
        }
        Op::Iota { dtype, shape, .. } => {
            *dtype = ann.dtype;
            *shape = ann.shape.clone();
        }
        Op::Cast { dtype } | Op::OneHot { dtype, .. } => *dtype = ann.dtype,
        Op::Broadcast { shape, .. } | Op::Reshape { shape } => *shape = ann.shape.clone(),
        _ => {}
    }
}

// ---- Literals ---------------------------------------------------------------------

/// Parses a non-negative integer no larger than [`MAX_INT`].
fn integer(word: &str, at: Pos) -> Result<usize, ParseError> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(at.error(format!(
            "expected a non-negative integer, found `{}`",
            clip(word)
        )));
    }
    word.parse::<u64>()
        .ok()
        .filter(|&x| x <= MAX_INT)
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| {
            at.error(format!(
                "integer `{}` is too large (at most {MAX_INT})",
                clip(word)
            ))
        })
}

/// Whether `word` is a decimal number: `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`.
fn is_decimal(word: &str) -> bool {
    let s = word.strip_prefix(['+', '-']).unwrap_or(word);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Parses a scalar literal of element type `dtype`.
fn literal(word: &str, dtype: DType, at: Pos) -> Result<Scalar, ParseError> {
    let bad = |example: &str| {
        at.error(format!(
            "expected {} literal like {example}, found `{}`",
            dtype.name(),
            clip(word)
        ))
    };
    let signed_int = |w: &str| {
        let digits = w.strip_prefix(['+', '-']).unwrap_or(w);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let too_large = || {
        at.error(format!(
            "literal `{}` does not fit in {}",
            clip(word),
            dtype.name()
        ))
    };
    match dtype {
        DType::F32 => {
            let x = match word {
                "nan" => f64::NAN,
                "inf" | "+inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                w if is_decimal(w) => {
                    let x: f64 = w.parse().map_err(|_| bad("0.5"))?;
                    // Beyond f32's range the device would hold an infinity: say so.
                    if x.is_nan() || x.abs() > f64::from(f32::MAX) {
                        return Err(at.error(format!(
                            "float literal `{}` is beyond f32's range (±{:e}; write inf or -inf)",
                            clip(word),
                            f32::MAX
                        )));
                    }
                    x
                }
                _ => return Err(bad("0.5, -3e-7, nan or inf")),
            };
            Ok(Scalar::float(x))
        }
        DType::I32 if signed_int(word) => word.parse().map(Scalar::Int).map_err(|_| too_large()),
        DType::I32 => Err(bad("-3")),
        DType::U32 if signed_int(word) && !word.starts_with('-') => {
            word.parse().map(Scalar::Uint).map_err(|_| too_large())
        }
        DType::U32 => Err(bad("7")),
        DType::Bool => match word {
            "true" => Ok(Scalar::Bool(true)),
            "false" => Ok(Scalar::Bool(false)),
            _ => Err(bad("true or false")),
        },
    }
}

/// The message of a builder error, without the stage prefix of a name error.
fn message(e: Error) -> String {
    match e {
        Error::Type(t) => format!("type error: {t}"),
        Error::Name(m) => m,
        other => other.to_string(),
    }
}

/// At most 40 characters of `s`, for messages.
fn clip(s: &str) -> String {
    let mut short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        short.push_str("...");
    }
    short
}

/// A type as written in annotations: `f32[2]` or `(f32[2], i32[])`.
fn show(ty: &NodeType) -> String {
    match ty {
        NodeType::Tensor(t) => t.to_string(),
        NodeType::Tuple(items) => {
            let items: Vec<String> = items.iter().map(|t| t.to_string()).collect();
            format!("({})", items.join(", "))
        }
    }
}

// ---- The parser -------------------------------------------------------------------

/// A value name's handle and the line that defined it.
type Scope = HashMap<String, (Value, usize)>;

/// A cursor over the tokens, and the value names in scope.
struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// The last token, returned when reading past the end.
    last: Token,
    /// Value names of the enclosing graphs, innermost last.
    scopes: Vec<Scope>,
}

impl Parser {
    fn new(toks: Vec<Token>) -> Parser {
        let last = toks.last().cloned().unwrap_or(Token {
            kind: Kind::Eof,
            line: 1,
            column: 1,
        });
        Parser {
            toks,
            pos: 0,
            last,
            scopes: Vec::new(),
        }
    }

    fn peek(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&self.last)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// An error at the current token: "expected {what}, found ...", or the lexer's
    /// message if the current token is a bad character.
    fn unexpected(&self, what: &str) -> ParseError {
        let t = self.peek();
        match &t.kind {
            Kind::Bad(m) => t.at().error(m.clone()),
            _ => t
                .at()
                .error(format!("expected {what}, found {}", t.describe())),
        }
    }

    /// Consumes a token of kind `kind`, or reports that `what` was expected.
    fn expect(&mut self, kind: Kind, what: &str) -> Result<Pos, ParseError> {
        if self.peek().kind == kind {
            Ok(self.bump().at())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// Consumes a word, or reports that `what` was expected.
    fn word(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        match &self.peek().kind {
            Kind::Word(w) => {
                let w = w.clone();
                Ok((w, self.bump().at()))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// Requires the end of the line (or of the input); the newline is left for the block.
    fn end_of_line(&mut self, after: &str) -> Result<(), ParseError> {
        match self.peek().kind {
            Kind::Newline | Kind::Eof => Ok(()),
            _ => Err(self.unexpected(&format!("end of line after {after}"))),
        }
    }

    /// Parses statements into a new graph until the end of input (at depth 0) or the `}`
    /// closing the loop body opened at `open`.
    fn block(&mut self, depth: usize, open: Option<Pos>) -> Result<Builder, ParseError> {
        let mut b = Builder::new();
        self.scopes.push(Scope::new());
        loop {
            match &self.peek().kind {
                Kind::Newline => {
                    self.bump();
                }
                Kind::Eof => match open {
                    Some(at) => {
                        return Err(
                            at.error("unterminated loop body: this `{` is never closed by a `}`")
                        );
                    }
                    None => break,
                },
                Kind::RBrace if open.is_some() => {
                    self.bump();
                    break;
                }
                Kind::RBrace => {
                    return Err(self.peek().at().error("`}` outside a loop body"));
                }
                Kind::Value(_) => self.node(&mut b, depth)?,
                Kind::Word(w) if w == "output" => self.output(&mut b)?,
                _ => {
                    return Err(self
                        .unexpected("a definition like `%0 = ...` or a line `output NAME = %v`"));
                }
            }
        }
        self.scopes.pop();
        Ok(b)
    }

    /// Resolves a `%name` operand.
    fn operand(&mut self) -> Result<Value, ParseError> {
        let t = self.peek().clone();
        let Kind::Value(name) = &t.kind else {
            return Err(self.unexpected("a value like %0"));
        };
        self.bump();
        let found = self.scopes.last().and_then(|s| s.get(name));
        if let Some(&(v, _)) = found {
            return Ok(v);
        }
        let outer = self
            .scopes
            .iter()
            .rev()
            .skip(1)
            .any(|s| s.contains_key(name));
        let hint = if outer {
            " (a loop body cannot use values from outside it; pass them as loop operands)"
        } else {
            ""
        };
        Err(t.at().error(format!("undefined value %{name}{hint}")))
    }

    /// `output NAME = %v`.
    fn output(&mut self, b: &mut Builder) -> Result<(), ParseError> {
        self.bump();
        let (name, name_at) = self.word("an output name")?;
        if !is_valid_name(&name) {
            return Err(name_at.error(format!(
                "`{}` is not a valid output name (expected [A-Za-z_][A-Za-z0-9_.]*)",
                clip(&name)
            )));
        }
        if b.graph().outputs.iter().any(|(n, _)| *n == name) {
            return Err(name_at.error(format!("output `{name}` declared twice")));
        }
        self.expect(Kind::Eq, &format!("`=` after `output {name}`"))?;
        let value_at = self.peek().at();
        let v = self.operand()?;
        self.end_of_line("the output's value")?;
        b.output(&name, v).map_err(|e| value_at.error(message(e)))
    }

    /// One definition `%name = op ... : type`, including a loop's body.
    fn node(&mut self, b: &mut Builder, depth: usize) -> Result<(), ParseError> {
        let def = self.bump();
        let Kind::Value(name) = def.kind.clone() else {
            return Err(def.at().error("expected a value definition"));
        };
        if let Some(&(_, line)) = self.scopes.last().and_then(|s| s.get(&name)) {
            return Err(def.at().error(format!(
                "value %{name} defined twice (first on line {line})"
            )));
        }
        self.expect(Kind::Eq, &format!("`=` after %{name}"))?;
        let (mnemonic, op_at) = self.word("an op name like `add`")?;
        let Some(kind) = OpKind::from_name(&mnemonic) else {
            return Err(op_at.error(format!("unknown op `{}`", clip(&mnemonic))));
        };
        let v = match kind {
            OpKind::Input => self.input(b)?,
            _ => self.op(b, kind, op_at, depth)?,
        };
        b.set_name(v, &name);
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name, (v, def.line));
        }
        Ok(())
    }

    /// The rest of `input NAME : T`.
    fn input(&mut self, b: &mut Builder) -> Result<Value, ParseError> {
        let (name, name_at) = self.word("an input name")?;
        if !is_valid_name(&name) {
            return Err(name_at.error(format!(
                "`{}` is not a valid input name (expected [A-Za-z_][A-Za-z0-9_.]*)",
                clip(&name)
            )));
        }
        if b.graph().inputs.iter().any(|(n, _)| *n == name) {
            return Err(name_at.error(format!("input `{name}` declared twice")));
        }
        self.expect(Kind::Colon, "`:` and the input's type")?;
        let ty = self.tensor_type()?;
        self.end_of_line("the type")?;
        b.input(&name, ty).map_err(|e| name_at.error(message(e)))
    }

    /// The rest of any line but an input: operands, attributes, a loop's body, the type.
    fn op(
        &mut self,
        b: &mut Builder,
        kind: OpKind,
        op_at: Pos,
        depth: usize,
    ) -> Result<Value, ParseError> {
        let mut constant = None;
        let mut dense = None;
        let mut args = Vec::new();
        if kind == OpKind::Constant && self.peek().kind == Kind::LBracket {
            let at = self.peek().at();
            dense = Some((self.nested(0)?, at));
        } else if kind == OpKind::Constant {
            constant = Some(self.word("a literal like 0.5 or a list like [[1, 0], [0, 1]]")?);
        } else if matches!(self.peek().kind, Kind::Value(_)) {
            args.push(self.operand()?);
            while self.peek().kind == Kind::Comma {
                self.bump();
                args.push(self.operand()?);
            }
        }
        // A padding value is written in the operand's dtype.
        let operand_dtype = args
            .first()
            .and_then(|&a| match &b.graph().node(a).ty {
                NodeType::Tensor(t) => Some(t.dtype),
                NodeType::Tuple(_) => None,
            })
            .unwrap_or(DType::F32);
        let mut attrs = self.attributes(kind.syntax(), operand_dtype)?;
        let mut op = build_op(kind, &mut attrs)?;

        if let Op::Loop { body, .. } = &mut op {
            let open = self.expect(Kind::LBrace, "`{` and the loop body")?;
            if depth + 1 > MAX_DEPTH {
                return Err(open.error(format!("loop bodies nest deeper than {MAX_DEPTH} levels")));
            }
            self.end_of_line("`{`")?;
            let inner = self.block(depth + 1, Some(open))?;
            let graph = inner.finish().map_err(|e| {
                open.error(format!("the loop body does not verify: {}", message(e)))
            })?;
            *body = b.push_region(graph);
        }

        self.expect(Kind::Colon, "`:` and the result type")?;
        let ty_at = self.peek().at();
        let ann = if kind == OpKind::Loop {
            NodeType::Tuple(self.tuple_type()?)
        } else {
            NodeType::Tensor(self.tensor_type()?)
        };
        // A node emitted by differentiation carries the tag `adjoint` (reverse mode)
        // or `tangent` (forward mode) after its type.
        let side = match &self.peek().kind {
            Kind::Word(w) if w == "adjoint" => {
                self.bump();
                Side::Adjoint
            }
            Kind::Word(w) if w == "tangent" => {
                self.bump();
                Side::Tangent
            }
            _ => Side::Primal,
        };
        self.end_of_line("the type")?;

        if let NodeType::Tensor(t) = &ann {
            let value = match &constant {
                Some((word, at)) => Some(literal(word, t.dtype, *at)?),
                None => None,
            };
            complete(&mut op, t, value);
            if let Some((nested, at)) = &dense {
                op = Op::Literal {
                    dtype: t.dtype,
                    values: nested_values(nested, t, *at)?,
                    shape: t.shape.clone(),
                };
            }
        }
        b.set_side(side);
        let v = b.push(op, &args).map_err(|e| op_at.error(message(e)))?;
        let inferred = &b.graph().node(v).ty;
        if *inferred != ann {
            return Err(ty_at.error(format!(
                "type annotation {} does not match inferred {}",
                show(&ann),
                show(inferred)
            )));
        }
        Ok(v)
    }

    /// Reads `key=value` attributes of the op written `op` until the next non-word token.
    fn attributes(&mut self, op: Syntax, operand_dtype: DType) -> Result<Attrs, ParseError> {
        let mut values: Vec<Option<AttrValue>> = vec![None; op.attrs.len()];
        while let Kind::Word(key) = &self.peek().kind {
            let key_at = self.peek().at();
            let Some(i) = op.attrs.iter().position(|(k, _)| k == key) else {
                let expected = if op.attrs.is_empty() {
                    "it takes none".to_string()
                } else {
                    let names: Vec<&str> = op.attrs.iter().map(|(k, _)| *k).collect();
                    format!("expected {}", names.join(", "))
                };
                return Err(key_at.error(format!(
                    "unknown attribute `{}` for `{}` ({expected})",
                    clip(key),
                    op.name
                )));
            };
            let (key, kind) = op.attrs[i];
            if values[i].is_some() {
                return Err(key_at.error(format!("attribute `{key}` given twice")));
            }
            self.bump();
            self.expect(Kind::Eq, &format!("`=` after attribute `{key}`"))?;
            let value = match kind {
                AttrKind::Int => {
                    let (w, at) = self.word(&format!("an integer for `{key}`"))?;
                    AttrValue::Int(integer(&w, at)?)
                }
                AttrKind::Index => {
                    let (w, at) = self.word(&format!("an integer for `{key}`"))?;
                    let x = integer(&w, at)?;
                    let x = u32::try_from(x)
                        .map_err(|_| at.error(format!("`{key}` must fit in u32")))?;
                    AttrValue::Index(x)
                }
                AttrKind::List => {
                    AttrValue::List(self.int_list(&format!("a list like [0,1] for `{key}`"))?)
                }
                AttrKind::Literal => {
                    let (w, at) = self.word(&format!("a literal for `{key}`"))?;
                    AttrValue::Literal(literal(&w, operand_dtype, at)?)
                }
            };
            values[i] = Some(value);
        }
        Ok(Attrs {
            op,
            values,
            next: 0,
            end: self.peek().at(),
        })
    }

    /// A dense literal's elements, `[[1, 0], [2, 3]]`: nested lists of words, checked
    /// against the type once it is read.
    fn nested(&mut self, depth: usize) -> Result<Nested, ParseError> {
        if self.peek().kind != Kind::LBracket {
            let (w, at) = self.word("a literal or `[`")?;
            return Ok(Nested::Leaf(w, at));
        }
        let open = self.bump().at();
        if depth >= MAX_DEPTH {
            return Err(open.error(format!("a literal nests deeper than {MAX_DEPTH} levels")));
        }
        let mut items = Vec::new();
        if self.peek().kind == Kind::RBracket {
            self.bump();
            return Ok(Nested::List(items, open));
        }
        loop {
            items.push(self.nested(depth + 1)?);
            match self.peek().kind {
                Kind::Comma => {
                    self.bump();
                }
                Kind::RBracket => {
                    self.bump();
                    return Ok(Nested::List(items, open));
                }
                _ => return Err(self.unexpected("`,` or `]` in a literal")),
            }
        }
    }

    /// `[a,b,c]`: non-negative integers.
    fn int_list(&mut self, what: &str) -> Result<Vec<usize>, ParseError> {
        self.expect(Kind::LBracket, what)?;
        let mut items = Vec::new();
        if self.peek().kind == Kind::RBracket {
            self.bump();
            return Ok(items);
        }
        loop {
            let (w, at) = self.word("an integer")?;
            items.push(integer(&w, at)?);
            match self.peek().kind {
                Kind::Comma => {
                    self.bump();
                }
                Kind::RBracket => {
                    self.bump();
                    return Ok(items);
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    /// A tensor type `f32[2,3]`, whose element count must fit in `usize`.
    fn tensor_type(&mut self) -> Result<Type, ParseError> {
        const EXPECTED: &str = "a type like f32[2,3]";
        let at = self.peek().at();
        let (word, _) = self.word(EXPECTED)?;
        let Some(dtype) = DType::from_name(&word) else {
            return Err(at.error(format!(
                "expected {EXPECTED}, found `{}` (element types are f32, i32, u32 and bool)",
                clip(&word)
            )));
        };
        if self.peek().kind != Kind::LBracket {
            return Err(self.unexpected(&format!(
                "`[` and the shape after `{word}` (a type looks like f32[2,3])"
            )));
        }
        let shape = self.int_list(EXPECTED)?;
        let ty = Type::new(dtype, &shape);
        if super::infer::checked_numel(&shape).is_none() {
            return Err(at.error(format!("type {}", super::infer::too_large(&ty))));
        }
        Ok(ty)
    }

    /// A loop's tuple type `(f32[3], f32[])`.
    fn tuple_type(&mut self) -> Result<Vec<Type>, ParseError> {
        self.expect(Kind::LParen, "a tuple type like (f32[3], f32[])")?;
        let mut items = Vec::new();
        if self.peek().kind == Kind::RParen {
            self.bump();
            return Ok(items);
        }
        loop {
            items.push(self.tensor_type()?);
            match self.peek().kind {
                Kind::Comma => {
                    self.bump();
                }
                Kind::RParen => {
                    self.bump();
                    return Ok(items);
                }
                _ => return Err(self.unexpected("`,` or `)` in the tuple type")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mnemonic names one kind, and every kind's constructor and printed attributes
    /// follow its entry in the table: the values handed to the constructor come back from
    /// [`Op::attributes`] under the same names, in the same order.
    #[test]
    fn constructor_and_printer_follow_the_table() {
        let mut names = Vec::new();
        for kind in OpKind::all() {
            let syntax = kind.syntax();
            assert!(!names.contains(&syntax.name), "`{}` twice", syntax.name);
            names.push(syntax.name);
            assert_eq!(OpKind::from_name(syntax.name), Some(kind));

            // Distinct values per position, so that two attributes swapped on one side
            // show.
            let expected: Vec<(&str, AttrValue)> = (0..)
                .zip(syntax.attrs)
                .map(|(i, &(key, kind))| {
                    let value = match kind {
                        AttrKind::Int => AttrValue::Int(i as usize),
                        AttrKind::Index => AttrValue::Index(i),
                        AttrKind::List => AttrValue::List(vec![i as usize, 7]),
                        AttrKind::Literal => AttrValue::Literal(Scalar::Uint(i)),
                    };
                    (key, value)
                })
                .collect();
            let mut attrs = Attrs {
                op: syntax,
                values: expected.iter().map(|(_, v)| Some(v.clone())).collect(),
                next: 0,
                end: Pos { line: 1, column: 1 },
            };
            let op = build_op(kind, &mut attrs).expect("every attribute is given");
            assert_eq!(attrs.next, syntax.attrs.len(), "`{}`", syntax.name);
            assert_eq!(op.kind(), kind);
            assert_eq!(op.name(), syntax.name);
            assert_eq!(op.attributes().collect::<Vec<_>>(), expected);
        }
    }
}
