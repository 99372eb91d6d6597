//! The four ways PostgreSQL turns text into a `tsquery`, and the query they make.

use crate::config::Config;
use crate::Error;

/// Which function makes the query: PostgREST's `fts`, `plfts`, `phfts` and `wfts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `to_tsquery`: operators `&`, `|`, `!`, `<->`, `<N>`, parentheses, `:*` and weights.
    To,
    /// `plainto_tsquery`: every word must be there.
    Plain,
    /// `phraseto_tsquery`: the words in this order, stop words keeping their places.
    Phrase,
    /// `websearch_to_tsquery`: words, `"quoted phrases"`, `or`, `-word`.
    Web,
}

impl Kind {
    /// PostgREST's operator for this kind.
    pub fn operator(self) -> &'static str {
        match self {
            Kind::To => "fts",
            Kind::Plain => "plfts",
            Kind::Phrase => "phfts",
            Kind::Web => "wfts",
        }
    }

    /// The kind of a PostgREST operator.
    pub fn from_operator(op: &str) -> Option<Kind> {
        Some(match op {
            "fts" => Kind::To,
            "plfts" => Kind::Plain,
            "phfts" => Kind::Phrase,
            "wfts" => Kind::Web,
            _ => return None,
        })
    }

    /// PostgreSQL's function for this kind.
    pub fn function(self) -> &'static str {
        match self {
            Kind::To => "to_tsquery",
            Kind::Plain => "plainto_tsquery",
            Kind::Phrase => "phraseto_tsquery",
            Kind::Web => "websearch_to_tsquery",
        }
    }
}

/// The weight `D`, the only one `to_tsvector`'s positions have.
const WEIGHT_D: u8 = 1;

/// A query as written, before its words meet a configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// Text whose words make one lexeme, or a phrase of them.
    Words {
        text: String,
        prefix: bool,
        weights: u8,
    },
    /// `plainto_tsquery`'s text: each token's words must be there, anywhere.
    Plain(String),
    Not(Box<Raw>),
    And(Box<Raw>, Box<Raw>),
    Or(Box<Raw>, Box<Raw>),
    /// `a <N> b`: b's first word N positions after a's last.
    Follow(Box<Raw>, u32, Box<Raw>),
}

/// A query ready to match: words are lexemes, stop words gone (their places kept as padding
/// inside phrases, as PostgreSQL keeps them as larger distances).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Lexeme {
        word: String,
        prefix: bool,
        weights: u8,
    },
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Follow(Box<Node>, u32, Box<Node>),
    /// `inner` with `left` and `right` positions of removed stop words around it.
    Pad {
        inner: Box<Node>,
        left: u32,
        right: u32,
    },
}

/// A parsed query; None inside means it had no lexemes left and matches nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Query(pub(crate) Option<Node>);

impl Query {
    /// `<kind>(config, text)`.
    pub fn parse(kind: Kind, text: &str, config: &Config) -> Result<Query, Error> {
        let raw = parse_raw(kind, text)?;
        Ok(Query(raw.and_then(|r| match normalize(&r, config) {
            Norm::Node(n) => Some(n),
            Norm::Gone(_) => None,
        })))
    }
}

/// Parses without a configuration: what decides whether the text is a valid query.
pub(crate) fn parse_raw(kind: Kind, text: &str) -> Result<Option<Raw>, Error> {
    match kind {
        Kind::To => ToParser { s: text.as_bytes(), text, i: 0 }.query(),
        Kind::Plain => Ok(Some(Raw::Plain(text.to_string()))),
        Kind::Phrase => Ok(Some(Raw::Words { text: text.to_string(), prefix: false, weights: 0 })),
        Kind::Web => Ok(web(text)),
    }
}

/// The result of normalizing: a node, or nothing but stop words spanning that many positions.
enum Norm {
    Node(Node),
    Gone(u32),
}

