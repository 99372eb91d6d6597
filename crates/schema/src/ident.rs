//! Identifier rules: every name that reaches SQL is checked here once and quoted by one function.

/// True for names Basalt accepts for tables, columns, constraints and indexes:
/// lowercase snake_case, at most 63 bytes (PostgreSQL's limit).
pub fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// Quotes an identifier for SQL (both dialects use double quotes).
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_wrapped(&mut out, name, '"');
    out
}

/// Quotes a string literal for SQL DDL (defaults and checks; never for request values).
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_wrapped(&mut out, value, '\'');
    out
}

/// Appends `name` quoted as an identifier: renderers build SQL in one buffer, and rendering runs
/// for every request.
pub fn push_quoted(out: &mut String, name: &str) {
    push_wrapped(out, name, '"');
}

/// Appends `value` as a string literal (names as JSON keys; never request values).
pub fn push_literal(out: &mut String, value: &str) {
    push_wrapped(out, value, '\'');
}

fn push_wrapped(out: &mut String, text: &str, quote: char) {
    out.push(quote);
    for (i, part) in text.split(quote).enumerate() {
        if i > 0 {
            out.push(quote);
            out.push(quote);
        }
        out.push_str(part);
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_snake_case_only() {
        assert!(is_valid("user_api_keys"));
        assert!(is_valid("_x1"));
        assert!(!is_valid("1x"));
        assert!(!is_valid("Users"));
        assert!(!is_valid("a-b"));
        assert!(!is_valid(""));
        assert!(!is_valid(&"a".repeat(64)));
    }

    #[test]
    fn quotes() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(quote("plain"), "\"plain\"");
        let mut s = String::from("x.");
        push_quoted(&mut s, "\"a\"");
        push_literal(&mut s, "'");
        assert_eq!(s, "x.\"\"\"a\"\"\"''''");
    }
}
