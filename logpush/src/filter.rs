//! The `filter` of a Logpush job: which records a job delivers.
//!
//! A filter is a JSON string `{"where": <expr>}`. An expression is either a comparison
//! `{"key": "<Field>", "operator": "<op>", "value": <v>}` or `{"and": [<expr>, ...]}` /
//! `{"or": [<expr>, ...]}`, nested freely. A record is delivered when the expression is true.
//!
//! [`Filter::parse`] refuses, with an error that names the place in the filter: a filter longer
//! than [`MAX_FILTER_BYTES`], more than [`MAX_FILTER_OPERATORS`] operators, an unknown field
//! or operator, an operator that does not apply to the field's type (`lt` on a string,
//! `startsWith` on an integer), a value of the wrong type, an empty `and`/`or`/`in` list, and
//! any key the language does not have.
//!
//! Values are typed by their field: strings for string fields (compared case-sensitively),
//! integers for `ServerResponseDurationMs`, booleans for `Success`, RFC 3339 strings for
//! `Datetime`. `eq` and `!eq` also take `null`, which matches a record that has no value for the
//! field. Every other comparison with a field the record has no value for is false, and each
//! `!` operator is the negation of its positive form (so `!eq "x"` is true for such a record).
//!
//! Counting operators: each comparison is one, except that `in` and `!in` count one per listed
//! value (`in ["a","b"]` is `eq "a"` or `eq "b"`); `and` and `or` are free. Counted this way the
//! two limits bind separately: 30 plain comparisons do not fit in 1,000 bytes, a 31-value `in`
//! does.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::dataset::{Dataset, Field, FieldType};
use crate::record::{Row, Value};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 1000;
/// The most operators a filter may hold: one per comparison, one per value of an `in`/`!in`.
pub const MAX_FILTER_OPERATORS: usize = 30;

/// A parsed, validated filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Expr,
    operators: usize,
}

