//! A tiny character cursor shared by the query-string parsers.

pub struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    pub fn eat(&mut self, ch: char) -> bool {
        if self.peek() == Some(ch) {
            self.pos += ch.len_utf8();
            true
        } else {
            false
        }
    }

    /// An identifier: letters, digits, `_`, `$`, `-` not followed by `>`, or a double-quoted name.
    pub fn name(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        while let Some(ch) = self.peek() {
            let dash_ok = ch == '-' && !self.rest().starts_with("->");
            if ch.is_alphanumeric() || ch == '_' || ch == '$' || ch == ' ' || dash_ok {
                self.pos += ch.len_utf8();
            } else {
                break;
            }
        }
        if self.pos == start {
            return Err(match self.peek() {
                Some(ch) => format!("unexpected \"{ch}\" expecting field name (* or [a..z0..9_$])"),
                None => "unexpected end of input expecting field name (* or [a..z0..9_$])".into(),
            });
        }
        Ok(self.s[start..self.pos].to_string())
    }

    /// A JSON path key: a name or a (possibly negative) integer.
    pub fn name_or_number(&mut self) -> Result<String, String> {
        if self.peek() == Some('-') {
            self.bump();
            let n = self.name()?;
            return Ok(format!("-{n}"));
        }
        self.name()
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err("unexpected end of input expecting closing quote".into()),
                Some('\\') => match self.bump() {
                    Some(ch) => out.push(ch),
                    None => return Err("unexpected end of input after \\".into()),
                },
                Some('"') => return Ok(out),
                Some(ch) => out.push(ch),
            }
        }
    }
}

/// The deepest nesting of parentheses in `s`, outside double quotes. The select and logic-tree
/// parsers, the planner and the renderers recurse once per level, so a request's nesting is
/// bounded before any of them runs: a few hundred levels would exhaust a worker's stack.
pub fn paren_depth(s: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for (_, ch) in unquoted(s) {
        match ch {
            '(' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The characters of `s` (with their byte offsets) outside double-quoted parts, where `\\`
/// escapes the next character; the quotes themselves are left out.
pub fn unquoted(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut quoted, mut escaped) = (false, false);
    s.char_indices().filter(move |&(_, ch)| {
        if escaped {
            escaped = false;
            return false;
        }
        match ch {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => return !quoted,
        }
        false
    })
}
