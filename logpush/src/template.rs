//! `record_template`: the subset of Go's `text/template` that Logpush accepts.
//!
//! A template is text with actions between `{{` and `}}`. An action is one of:
//! - `{{ .Field }}`: the field's value, written as the output type writes values (a quoted
//!   string, a number, `true`, `null`); a field missing from `field_names` is written `null`;
//! - `{{ "text" }}` (Go escapes: `\n`, `\t`, `\"`, `\\`, `\xHH`, `\uHHHH`, ...) or
//!   `` {{ `text` }} ``: the constant text, written as is (this is how a literal `{{` is written);
//! - `{{/* comment */}}`: nothing.
//!
//! No functions, pipelines, conditionals or loops: anything else is refused by name.

use std::fmt;

use crate::dataset::{Dataset, Field};

/// A parsed record template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Constant text, written as is.
    Text(String),
    /// A field's value.
    Field(Field),
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct TemplateError {
    /// The byte offset of the problem in the template.
    pub offset: usize,
    pub message: String,
}

impl Template {
    /// Parses a template over the fields of `mcp_portal_logs`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_for(Dataset::McpPortalLogs, text)
    }

    /// Parses a template over the fields of `dataset`.
    pub fn parse_for(dataset: Dataset, text: &str) -> Result<Template, TemplateError> {
        let mut parts: Vec<Part> = Vec::new();
        let push_text = |parts: &mut Vec<Part>, s: &str| {
            if s.is_empty() {
                return;
            }
            match parts.last_mut() {
                Some(Part::Text(t)) => t.push_str(s),
                _ => parts.push(Part::Text(s.to_owned())),
            }
        };
        let mut rest = 0;
        while let Some(found) = text[rest..].find("{{") {
            let open = rest + found;
            push_text(&mut parts, &text[rest..open]);
            let (part, end) = parse_action(dataset, text, open)?;
            match part {
                Some(Part::Text(s)) => push_text(&mut parts, &s),
                Some(field) => parts.push(field),
                None => {}
            }
            rest = end;
        }
        push_text(&mut parts, &text[rest..]);
        Ok(Template { parts })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
}

fn error(offset: usize, message: impl Into<String>) -> TemplateError {
    TemplateError { offset, message: message.into() }
}

/// The action that starts at `open` (at `{{`), and the offset just past its `}}`.
fn parse_action(
    dataset: Dataset,
    text: &str,
    open: usize,
) -> Result<(Option<Part>, usize), TemplateError> {
    let start = open + 2;
    let body = &text[start..];
    if let Some(comment) = body.strip_prefix("/*") {
        let end = comment.find("*/}}").ok_or_else(|| error(open, "unclosed comment"))?;
        return Ok((None, start + 2 + end + 4));
    }
    let skipped = body.len() - body.trim_start().len();
    let mut at = start + skipped;
    let inner = &text[at..];
    let part = if let Some(name) = inner.strip_prefix('.') {
        let len =
            name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
        let name = &name[..len];
        let field = dataset.field(name).ok_or_else(|| {
            error(at, format!("unknown field `{name}` of {dataset} in `{{{{ .{name} }}}}`"))
        })?;
        at += 1 + len;
        Part::Field(field)
    } else if inner.starts_with('"') {
        let (value, len) = interpreted_string(inner).map_err(|(o, m)| error(at + o, m))?;
        at += len;
        Part::Text(value)
    } else if let Some(raw) = inner.strip_prefix('`') {
        let len = raw.find('`').ok_or_else(|| error(at, "unclosed raw string"))?;
        let value = raw[..len].to_owned();
        at += len + 2;
        Part::Text(value)
    } else {
        let action = inner.find("}}").map_or(inner, |end| &inner[..end]);
        let shown: String = action.trim_end().chars().take(40).collect();
        return Err(error(
            at,
            format!(
                "unsupported action `{{{{ {shown} }}}}`: a record template holds only \
                 `{{{{ .Field }}}}`, `{{{{ \"text\" }}}}` and `{{{{/* comments */}}}}`"
            ),
        ));
    };
    let after = &text[at..];
    let trimmed = after.trim_start();
    if !trimmed.starts_with("}}") {
        let offset = at + (after.len() - trimmed.len());
        return Err(if trimmed.is_empty() {
            error(open, "unclosed action: `{{` without `}}`")
        } else {
            error(offset, "expected `}}` after the action")
        });
    }
    Ok((Some(part), at + (after.len() - trimmed.len()) + 2))
}