fn normalize(raw: &Raw, config: &Config) -> Norm {
    match raw {
        Raw::Plain(text) => {
            let mut acc: Option<Node> = None;
            for group in config.groups(text) {
                if let Norm::Node(n) = chain(group.into_iter(), false, 0) {
                    acc = Some(match acc {
                        None => n,
                        Some(a) => Node::And(Box::new(a), Box::new(n)),
                    });
                }
            }
            acc.map_or(Norm::Gone(0), Norm::Node)
        }
        Raw::Words { text, prefix, weights } => chain(config.groups(text).into_iter().flatten(), *prefix, *weights),
        Raw::Not(r) => match normalize(r, config) {
            Norm::Node(n) => Norm::Node(Node::Not(Box::new(n))),
            gone => gone,
        },
        Raw::And(a, b) | Raw::Or(a, b) => match (normalize(a, config), normalize(b, config)) {
            (Norm::Node(x), Norm::Node(y)) => Norm::Node(if matches!(raw, Raw::And(..)) {
                Node::And(Box::new(x), Box::new(y))
            } else {
                Node::Or(Box::new(x), Box::new(y))
            }),
            (Norm::Node(x), Norm::Gone(_)) | (Norm::Gone(_), Norm::Node(x)) => Norm::Node(x),
            (Norm::Gone(_), Norm::Gone(_)) => Norm::Gone(0),
        },
        Raw::Follow(a, n, b) => follow(normalize(a, config), *n, normalize(b, config)),
    }
}

/// Consecutive words as `w1 <-> w2 <-> ...`, stop words as gaps.
fn chain(words: impl Iterator<Item = Option<String>>, prefix: bool, weights: u8) -> Norm {
    let mut acc: Option<Norm> = None;
    for w in words {
        let next = match w {
            Some(word) => Norm::Node(Node::Lexeme { word, prefix, weights }),
            None => Norm::Gone(0),
        };
        acc = Some(match acc {
            None => next,
            Some(a) => follow(a, 1, next),
        });
    }
    acc.unwrap_or(Norm::Gone(0))
}

fn follow(a: Norm, n: u32, b: Norm) -> Norm {
    match (a, b) {
        (Norm::Node(x), Norm::Node(y)) => Norm::Node(Node::Follow(Box::new(x), n, Box::new(y))),
        (Norm::Gone(s), Norm::Node(y)) => Norm::Node(pad(y, s + n, 0)),
        (Norm::Node(x), Norm::Gone(s)) => Norm::Node(pad(x, 0, n + s)),
        (Norm::Gone(s), Norm::Gone(t)) => Norm::Gone(s + n + t),
    }
}

fn pad(node: Node, left: u32, right: u32) -> Node {
    match node {
        Node::Pad { inner, left: l, right: r } => Node::Pad { inner, left: l + left, right: r + right },
        other => Node::Pad { inner: Box::new(other), left, right },
    }
}

