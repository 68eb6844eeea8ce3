//! TypeScript declarations of the tools, generated from their JSON Schemas: what the `code`
//! tool's description shows a model so that it knows what `codemode.<name>(input)` takes.
//!
//! The output is code mode's (spec §3.1) wherever the spec is explicit. Where it is silent, the
//! choice is the one that keeps the output valid TypeScript, and the function that makes it
//! says so. MCP gives no output schema, so every tool's output type is `unknown`.
//!
//! Properties come out in the order of [`serde_json::Map`]: the order of the schema when
//! serde_json's `preserve_order` feature is on in the build, alphabetical when it is not.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// One tool as code mode declares it.
#[derive(Debug, Clone)]
pub struct ToolDeclaration<'a> {
    /// The tool's name upstream; [`sanitize_tool_name`] turns it into the sandbox identifier.
    pub name: &'a str,
    /// The tool's description, shown in its JSDoc; the name stands in when there is none.
    pub description: Option<&'a str>,
    /// The tool's `inputSchema`.
    pub input_schema: &'a Value,
}

/// Two tools whose names sanitise to the same identifier: the sandbox could call only one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tools `{first}` and `{second}` both become `codemode.{identifier}` in code mode")]
pub struct NameClash {
    /// The tool that came first in the list.
    pub first: String,
    /// The later tool with the same identifier.
    pub second: String,
    /// The identifier both names sanitise to.
    pub identifier: String,
}

/// How deep [`schema_type`] follows nested schemas (properties, items, members, `$ref`s)
/// before it answers `unknown`. The root schema is at depth 0.
const MAX_DEPTH: usize = 20;

/// The most TypeScript one schema's conversion may produce, in bytes, counting a nested type
/// once for itself and once more for each type that encloses it.
///
/// The depth limit and the cycle check bound the recursion, but not the output: `$ref`s can
/// share a definition without a cycle, so ten definitions, each an `anyOf` naming the next one
/// four times, expand to 4^10 copies well within the depth limit. No reasonable tool comes near
/// this budget (a thousand described properties spend about 40 KiB of it); a schema that goes
/// over it is a conversion failure, and its tool's types become `unknown`.
const WORK_BUDGET: usize = 1 << 20;

/// The ES reserved words and the future and strict-mode reserved words, sorted (it is searched
/// by bisection): a tool named after one gets a `_` suffix.
const RESERVED_WORDS: [&str; 64] = [
    "abstract",
    "arguments",
    "await",
    "boolean",
    "break",
    "byte",
    "case",
    "catch",
    "char",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "double",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "final",
    "finally",
    "float",
    "for",
    "function",
    "goto",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "int",
    "interface",
    "let",
    "long",
    "native",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "short",
    "static",
    "super",
    "switch",
    "synchronized",
    "this",
    "throw",
    "throws",
    "transient",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "volatile",
    "while",
    "with",
    "yield",
];

/// `sanitizeToolName`: the identifier a tool has inside the sandbox (`codemode.<safe>`).
///
/// `-`, `.` and whitespace become `_`; characters outside `[A-Za-z0-9_$]` are dropped; an empty
/// result becomes `_`; a leading digit gets a `_` prefix; a reserved word gets a `_` suffix.
pub fn sanitize_tool_name(name: &str) -> String {
    let mut safe: String = name
        .chars()
        .filter_map(|c| {
            // JavaScript's `\s` also matches the byte order mark, which Unicode does not call
            // whitespace.
            if c == '-' || c == '.' || c.is_whitespace() || c == '\u{feff}' {
                Some('_')
            } else if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    if safe.is_empty() {
        safe.push('_');
    }
    if safe.starts_with(|c: char| c.is_ascii_digit()) {
        safe.insert(0, '_');
    }
    if RESERVED_WORDS.binary_search(&safe.as_str()).is_ok() {
        safe.push('_');
    }
    safe
}

/// The PascalCase type name stem of a sanitised name: `_` and the ASCII letter after it become
/// that letter upper-cased, and a leading lower-case letter is upper-cased (`list_issues` gives
/// `ListIssues`). An `_` before anything but a letter stays (`_3d_model` gives `_3dModel`).
pub fn pascal_case(safe: &str) -> String {
    let mut stem = String::with_capacity(safe.len());
    let mut chars = safe.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '_' => chars
                .next_if(char::is_ascii_alphabetic)
                .map_or('_', |letter| letter.to_ascii_uppercase()),
            c if stem.is_empty() => c.to_ascii_uppercase(),
            c => c,
        };
        stem.push(c);
    }
    stem
}

