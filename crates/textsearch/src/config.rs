//! Text search configurations: how a word becomes a lexeme.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};

use crate::token::{words, Word};
use crate::Error;

/// A configuration as PostgreSQL names them (`english`, `pg_catalog.french`, `simple`):
/// `simple` only lowercases; the Snowball languages also stem, and `english` drops the stop
/// words of PostgreSQL's `english.stop` (the Snowball list). Other languages keep their stop
/// words (docs/compatibility.md).
pub struct Config {
    stemmer: Option<Stemmer>,
    stop_words: &'static [&'static str],
}

/// A document as `to_tsvector` sees it: each lexeme with its positions (from 1), stop words
/// counted but not kept.
#[derive(Debug, Default)]
pub struct Document {
    pub(crate) lexemes: HashMap<String, Vec<u32>>,
    pub(crate) last: u32,
}

impl Config {
    /// The configuration called `name`; None is `english`.
    pub fn named(name: Option<&str>) -> Result<Config, Error> {
        let raw = name.unwrap_or("english");
        let lower = raw.trim().to_lowercase();
        let bare = lower.strip_prefix("pg_catalog.").unwrap_or(&lower);
        let algorithm = match bare {
            "simple" => return Ok(Config { stemmer: None, stop_words: &[] }),
            "arabic" => Algorithm::Arabic,
            "danish" => Algorithm::Danish,
            "dutch" => Algorithm::Dutch,
            "english" => Algorithm::English,
            "finnish" => Algorithm::Finnish,
            "french" => Algorithm::French,
            "german" => Algorithm::German,
            "greek" => Algorithm::Greek,
            "hungarian" => Algorithm::Hungarian,
            "italian" => Algorithm::Italian,
            "norwegian" => Algorithm::Norwegian,
            "portuguese" => Algorithm::Portuguese,
            "romanian" => Algorithm::Romanian,
            "russian" => Algorithm::Russian,
            "spanish" => Algorithm::Spanish,
            "swedish" => Algorithm::Swedish,
            "tamil" => Algorithm::Tamil,
            "turkish" => Algorithm::Turkish,
            _ => return Err(Error::UnknownConfig(raw.to_string())),
        };
        let stop_words = if algorithm == Algorithm::English { ENGLISH_STOP_WORDS } else { &[] };
        Ok(Config { stemmer: Some(Stemmer::create(algorithm)), stop_words })
    }

    /// The lexeme of one word, or None for a stop word. Words with digits are not stemmed
    /// (PostgreSQL sends them to the `simple` dictionary).
    pub(crate) fn lexeme(&self, word: &str) -> Option<String> {
        let lower = word.to_lowercase();
        if self.stop_words.binary_search(&lower.as_str()).is_ok() {
            return None;
        }
        match &self.stemmer {
            Some(s) if !lower.chars().any(|c| c.is_numeric()) => Some(s.stem(&lower).into_owned()),
            _ => Some(lower),
        }
    }

    /// Each token of `text` in order, as groups (a hyphenated word and then its parts), each
    /// word's lexeme or None for a stop word.
    pub(crate) fn groups(&self, text: &str) -> Vec<Vec<Option<String>>> {
        words(text).into_iter().map(|g| g.iter().map(|w: &Word| self.lexeme(w.as_str())).collect()).collect()
    }

    /// `to_tsvector(self, text)`.
    pub fn document(&self, text: &str) -> Document {
        let mut doc = Document::default();
        for lexeme in self.groups(text).into_iter().flatten() {
            doc.last += 1;
            if let Some(l) = lexeme {
                doc.lexemes.entry(l).or_default().push(doc.last);
            }
        }
        doc
    }
}

/// PostgreSQL's `english.stop`, the Snowball project's English list, sorted for binary search.
const ENGLISH_STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];
