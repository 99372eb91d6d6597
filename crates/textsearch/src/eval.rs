//! Matching a query against a document's positions.

use crate::config::Document;
use crate::query::{Node, Query};

/// Positions carry no weight in `to_tsvector`'s output, which PostgreSQL counts as `D`.
const WEIGHT_D: u8 = 1;

impl Query {
    /// `document @@ self`. A query with no lexemes matches nothing, as in PostgreSQL.
    pub fn matches(&self, doc: &Document) -> bool {
        self.0.as_ref().is_some_and(|n| truth(n, doc))
    }
}

fn truth(node: &Node, doc: &Document) -> bool {
    match node {
        Node::Lexeme { .. } | Node::Follow(..) => !positions(node, doc).is_empty(),
        Node::Not(n) => !truth(n, doc),
        Node::And(a, b) => truth(a, doc) && truth(b, doc),
        Node::Or(a, b) => truth(a, doc) || truth(b, doc),
        Node::Pad { inner, .. } => truth(inner, doc),
    }
}

/// How many positions a node spans from its first word to its last.
fn width(node: &Node) -> u32 {
    match node {
        Node::Lexeme { .. } => 0,
        Node::Not(n) => width(n),
        Node::And(a, b) | Node::Or(a, b) => width(a).max(width(b)),
        Node::Follow(a, n, b) => width(a) + n + width(b),
        Node::Pad { inner, left, right } => left + width(inner) + right,
    }
}

/// The sorted positions where a match of `node` ends (its last word's position).
fn positions(node: &Node, doc: &Document) -> Vec<u32> {
    match node {
        Node::Lexeme { word, prefix, weights } => {
            if *weights != 0 && weights & WEIGHT_D == 0 {
                return Vec::new();
            }
            let mut out: Vec<u32> = if *prefix {
                doc.lexemes.iter().filter(|(l, _)| l.starts_with(word.as_str())).flat_map(|(_, p)| p.iter().copied()).collect()
            } else {
                doc.lexemes.get(word).cloned().unwrap_or_default()
            };
            out.sort_unstable();
            out.dedup();
            out
        }
        Node::Not(n) => {
            let hit = positions(n, doc);
            (1..=doc.last).filter(|p| hit.binary_search(p).is_err()).collect()
        }
        Node::And(a, b) => {
            let right = positions(b, doc);
            positions(a, doc).into_iter().filter(|p| right.binary_search(p).is_ok()).collect()
        }
        Node::Or(a, b) => {
            let mut all = positions(a, doc);
            all.extend(positions(b, doc));
            all.sort_unstable();
            all.dedup();
            all
        }
        Node::Follow(a, n, b) => {
            let left = positions(a, doc);
            let gap = width(b) + n;
            positions(b, doc).into_iter().filter(|p| *p > gap && left.binary_search(&(p - gap)).is_ok()).collect()
        }
        Node::Pad { inner, right, .. } => positions(inner, doc).into_iter().map(|p| p + right).collect(),
    }
}