/// The TypeScript of one schema (the `conv` function of the spec), at depth 0 with the schema
/// as the `#` root. A schema over the conversion budget gives `unknown`.
pub fn schema_type(schema: &Value) -> String {
    match Converter::new(schema).convert(schema, "", 0) {
        Ok(ts) => ts.text,
        Err(OverBudget) => Ts::unknown().text,
    }
}

/// All `type` lines (`{Type}Input` and `{Type}Output` of each tool, in order), a blank line,
/// then `declare const codemode: { ... }` with each tool's JSDoc and member.
///
/// Two tools whose names sanitise to the same identifier are an error. Two identifiers whose
/// type stems coincide (`getUser` and `get_user` both give `GetUser`) are not, since each tool
/// still has its own member: the later one's stem gets the first free `_2`, `_3`, ... suffix,
/// so no type is declared twice.
pub fn declarations(tools: &[ToolDeclaration<'_>]) -> Result<String, NameClash> {
    let mut owners: HashMap<String, &str> = HashMap::with_capacity(tools.len());
    let mut identifiers = Vec::with_capacity(tools.len());
    for tool in tools {
        let identifier = sanitize_tool_name(tool.name);
        if let Some(first) = owners.get(&identifier) {
            return Err(NameClash {
                first: (*first).to_owned(),
                second: tool.name.to_owned(),
                identifier,
            });
        }
        owners.insert(identifier.clone(), tool.name);
        identifiers.push(identifier);
    }
    let stems = type_stems(&identifiers);

    let mut types = Vec::with_capacity(2 * tools.len());
    let mut members = String::new();
    for ((tool, identifier), stem) in tools.iter().zip(&identifiers).zip(&stems) {
        types.push(format!("type {stem}Input = {}", schema_type(tool.input_schema)));
        types.push(format!("type {stem}Output = unknown"));
        members.push_str("\n\t/**\n");
        for line in tool_doc(tool, identifier) {
            members.push_str("\t * ");
            members.push_str(&line);
            members.push('\n');
        }
        members.push_str("\t */\n");
        members
            .push_str(&format!("\t{identifier}: (input: {stem}Input) => Promise<{stem}Output>;\n"));
    }
    let block = format!("declare const codemode: {{{members}}}");
    if types.is_empty() { Ok(block) } else { Ok(format!("{}\n\n{block}", types.join("\n"))) }
}

/// The `Example: async () => { ... }` line of the `code` tool's description, built from the
/// first tool (with no tools, the description has no example line).
///
/// Each top-level property of the input schema is one argument: `0` for `number` and `integer`,
/// `true` for `boolean`, `"..."` for anything else; no properties give `{}`. A property name
/// that is not an identifier is quoted, so the example stays valid JavaScript.
pub fn example(tool: &ToolDeclaration<'_>) -> String {
    let properties = tool.input_schema.get("properties").and_then(Value::as_object);
    let arguments: Vec<String> = properties
        .into_iter()
        .flatten()
        .map(|(name, property)| {
            let value = match property.get("type").and_then(Value::as_str) {
                Some("number" | "integer") => "0",
                Some("boolean") => "true",
                _ => "\"...\"",
            };
            format!("{}: {value}", property_key(name))
        })
        .collect();
    let input = if arguments.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", arguments.join(", "))
    };
    format!(
        "Example: async () => {{ const r = await codemode.{}({input}); return r; }}",
        sanitize_tool_name(tool.name)
    )
}

/// One type stem per identifier, in order: its PascalCase, or, when an earlier identifier
/// already has that stem, the stem with the first `_<n>` suffix (from 2) that no identifier's
/// stem and no earlier suffix uses.
fn type_stems(identifiers: &[String]) -> Vec<String> {
    let natural: Vec<String> = identifiers.iter().map(|id| pascal_case(id)).collect();
    let mut taken: HashSet<String> = natural.iter().cloned().collect();
    let mut seen = HashSet::with_capacity(natural.len());
    natural
        .into_iter()
        .map(|stem| {
            if seen.insert(stem.clone()) {
                return stem;
            }
            let mut n = 2_usize;
            loop {
                let candidate = format!("{stem}_{n}");
                if taken.insert(candidate.clone()) {
                    return candidate;
                }
                n += 1;
            }
        })
        .collect()
}