/// A comparison operator of the filter language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    NotEq,
    Lt,
    Leq,
    Gt,
    Geq,
    StartsWith,
    EndsWith,
    NotStartsWith,
    NotEndsWith,
    Contains,
    NotContains,
    In,
    NotIn,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 14] = [
        Operator::Eq,
        Operator::NotEq,
        Operator::Lt,
        Operator::Leq,
        Operator::Gt,
        Operator::Geq,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::NotStartsWith,
        Operator::NotEndsWith,
        Operator::Contains,
        Operator::NotContains,
        Operator::In,
        Operator::NotIn,
    ];

    /// The operator as a filter spells it (`!startsWith`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::NotEq => "!eq",
            Operator::Lt => "lt",
            Operator::Leq => "leq",
            Operator::Gt => "gt",
            Operator::Geq => "geq",
            Operator::StartsWith => "startsWith",
            Operator::EndsWith => "endsWith",
            Operator::NotStartsWith => "!startsWith",
            Operator::NotEndsWith => "!endsWith",
            Operator::Contains => "contains",
            Operator::NotContains => "!contains",
            Operator::In => "in",
            Operator::NotIn => "!in",
        }
    }

    /// The operator spelled `name` (case-sensitive).
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The positive form of a negated operator, and whether it was negated.
    fn positive(self) -> (Operator, bool) {
        match self {
            Operator::NotEq => (Operator::Eq, true),
            Operator::NotStartsWith => (Operator::StartsWith, true),
            Operator::NotEndsWith => (Operator::EndsWith, true),
            Operator::NotContains => (Operator::Contains, true),
            Operator::NotIn => (Operator::In, true),
            other => (other, false),
        }
    }

    /// Whether the operator applies to a field of type `ty`.
    fn applies_to(self, ty: FieldType) -> bool {
        ty != FieldType::Json
            && match self.positive().0 {
                Operator::Eq | Operator::In => true,
                Operator::Lt | Operator::Leq | Operator::Gt | Operator::Geq => {
                    matches!(ty, FieldType::Int | FieldType::Timestamp)
                }
                _ => ty == FieldType::String,
            }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a filter was refused. Each message names the place in the filter (`where.and[1].value`)
/// and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter is {len} bytes long; at most {MAX_FILTER_BYTES} bytes are allowed")]
    TooLong { len: usize },
    #[error("filter is not valid JSON: {message}")]
    NotJson { message: String },
    #[error("filter has {count} operators; at most {MAX_FILTER_OPERATORS} are allowed")]
    TooManyOperators { count: usize },
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
    #[error("`{path}`: unknown field `{name}`; the fields of {dataset} are {}", dataset.field_list())]
    UnknownField { path: String, name: String, dataset: Dataset },
    #[error("`{path}`: unknown operator `{name}`; the operators are {}", operator_list())]
    UnknownOperator { path: String, name: String },
    #[error("`{path}`: operator `{operator}` does not apply to `{field}`, a {field_type} field")]
    OperatorNotForField { path: String, operator: Operator, field: Field, field_type: &'static str },
    #[error("`{path}`: `{field}` {expected}")]
    WrongValue { path: String, field: Field, expected: &'static str },
}

fn operator_list() -> String {
    Operator::ALL.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare { field: Field, operator: Operator, operand: Operand },
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Scalar(Scalar),
    List(Vec<Scalar>),
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Str(String),
    Int(i64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
}

impl Filter {
    /// Parses and validates a filter string over the fields of `mcp_portal_logs`.
    pub fn parse(filter: &str) -> Result<Filter, FilterError> {
        Filter::parse_for(Dataset::McpPortalLogs, filter)
    }

    /// Parses and validates a filter string over the fields of `dataset`.
    pub fn parse_for(dataset: Dataset, filter: &str) -> Result<Filter, FilterError> {
        if filter.len() > MAX_FILTER_BYTES {
            return Err(FilterError::TooLong { len: filter.len() });
        }
        let json: Json = serde_json::from_str(filter)
            .map_err(|e| FilterError::NotJson { message: e.to_string() })?;
        let Json::Object(top) = json else {
            return Err(invalid("filter", "must be an object `{\"where\": ...}`"));
        };
        let root = match only_key(&top, "filter", &["where"])? {
            ("where", expr) => parse_expr(dataset, expr, "where".to_owned())?,
            _ => return Err(invalid("filter", "must be an object `{\"where\": ...}`")),
        };
        let operators = root.operators();
        if operators > MAX_FILTER_OPERATORS {
            return Err(FilterError::TooManyOperators { count: operators });
        }
        Ok(Filter { root, operators })
    }

    /// The job's filter from its optional `filter` string: none when absent or empty.
    pub fn parse_optional(
        dataset: Dataset,
        filter: Option<&str>,
    ) -> Result<Option<Filter>, FilterError> {
        match filter {
            None => Ok(None),
            Some(text) if text.trim().is_empty() => Ok(None),
            Some(text) => Filter::parse_for(dataset, text).map(Some),
        }
    }

    /// Whether `record` passes the filter (is delivered).
    pub fn matches(&self, record: &impl Row) -> bool {
        self.root.eval(record)
    }

    /// How many operators the filter holds, counted as [`MAX_FILTER_OPERATORS`] counts them.
    pub fn operator_count(&self) -> usize {
        self.operators
    }
}

fn invalid(path: &str, message: impl Into<String>) -> FilterError {
    FilterError::Invalid { path: path.to_owned(), message: message.into() }
}

/// The single key of `object`, which must be one of `allowed`.
fn only_key<'a>(
    object: &'a Map<String, Json>,
    path: &str,
    allowed: &[&'static str],
) -> Result<(&'static str, &'a Json), FilterError> {
    let expected = allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" or ");
    let mut keys = object.iter();
    match (keys.next(), keys.next()) {
        (Some((key, value)), None) => match allowed.iter().find(|k| **k == key) {
            Some(known) => Ok((known, value)),
            None => Err(invalid(path, format!("unknown key `{key}`; expected {expected}"))),
        },
        (None, _) => Err(invalid(path, format!("must not be empty; expected {expected}"))),
        (Some(_), Some(_)) => Err(invalid(path, format!("must have exactly one key: {expected}"))),
    }
}

fn parse_expr(dataset: Dataset, json: &Json, path: String) -> Result<Expr, FilterError> {
    let Json::Object(object) = json else {
        return Err(invalid(&path, "must be an object: a comparison, `and` or `or`"));
    };
    if object.contains_key("and") || object.contains_key("or") {
        let (key, list) = only_key(object, &path, &["and", "or"])?;
        let path = format!("{path}.{key}");
        let Json::Array(items) = list else {
            return Err(invalid(&path, "must be a list of expressions"));
        };
        if items.is_empty() {
            return Err(invalid(&path, "must not be empty"));
        }
        let exprs = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_expr(dataset, item, format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if key == "and" { Expr::And(exprs) } else { Expr::Or(exprs) });
    }
    parse_comparison(dataset, object, &path)
}

fn parse_comparison(
    dataset: Dataset,
    object: &Map<String, Json>,
    path: &str,
) -> Result<Expr, FilterError> {
    if let Some(key) = object.keys().find(|k| !matches!(k.as_str(), "key" | "operator" | "value")) {
        return Err(invalid(
            path,
            format!("unknown key `{key}`; a comparison has `key`, `operator` and `value`"),
        ));
    }
    let member = |name: &str| {
        object.get(name).ok_or_else(|| {
            invalid(
                path,
                format!("a comparison needs `key`, `operator` and `value`; `{name}` is missing"),
            )
        })
    };
    let key_path = format!("{path}.key");
    let Json::String(name) = member("key")? else {
        return Err(invalid(&key_path, "must be a field name"));
    };
    let field = dataset.field(name).ok_or_else(|| FilterError::UnknownField {
        path: key_path,
        name: name.clone(),
        dataset,
    })?;
    let op_path = format!("{path}.operator");
    let Json::String(op_name) = member("operator")? else {
        return Err(invalid(&op_path, "must be an operator name"));
    };
    let operator = Operator::from_name(op_name).ok_or_else(|| FilterError::UnknownOperator {
        path: op_path.clone(),
        name: op_name.clone(),
    })?;
    if !operator.applies_to(field.field_type()) {
        return Err(FilterError::OperatorNotForField {
            path: op_path,
            operator,
            field,
            field_type: field.field_type().as_str(),
        });
    }
    let value_path = format!("{path}.value");
    let value = member("value")?;
    let operand = match operator.positive().0 {
        Operator::In => {
            let Json::Array(items) = value else {
                return Err(invalid(&value_path, format!("operator `{operator}` takes a list")));
            };
            if items.is_empty() {
                return Err(invalid(&value_path, "must not be an empty list"));
            }
            let scalars = items
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(field, item, &format!("{value_path}[{i}]"), false))
                .collect::<Result<Vec<_>, _>>()?;
            Operand::List(scalars)
        }
        Operator::Eq => Operand::Scalar(scalar(field, value, &value_path, true)?),
        _ => Operand::Scalar(scalar(field, value, &value_path, false)?),
    };
    Ok(Expr::Compare { field, operator, operand })
}

/// A value of `field`'s type (or `null` where `null_allowed`).
fn scalar(
    field: Field,
    json: &Json,
    path: &str,
    null_allowed: bool,
) -> Result<Scalar, FilterError> {
    let wrong = |expected| FilterError::WrongValue { path: path.to_owned(), field, expected };
    if json.is_null() {
        return if null_allowed {
            Ok(Scalar::Null)
        } else {
            Err(invalid(path, "`null` is only allowed with `eq` and `!eq`"))
        };
    }
    match field.field_type() {
        FieldType::String => match json {
            Json::String(s) => Ok(Scalar::Str(s.clone())),
            _ => Err(wrong("is a string field; expected a string")),
        },
        FieldType::Int => json
            .as_i64()
            .map(Scalar::Int)
            .ok_or_else(|| wrong("is an integer field; expected an integer")),
        FieldType::Bool => match json {
            Json::Bool(b) => Ok(Scalar::Bool(*b)),
            _ => Err(wrong("is a boolean field; expected `true` or `false`")),
        },
        // INVARIANT: no operator applies to a JSON field, so parsing stopped before.
        FieldType::Json => Err(wrong("is an object field; filters cannot compare it")),
        FieldType::Timestamp => json
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Scalar::Timestamp(t.with_timezone(&Utc)))
            .ok_or_else(|| {
                wrong("is a timestamp field; expected an RFC 3339 string such as `2026-03-01T00:00:00Z`")
            }),
    }
}

