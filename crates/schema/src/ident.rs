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
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL DDL (defaults and checks; never for request values).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
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
    }
}