/// `to_tsquery`'s grammar, loosest first: `|`, `&`, `<N>`, then `!`, parentheses and operands.
struct ToParser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl ToParser<'_> {
    fn query(mut self) -> Result<Option<Raw>, Error> {
        self.skip_space();
        if self.i == self.s.len() {
            return Ok(None);
        }
        let q = self.or()?;
        self.skip_space();
        if self.i != self.s.len() {
            return Err(self.error());
        }
        Ok(Some(q))
    }

    fn error(&self) -> Error {
        Error::Syntax(self.text.to_string())
    }

    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Raw, Error> {
        let mut left = self.and()?;
        while self.eat(b'|') {
            left = Raw::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Raw, Error> {
        let mut left = self.follow()?;
        while self.eat(b'&') {
            left = Raw::And(Box::new(left), Box::new(self.follow()?));
        }
        Ok(left)
    }

    fn follow(&mut self) -> Result<Raw, Error> {
        let mut left = self.unary()?;
        while let Some(n) = self.distance()? {
            left = Raw::Follow(Box::new(left), n, Box::new(self.unary()?));
        }
        Ok(left)
    }

    /// `<->` (1) or `<N>`, if one comes next.
    fn distance(&mut self) -> Result<Option<u32>, Error> {
        self.skip_space();
        if self.s.get(self.i) != Some(&b'<') {
            return Ok(None);
        }
        let rest = &self.text[self.i + 1..];
        let end = rest.find('>').ok_or_else(|| self.error())?;
        let inner = &rest[..end];
        let n = if inner == "-" { 1 } else { inner.parse::<u32>().ok().filter(|n| *n <= 16384).ok_or_else(|| self.error())? };
        self.i += end + 2;
        Ok(Some(n))
    }

    fn unary(&mut self) -> Result<Raw, Error> {
        if self.eat(b'!') {
            return Ok(Raw::Not(Box::new(self.unary()?)));
        }
        if self.eat(b'(') {
            let inner = self.or()?;
            if !self.eat(b')') {
                return Err(self.error());
            }
            return Ok(inner);
        }
        self.operand()
    }

    fn operand(&mut self) -> Result<Raw, Error> {
        self.skip_space();
        if self.i == self.s.len() {
            return Err(Error::NoOperand(self.text.to_string()));
        }
        let mut text = String::new();
        if self.s.get(self.i) == Some(&b'\'') {
            self.i += 1;
            let mut closed = false;
            let mut chars = self.text[self.i..].char_indices();
            while let Some((k, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            text.push(n);
                        }
                    }
                    '\'' => {
                        if self.text[self.i + k + 1..].starts_with('\'') {
                            text.push('\'');
                            chars.next();
                        } else {
                            self.i += k + 1;
                            closed = true;
                            break;
                        }
                    }
                    c => text.push(c),
                }
            }
            if !closed {
                return Err(self.error());
            }
        } else {
            let start = self.i;
            for (k, c) in self.text[start..].char_indices() {
                if c.is_whitespace() || "()!&|<:'".contains(c) {
                    self.i = start + k;
                    break;
                }
                text.push(c);
                self.i = start + k + c.len_utf8();
            }
            if text.is_empty() {
                return Err(self.error());
            }
        }
        let (mut prefix, mut weights) = (false, 0u8);
        if self.s.get(self.i) == Some(&b':') {
            self.i += 1;
            while let Some(c) = self.s.get(self.i) {
                match c.to_ascii_uppercase() {
                    b'*' => prefix = true,
                    b'A' => weights |= 8,
                    b'B' => weights |= 4,
                    b'C' => weights |= 2,
                    b'D' => weights |= WEIGHT_D,
                    _ => break,
                }
                self.i += 1;
            }
        }
        Ok(Raw::Words { text, prefix, weights })
    }
}

/// `websearch_to_tsquery`: never fails. Terms are AND-ed, `or` separates alternatives (AND
/// binds tighter), `-` negates a term, double quotes make a phrase.
fn web(text: &str) -> Option<Raw> {
    let mut alternatives: Vec<Vec<Raw>> = vec![Vec::new()];
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let negate = rest.starts_with('-');
        if negate {
            rest = &rest[1..];
        }
        let term = if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"').unwrap_or(after.len());
            let phrase = &after[..end];
            rest = after.get(end + 1..).unwrap_or("");
            Raw::Words { text: phrase.to_string(), prefix: false, weights: 0 }
        } else {
            let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
            let word = &rest[..end];
            rest = &rest[end..];
            if !negate && word.eq_ignore_ascii_case("or") {
                if alternatives.last().is_some_and(|a| !a.is_empty()) {
                    alternatives.push(Vec::new());
                }
                continue;
            }
            Raw::Words { text: word.to_string(), prefix: false, weights: 0 }
        };
        let term = if negate { Raw::Not(Box::new(term)) } else { term };
        alternatives.last_mut().expect("one alternative at least").push(term);
    }
    alternatives
        .into_iter()
        .filter_map(|terms| terms.into_iter().reduce(|a, b| Raw::And(Box::new(a), Box::new(b))))
        .reduce(|a, b| Raw::Or(Box::new(a), Box::new(b)))
}
