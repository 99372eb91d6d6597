//! PostgREST's `jwt-role-claim-key`: a small JSON path (`.role`, `."https://x.com/role"`,
//! `.app_metadata.roles[0]`) naming where the role sits in the token's claims.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<Step>);

impl ClaimPath {
    pub fn parse(s: &str) -> Result<ClaimPath, String> {
        let mut steps = Vec::new();
        let mut chars = s.trim().chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '.' if chars.peek() == Some(&'"') => {
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => key.push(chars.next().ok_or("unterminated escape")?),
                            Some(c) => key.push(c),
                            None => return Err("unterminated quoted key".into()),
                        }
                    }
                    steps.push(Step::Key(key));
                }
                '.' => {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    if key.is_empty() {
                        return Err("empty key".into());
                    }
                    steps.push(Step::Key(key));
                }
                '[' => {
                    let mut n = String::new();
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(c) if c.is_ascii_digit() => n.push(c),
                            _ => return Err("an index must be [digits]".into()),
                        }
                    }
                    steps.push(Step::Index(n.parse().map_err(|_| "an index must be [digits]")?));
                }
                other => return Err(format!("unexpected {other:?}; a path starts each key with a dot")),
            }
        }
        if steps.is_empty() {
            return Err("the path is empty".into());
        }
        Ok(ClaimPath(steps))
    }

    /// The string at this path, if there is one.
    #[cfg(test)]
    pub fn get<'a>(&self, claims: &'a Value) -> Option<&'a str> {
        self.value(claims)?.as_str()
    }

    /// The value at this path, of any type.
    pub fn value<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        let mut v = claims;
        for s in &self.0 {
            v = match s {
                Step::Key(k) => v.get(k.as_str())?,
                Step::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let claims = serde_json::json!({"role": "a", "https://x.com/role": "b", "app": {"roles": ["c", "d"]}});
        assert_eq!(ClaimPath::parse(".role").unwrap().get(&claims), Some("a"));
        assert_eq!(ClaimPath::parse(".\"https://x.com/role\"").unwrap().get(&claims), Some("b"));
        assert_eq!(ClaimPath::parse(".app.roles[1]").unwrap().get(&claims), Some("d"));
        assert_eq!(ClaimPath::parse(".missing").unwrap().get(&claims), None);
        assert!(ClaimPath::parse("role").is_err());
        assert!(ClaimPath::parse(".a[x]").is_err());
        assert!(ClaimPath::parse("").is_err());
    }
}
