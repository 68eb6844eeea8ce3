//! What a model wrote, made into one async arrow function expression that an engine can call.
//!
//! Models send a bare arrow function, a Markdown block, a module with `export default`, a named
//! function, or statements ending in the value they mean. The code is parsed as an ES module
//! with oxc's parser (any of these may contain strings, comments or template literals that look
//! like the others, so no pattern matching on text):
//!
//! - one arrow function expression (or a parenthesised function expression) passes unchanged;
//! - `export default X` is unwrapped: an anonymous function is wrapped and called, an anonymous
//!   class is returned, an expression is normalised on its own;
//! - one named function declaration becomes `async () => {\n<code>\nreturn name();\n}`;
//! - statements ending in an expression become `async () => {\n<before>return (<expr>)\n}`;
//! - anything else, a parse error included, becomes `async () => {\n<code>\n}` (so a top-level
//!   `return` works, and a syntax error is reported by the engine, with its position).
//!
//! One surrounding Markdown fence is removed first; empty code is `async () => {}`.

use oxc_allocator::Allocator;
use oxc_ast::ast::{ExportDefaultDeclarationKind, Expression, Statement};
use oxc_parser::Parser;
use oxc_span::{GetSpan, SourceType, Span};

/// The largest code accepted, in bytes (a model's function is a few kilobytes).
pub const MAX_CODE_BYTES: usize = 256 * 1024;

/// The normalised code: one async arrow function expression.
pub fn normalize(code: &str) -> String {
    let source = strip_fence(code).trim();
    if source.is_empty() {
        return "async () => {}".to_owned();
    }
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, SourceType::mjs()).parse();
    if !parsed.errors.is_empty() || parsed.panicked {
        return body(source);
    }
    let statements = &parsed.program.body;
    if let [only] = statements.as_slice() {
        match only {
            Statement::ExpressionStatement(statement) if is_function(&statement.expression) => {
                return text(source, statement.expression.span()).to_owned();
            }
            Statement::ExportDefaultDeclaration(export) => {
                return default_export(source, &export.declaration);
            }
            Statement::FunctionDeclaration(function) => {
                if let Some(id) = &function.id {
                    return format!("async () => {{\n{source}\nreturn {}();\n}}", id.name);
                }
            }
            _ => {}
        }
    }
    match statements.last() {
        Some(Statement::ExpressionStatement(last)) => {
            let before = &source[..last.span.start as usize];
            let expression = text(source, last.expression.span());
            format!("async () => {{\n{before}return ({expression})\n}}")
        }
        _ => body(source),
    }
}

fn default_export(source: &str, declaration: &ExportDefaultDeclarationKind<'_>) -> String {
    let inner = text(source, declaration.span());
    match declaration {
        ExportDefaultDeclarationKind::FunctionDeclaration(function) => match &function.id {
            None => format!("async () => {{\nreturn ({inner})();\n}}"),
            Some(id) => format!("async () => {{\n{inner}\nreturn {}();\n}}", id.name),
        },
        ExportDefaultDeclarationKind::ClassDeclaration(class) => match &class.id {
            None => format!("async () => {{\nreturn ({inner});\n}}"),
            Some(id) => format!("async () => {{\n{inner}\nreturn {};\n}}", id.name),
        },
        _ => normalize(inner),
    }
}

/// `async () => {\n<source>\n}`.
fn body(source: &str) -> String {
    format!("async () => {{\n{source}\n}}")
}

/// An arrow function or a function expression, inside any parentheses.
fn is_function(expression: &Expression<'_>) -> bool {
    matches!(
        expression.without_parentheses(),
        Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_)
    )
}

fn text(source: &str, span: Span) -> &str {
    source.get(span.start as usize..span.end as usize).unwrap_or(source)
}

/// The code inside one surrounding Markdown fence (```` ``` ````, optionally tagged js,
/// javascript, ts, typescript, jsx or tsx), or the code as it is.
fn strip_fence(code: &str) -> &str {
    const TAGS: [&str; 7] = ["", "js", "javascript", "ts", "typescript", "jsx", "tsx"];
    let trimmed = code.trim();
    let Some(rest) = trimmed.strip_prefix("```") else { return code };
    let Some(inner) = rest.strip_suffix("```") else { return code };
    let (tag, body) = inner.split_once('\n').unwrap_or((inner, ""));
    if TAGS.contains(&tag.trim().to_ascii_lowercase().as_str()) { body } else { code }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn an_arrow_function_passes_unchanged() {
        assert_eq!(normalize("async () => 1 + 1"), "async () => 1 + 1");
        assert_eq!(normalize("  async () => { return 2; };  "), "async () => { return 2; }");
        assert_eq!(
            normalize("(async function () { return 3 })"),
            "(async function () { return 3 })"
        );
    }

    #[test]
    fn one_fence_is_removed() {
        assert_eq!(normalize("```js\nasync () => 1\n```"), "async () => 1");
        assert_eq!(normalize("```\nasync () => 1\n```"), "async () => 1");
        assert_eq!(normalize("```typescript\nasync () => 1\n```"), "async () => 1");
        // An unknown tag is not a fence of code: it stays (and happens to parse as template
        // literals, so it is the returned expression; the engine reports the error).
        assert_eq!(normalize("```python\n1\n```"), "async () => {\nreturn (```python\n1\n```)\n}");
    }

    #[test]
    fn empty_code_is_an_empty_function() {
        assert_eq!(normalize(""), "async () => {}");
        assert_eq!(normalize("```js\n```"), "async () => {}");
    }

    #[test]
    fn default_exports_are_unwrapped() {
        assert_eq!(normalize("export default async () => 5"), "async () => 5");
        assert_eq!(
            normalize("export default async function () { return 6 }"),
            "async () => {\nreturn (async function () { return 6 })();\n}"
        );
        assert_eq!(
            normalize("export default class { x = 1 }"),
            "async () => {\nreturn (class { x = 1 });\n}"
        );
        assert_eq!(
            normalize("export default async function main() { return 7 }"),
            "async () => {\nasync function main() { return 7 }\nreturn main();\n}"
        );
    }

    #[test]
    fn a_named_function_is_called() {
        assert_eq!(
            normalize("async function main() {\n  return 8;\n}"),
            "async () => {\nasync function main() {\n  return 8;\n}\nreturn main();\n}"
        );
    }

    #[test]
    fn the_last_expression_is_returned() {
        assert_eq!(
            normalize("const a = await codemode.x({});\na.value * 2;"),
            "async () => {\nconst a = await codemode.x({});\nreturn (a.value * 2)\n}"
        );
        assert_eq!(normalize("1 + 1"), "async () => {\nreturn (1 + 1)\n}");
    }

    #[test]
    fn statements_and_parse_errors_become_a_body() {
        // A top-level `return` does not parse as a module: the code becomes the body.
        assert_eq!(normalize("return 1 + 1"), "async () => {\nreturn 1 + 1\n}");
        assert_eq!(normalize("let x = 1;"), "async () => {\nlet x = 1;\n}");
        assert_eq!(normalize("const = ;"), "async () => {\nconst = ;\n}");
    }

    #[test]
    fn text_that_looks_like_a_fence_inside_a_string_is_left_alone() {
        let code = "async () => \"```js\"";
        assert_eq!(normalize(code), code);
    }
}
