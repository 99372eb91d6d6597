//! Splitting text into words, as PostgreSQL's default parser does for the common cases.

/// One word of a token.
pub(crate) type Word = String;

/// The tokens of `text`: runs of letters and digits. A hyphenated word (`fat-cat`) is one token
/// that yields the whole word and then each part, each at its own position, as PostgreSQL's
/// `hword` tokens do; everything else (spaces, punctuation, apostrophes) separates words.
pub(crate) fn words(text: &str) -> Vec<Vec<Word>> {
    let mut out = Vec::new();
    let mut parts: Vec<Word> = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let finish = |parts: &mut Vec<Word>, out: &mut Vec<Vec<Word>>| match parts.len() {
        0 => {}
        1 => out.push(std::mem::take(parts)),
        _ => {
            let whole = parts.join("-");
            let mut group = vec![whole];
            group.append(parts);
            out.push(group);
        }
    };
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        let joins = c == '-' && !parts.is_empty() && chars.peek().is_some_and(|n| n.is_alphanumeric());
        if !joins {
            finish(&mut parts, &mut out);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    finish(&mut parts, &mut out);
    out
}