/// The lines of a tool's JSDoc: its description (or, without one, its name), then one
/// `@param input.<prop> - <description>` line per described top-level property.
fn tool_doc(tool: &ToolDeclaration<'_>, identifier: &str) -> Vec<String> {
    let summary = tool
        .description
        .and_then(jsdoc_text)
        .or_else(|| jsdoc_text(tool.name))
        .unwrap_or_else(|| identifier.to_owned());
    let mut lines = vec![summary];
    let properties = tool.input_schema.get("properties").and_then(Value::as_object);
    for (name, property) in properties.into_iter().flatten() {
        let described = property.get("description").and_then(Value::as_str).and_then(jsdoc_text);
        if let Some(line) =
            described.and_then(|text| jsdoc_text(&format!("@param input.{name} - {text}")))
        {
            lines.push(line);
        }
    }
    lines
}

/// Text made safe for one JSDoc line: line breaks become spaces, the ends are trimmed and `*/`
/// becomes `*\/`, so nothing in a schema can end the comment. Blank text gives `None`.
fn jsdoc_text(text: &str) -> Option<String> {
    let one_line = text.replace("\r\n", " ").replace(['\n', '\r'], " ");
    let trimmed = one_line.trim();
    if trimmed.is_empty() { None } else { Some(trimmed.replace("*/", "*\\/")) }
}

/// A property name as TypeScript writes it: bare when it is an identifier, otherwise a
/// double-quoted, JSON-escaped string.
fn property_key(name: &str) -> String {
    if is_identifier(name) { name.to_owned() } else { Value::from(name).to_string() }
}

/// Whether `name` matches `[A-Za-z_$][A-Za-z0-9_$]*`. Reserved words are fine as property
/// names; identifiers beyond ASCII are quoted, which is always valid.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// JavaScript's truthiness of a JSON value, which decides whether `additionalProperties` adds
/// an index signature.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A schema that went over [`WORK_BUDGET`]: its conversion failed.
#[derive(Debug)]
struct OverBudget;

/// How a TypeScript type binds, so that a union or an intersection is parenthesised where `[]`
/// (or, for a union, `&`) would otherwise apply to its last member only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Single,
    Intersection,
    Union,
}

/// A converted type: its text and how it binds.
#[derive(Debug)]
struct Ts {
    text: String,
    form: Form,
}

impl Ts {
    fn single(text: impl Into<String>) -> Self {
        Self { text: text.into(), form: Form::Single }
    }

    fn unknown() -> Self {
        Self::single("unknown")
    }

    fn never() -> Self {
        Self::single("never")
    }

    /// The members joined with ` | `. A union of no members is `never`: nothing validates
    /// against an empty `anyOf`.
    fn union(members: Vec<Ts>) -> Self {
        Self::join(members, " | ", Form::Union, Self::never)
    }

    /// The members joined with ` & `, unions among them parenthesised. An intersection of no
    /// members is `unknown`: everything validates against an empty `allOf`.
    fn intersection(members: Vec<Ts>) -> Self {
        let members = members
            .into_iter()
            .map(|member| match member.form {
                Form::Union => Ts::single(format!("({})", member.text)),
                Form::Single | Form::Intersection => member,
            })
            .collect();
        Self::join(members, " & ", Form::Intersection, Self::unknown)
    }

    fn join(mut members: Vec<Ts>, separator: &str, form: Form, empty: fn() -> Ts) -> Self {
        match members.len() {
            0 => empty(),
            1 => members.remove(0),
            _ => Self {
                text: members
                    .iter()
                    .map(|member| member.text.as_str())
                    .collect::<Vec<_>>()
                    .join(separator),
                form,
            },
        }
    }

    /// `T[]`, with `T` parenthesised when it is a union or an intersection.
    fn array_of(self) -> Self {
        match self.form {
            Form::Single => Self::single(format!("{}[]", self.text)),
            Form::Intersection | Form::Union => Self::single(format!("({})[]", self.text)),
        }
    }