/// A Go interpreted string literal at the start of `s` (which starts with `"`): its value and
/// its length in bytes. Errors carry an offset into `s`.
fn interpreted_string(s: &str) -> Result<(String, usize), (usize, String)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\n' => return Err((i, "newline in string".into())),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let simple = match e {
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    continue;
                }
                let (digits, radix) = match e {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    '0'..='7' => (2, 8),
                    _ => return Err((i, format!("unknown escape `\\{e}` in string"))),
                };
                let mut code = if radix == 8 { e.to_digit(8).unwrap_or(0) } else { 0 };
                for _ in 0..digits {
                    let digit = chars.next().and_then(|(_, d)| d.to_digit(radix));
                    let Some(digit) = digit else {
                        return Err((i, format!("malformed escape `\\{e}` in string")));
                    };
                    code = code * radix + digit;
                }
                // `\x` and octal escapes are bytes in Go; only ASCII ones make valid UTF-8 here.
                if matches!(e, 'x' | '0'..='7') && code > 0x7f {
                    return Err((i, "byte escapes above `\\x7f` are not allowed".into()));
                }
                out.push(
                    char::from_u32(code).ok_or_else(|| (i, "escape is not a character".into()))?,
                );
            }
            c => out.push(c),
        }
    }
    Err((0, "unclosed string".into()))
}

impl fmt::Display for Template {
    /// The template in a canonical form that parses back to the same template.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) if text.contains("{{") => {
                    write!(f, "{{{{ {} }}}}", serde_json::Value::String(text.clone()))?
                }
                Part::Text(text) => f.write_str(text)?,
                Part::Field(field) => write!(f, "{{{{ .{field} }}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Vec<Part> {
        Template::parse(text).unwrap().parts().to_vec()
    }

    fn text(s: &str) -> Part {
        Part::Text(s.to_owned())
    }

    #[test]
    fn fields_text_constants_and_comments() {
        assert_eq!(
            parts(r#""client-ip":{{.ClientIP}},"ok":{{ .Success }}{{/* dropped */}}!"#),
            vec![
                text("\"client-ip\":"),
                Part::Field(Field::ClientIp),
                text(",\"ok\":"),
                Part::Field(Field::Success),
                text("!"),
            ]
        );
        assert_eq!(parts(r#"a{{ "b\t\"c\"" }}d"#), vec![text("ab\t\"c\"d")]);
        assert_eq!(parts("{{`{{literal}}`}}"), vec![text("{{literal}}")]);
        assert_eq!(parts(r#"{{ "}}" }}"#), vec![text("}}")]);
        assert_eq!(parts(r#"{{"\x41\u00e9\U0001F600\101"}}"#), vec![text("Aé😀A")]);
        assert_eq!(parts(""), vec![]);
        assert_eq!(parts("no actions }} here"), vec![text("no actions }} here")]);
    }

    #[test]
    fn unsupported_actions_are_refused_by_name() {
        for (template, expected) in [
            ("{{ if .Success }}x{{ end }}", "unsupported action `{{ if .Success }}`: a record"),
            (
                "{{ .RayID }}",
                "unknown field `RayID` of mcp_portal_logs in `{{ .RayID }}` at byte 3",
            ),
            ("{{ .ClientIP | printf }}", "expected `}}` after the action at byte 13"),
            ("{{ .ClientIP ", "unclosed action: `{{` without `}}` at byte 0"),
            ("{{/* no end }}", "unclosed comment at byte 0"),
            (r#"{{ "abc }}"#, "unclosed string at byte 3"),
            (r#"{{ "\q" }}"#, "unknown escape `\\q` in string at byte 4"),
            (r#"{{ "\xff" }}"#, "byte escapes above `\\x7f` are not allowed at byte 4"),
            ("{{ `abc }}", "unclosed raw string at byte 3"),
            ("{{ print 1 }}", "unsupported action `{{ print 1 }}`:"),
        ] {
            let message = Template::parse(template).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{template}: {message}");
        }
    }

    #[test]
    fn display_parses_back_to_the_same_template() {
        let template = Template::parse(r#"x{{.UserID}}{{ "{{y}}" }}z"#).unwrap();
        assert_eq!(Template::parse(&template.to_string()).unwrap(), template);
    }
}
