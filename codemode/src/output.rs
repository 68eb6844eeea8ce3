//! What an execution's result becomes for the MCP client: text, bounded as the product bounds it.

use serde_json::Value;

/// The longest text an execution returns: 6,000 tokens at about 4 characters each.
pub const MAX_RESULT_CHARS: usize = 24_000;

/// The text of a result: a string as it is, anything else as JSON with a 2-space indent,
/// truncated by [`truncate`].
pub fn result_text(result: &Value) -> String {
    let text = match result {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    };
    truncate(&text)
}

/// Keeps the first [`MAX_RESULT_CHARS`] characters of a longer text, followed by the product's
/// notice with the text's estimated size in tokens.
pub fn truncate(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= MAX_RESULT_CHARS {
        return text.to_owned();
    }
    let kept: String = text.chars().take(MAX_RESULT_CHARS).collect();
    let tokens = chars.div_ceil(4);
    format!(
        "{kept}\n\n--- TRUNCATED ---\nResponse was ~{} tokens (limit: 6,000). Use more specific queries to reduce response size.",
        thousands(tokens)
    )
}

/// `12,345`: what JavaScript's `toLocaleString()` gives in English.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_stay_and_values_are_pretty_json() {
        assert_eq!(result_text(&json!("plain")), "plain");
        assert_eq!(result_text(&json!({"a": [1]})), "{\n  \"a\": [\n    1\n  ]\n}");
        assert_eq!(result_text(&json!(null)), "null");
    }

    #[test]
    fn long_text_is_cut_with_the_notice() {
        let text = "é".repeat(MAX_RESULT_CHARS + 1_001);
        let cut = truncate(&text);
        let (kept, notice) = cut.split_at(cut.find("\n\n--- TRUNCATED ---").unwrap_or(0));
        assert_eq!(kept.chars().count(), MAX_RESULT_CHARS);
        assert_eq!(
            notice,
            "\n\n--- TRUNCATED ---\nResponse was ~6,251 tokens (limit: 6,000). Use more specific queries to reduce response size."
        );
        let exact = "x".repeat(MAX_RESULT_CHARS);
        assert_eq!(truncate(&exact), exact);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