    /// OpenAPI's `nullable: true` appends ` | null`, except to `unknown` and `never`.
    fn nullable(self, schema: &Map<String, Value>) -> Self {
        let nullable = schema.get("nullable") == Some(&Value::Bool(true));
        if nullable && self.text != "unknown" && self.text != "never" {
            Self { text: format!("{} | null", self.text), form: Form::Union }
        } else {
            self
        }
    }
}

/// The state of one schema's conversion: the `#` root that `$ref`s resolve against, the
/// schemas being converted (a schema met again inside itself is a cycle) and the budget spent.
struct Converter<'s> {
    root: &'s Value,
    // INVARIANT: `path` holds the schemas from the root to the one being converted, compared by
    // address: every one of them lives in `root`, which outlives the conversion.
    path: Vec<&'s Value>,
    spent: usize,
}

impl<'s> Converter<'s> {
    fn new(root: &'s Value) -> Self {
        Self { root, path: Vec::new(), spent: 0 }
    }

    /// `conv(schema)`: object properties are written at `indent` plus four spaces.
    fn convert(&mut self, schema: &'s Value, indent: &str, depth: usize) -> Result<Ts, OverBudget> {
        let ts = match schema {
            Value::Bool(true) => Ts::unknown(),
            Value::Bool(false) => Ts::never(),
            Value::Object(object) => {
                let cycle = self.path.iter().any(|seen| std::ptr::eq(*seen, schema));
                if depth >= MAX_DEPTH || cycle {
                    Ts::unknown()
                } else {
                    self.path.push(schema);
                    let ts = self.convert_object(object, indent, depth + 1);
                    self.path.pop();
                    ts?
                }
            }
            // Not a schema at all (a number, a string, null): it says nothing about the value.
            Value::Null | Value::Number(_) | Value::String(_) | Value::Array(_) => Ts::unknown(),
        };
        self.spent = self.spent.saturating_add(ts.text.len());
        if self.spent > WORK_BUDGET {
            return Err(OverBudget);
        }
        Ok(ts)
    }

    /// The rules of `conv` for a schema object, first match wins; `next` is the depth of the
    /// schemas inside it.
    fn convert_object(
        &mut self,
        schema: &'s Map<String, Value>,
        indent: &str,
        next: usize,
    ) -> Result<Ts, OverBudget> {
        if let Some(reference) = schema.get("$ref").filter(|r| truthy(r)) {
            let Some(target) = reference.as_str().and_then(|r| self.resolve(r)) else {
                return Ok(Ts::unknown());
            };
            return Ok(self.convert(target, indent, next)?.nullable(schema));
        }
        if let Some(members) = schema.get("anyOf").and_then(Value::as_array) {
            return Ok(Ts::union(self.convert_all(members, indent, next)?).nullable(schema));
        }
        if let Some(members) = schema.get("oneOf").and_then(Value::as_array) {
            return Ok(Ts::union(self.convert_all(members, indent, next)?).nullable(schema));
        }
        if let Some(members) = schema.get("allOf").and_then(Value::as_array) {
            return Ok(Ts::intersection(self.convert_all(members, indent, next)?).nullable(schema));
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let literals = values.iter().map(|value| Ts::single(literal(value)));
            return Ok(Ts::union(literals.collect()).nullable(schema));
        }
        if let Some(value) = schema.get("const") {
            return Ok(Ts::single(literal(value)).nullable(schema));
        }
        let ty = schema.get("type");
        match ty.and_then(Value::as_str) {
            Some("string") => return Ok(Ts::single("string").nullable(schema)),
            Some("number" | "integer") => return Ok(Ts::single("number").nullable(schema)),
            Some("boolean") => return Ok(Ts::single("boolean").nullable(schema)),
            // Already `null`: `nullable` has nothing to add.
            Some("null") => return Ok(Ts::single("null")),
            Some("array") => return self.convert_array(schema, indent, next),
            _ => {}
        }
        let has_properties = schema.get("properties").is_some_and(Value::is_object);
        if ty.and_then(Value::as_str) == Some("object") || has_properties {
            return self.convert_properties(schema, indent, next);
        }
        if let Some(types) = ty.and_then(Value::as_array) {
            let members = types.iter().map(|t| {
                Ts::single(match t.as_str() {
                    Some("string") => "string",
                    Some("number" | "integer") => "number",
                    Some("boolean") => "boolean",
                    Some("null") => "null",
                    Some("array") => "unknown[]",
                    Some("object") => "Record<string, unknown>",
                    _ => "unknown",
                })
            });
            return Ok(Ts::union(members.collect()).nullable(schema));
        }
        Ok(Ts::unknown())
    }