impl Expr {
    fn operators(&self) -> usize {
        match self {
            Expr::And(exprs) | Expr::Or(exprs) => exprs.iter().map(Expr::operators).sum(),
            Expr::Compare { operand: Operand::List(list), .. } => list.len(),
            Expr::Compare { .. } => 1,
        }
    }

    fn eval(&self, record: &impl Row) -> bool {
        match self {
            Expr::And(exprs) => exprs.iter().all(|e| e.eval(record)),
            Expr::Or(exprs) => exprs.iter().any(|e| e.eval(record)),
            Expr::Compare { field, operator, operand } => {
                let (positive, negated) = operator.positive();
                compare(record.value(*field), positive, operand) != negated
            }
        }
    }
}

/// The positive comparison `value <operator> operand`.
fn compare(value: Value<'_>, operator: Operator, operand: &Operand) -> bool {
    match (operator, operand) {
        (Operator::In, Operand::List(list)) => list.iter().any(|s| equals(value, s)),
        (Operator::Eq, Operand::Scalar(s)) => equals(value, s),
        (Operator::Lt | Operator::Leq | Operator::Gt | Operator::Geq, Operand::Scalar(s)) => {
            let ordering = match (value, s) {
                (Value::Int(a), Scalar::Int(b)) => a.cmp(b),
                (Value::Timestamp(a), Scalar::Timestamp(b)) => a.cmp(b),
                _ => return false,
            };
            match operator {
                Operator::Lt => ordering.is_lt(),
                Operator::Leq => ordering.is_le(),
                Operator::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            }
        }
        (Operator::StartsWith, Operand::Scalar(Scalar::Str(s))) => {
            matches!(value, Value::Str(v) if v.starts_with(s.as_str()))
        }
        (Operator::EndsWith, Operand::Scalar(Scalar::Str(s))) => {
            matches!(value, Value::Str(v) if v.ends_with(s.as_str()))
        }
        (Operator::Contains, Operand::Scalar(Scalar::Str(s))) => {
            matches!(value, Value::Str(v) if v.contains(s.as_str()))
        }
        // INVARIANT: parsing pairs each operator with its operand shape and type, so no other
        // combination reaches here.
        _ => false,
    }
}

fn equals(value: Value<'_>, scalar: &Scalar) -> bool {
    match (value, scalar) {
        (Value::Null, Scalar::Null) => true,
        (Value::Str(a), Scalar::Str(b)) => a == b,
        (Value::Int(a), Scalar::Int(b)) => a == *b,
        (Value::Bool(a), Scalar::Bool(b)) => a == *b,
        (Value::Timestamp(a), Scalar::Timestamp(b)) => a == *b,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