    fn convert_all(
        &mut self,
        schemas: &'s [Value],
        indent: &str,
        depth: usize,
    ) -> Result<Vec<Ts>, OverBudget> {
        schemas.iter().map(|schema| self.convert(schema, indent, depth)).collect()
    }

    /// A tuple from `prefixItems` or an array-valued `items`, else `T[]` of `items` (which,
    /// when `items` is `false`, is `never[]`: only the empty array), else `unknown[]`.
    fn convert_array(
        &mut self,
        schema: &'s Map<String, Value>,
        indent: &str,
        next: usize,
    ) -> Result<Ts, OverBudget> {
        let tuple = schema
            .get("prefixItems")
            .and_then(Value::as_array)
            .or_else(|| schema.get("items").and_then(Value::as_array));
        let ts = if let Some(items) = tuple {
            let members = self.convert_all(items, indent, next)?;
            let texts: Vec<&str> = members.iter().map(|m| m.text.as_str()).collect();
            Ts::single(format!("[{}]", texts.join(", ")))
        } else if let Some(items) = schema.get("items") {
            self.convert(items, indent, next)?.array_of()
        } else {
            Ts::single("unknown[]")
        };
        Ok(ts.nullable(schema))
    }

    /// An object type: one line per property (`?` unless required, a JSDoc before it when it has
    /// a description or a format), then an index signature for a truthy `additionalProperties`.
    /// With no lines it is `{}` when `additionalProperties` is `false`, else
    /// `Record<string, unknown>`.
    fn convert_properties(
        &mut self,
        schema: &'s Map<String, Value>,
        indent: &str,
        next: usize,
    ) -> Result<Ts, OverBudget> {
        let inner = format!("{indent}    ");
        let required: HashSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut lines = Vec::new();
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, property) in properties.into_iter().flatten() {
            let ts = self.convert(property, &inner, next)?;
            push_property_doc(&mut lines, &inner, property);
            let optional = if required.contains(name.as_str()) { "" } else { "?" };
            lines.push(format!("{inner}{}{optional}: {};", property_key(name), ts.text));
        }
        let additional = schema.get("additionalProperties");
        if let Some(additional) = additional.filter(|a| truthy(a)) {
            let value = if *additional == Value::Bool(true) {
                Ts::unknown()
            } else {
                self.convert(additional, &inner, next)?
            };
            lines.push(format!("{inner}[key: string]: {};", value.text));
        }
        let text = if !lines.is_empty() {
            format!("{{\n{}\n{indent}}}", lines.join("\n"))
        } else if additional == Some(&Value::Bool(false)) {
            "{}".to_owned()
        } else {
            "Record<string, unknown>".to_owned()
        };
        Ok(Ts::single(text).nullable(schema))
    }

    /// The schema a `$ref` names: `#` is the root, `#/a/b` a JSON Pointer into it (`~1` is `/`,
    /// `~0` is `~`, array elements by index). Anything else, external documents included, is
    /// unresolved.
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        reference.strip_prefix('#').and_then(|pointer| self.root.pointer(pointer))
    }
}

/// The JSDoc before a property: `/** text */` for a description or a format alone, a block of
/// two ` * ` lines for both.
fn push_property_doc(lines: &mut Vec<String>, indent: &str, property: &Value) {
    let text = |key: &str| property.get(key).and_then(Value::as_str).and_then(jsdoc_text);
    let description = text("description");
    let format = text("format").map(|format| format!("@format {format}"));
    match (description, format) {
        (Some(description), Some(format)) => {
            lines.push(format!("{indent}/**"));
            lines.push(format!("{indent} * {description}"));
            lines.push(format!("{indent} * {format}"));
            lines.push(format!("{indent} */"));
        }
        (Some(text), None) | (None, Some(text)) => lines.push(format!("{indent}/** {text} */")),
        (None, None) => {}
    }
}

/// An `enum` or `const` value as a TypeScript literal type: strings double-quoted and escaped,
/// `null`, numbers and booleans as written, arrays and objects as compact JSON.
fn literal(value: &Value) -> String {
    value.to_string()
}
