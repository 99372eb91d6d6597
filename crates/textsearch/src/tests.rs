//! Cases checked against PostgreSQL 15 (`to_tsvector(cfg, doc) @@ <kind>(cfg, q)`).

use super::*;

const DOCS: &[&str] = &[
    "The fat cat ate the rat",
    "Fat cats are eating rats quickly",
    "A supernova is a powerful stellar explosion",
    "fat-cat and the mouse",
    "Running runners run; the runner ran.",
    "Don't stop believing",
    "Le chat mange la souris",
    "email me at bob@example.com about 42 items",
];

/// (operator, configuration, query, the documents it matches in PostgreSQL)
const CASES: &[(&str, Option<&str>, &str, &[usize])] = &[
    ("fts", None, "cat", &[0, 1, 3]),
    ("fts", None, "cats & rat", &[0, 1]),
    ("fts", None, "cat & !rat", &[3]),
    ("fts", None, "cat | dog", &[0, 1, 3]),
    ("fts", None, "fat <-> cat", &[0, 1, 3]),
    ("fts", None, "cat <-> rat", &[]),
    ("fts", None, "ate <2> rat", &[0]),
    ("fts", None, "cat <-> the <-> rat", &[]),
    ("fts", None, "super:*", &[2]),
    ("fts", None, "eat:*", &[1]),
    ("fts", None, "!dog", &[0, 1, 2, 3, 4, 5, 6, 7]),
    ("fts", None, "(fat | lean) & cat", &[0, 1, 3]),
    ("fts", None, "cat:A", &[]),
    ("fts", None, "cat:D", &[0, 1, 3]),
    ("fts", None, "fat-cat", &[3]),
    ("fts", None, "'fat cat'", &[0, 1, 3]),
    ("fts", None, "the", &[]),
    ("fts", None, "run & runner", &[4]),
    ("fts", None, "!fat <-> cat", &[]),
    ("fts", None, "ate <-> !fat", &[0]),
    ("fts", Some("simple"), "cats", &[1]),
    ("fts", Some("simple"), "cat", &[0, 3]),
    ("fts", Some("simple"), "the & cat", &[0, 3]),
    ("plfts", None, "fat rats", &[0, 1]),
    ("plfts", None, "The Fat Rats", &[0, 1]),
    ("plfts", None, "fat dog", &[]),
    ("plfts", None, "the", &[]),
    ("plfts", Some("simple"), "fat rats", &[1]),
    ("phfts", None, "fat cat", &[0, 1, 3]),
    ("phfts", None, "cat ate", &[0]),
    ("phfts", None, "cat the rat", &[]),
    ("phfts", None, "ate the rat", &[0]),
    ("phfts", None, "fat rat", &[]),
    ("phfts", None, "stellar explosion", &[2]),
    ("phfts", None, "powerful explosion", &[]),
    ("wfts", None, "\"fat rat\" or cat -dog", &[0, 1, 3]),
    ("wfts", None, "fat -cat", &[]),
    ("wfts", None, "\"ate the rat\"", &[0]),
    ("wfts", None, "dog or mouse", &[3]),
    ("wfts", None, "or cat or", &[0, 1, 3]),
    ("wfts", None, "-rat", &[2, 3, 4, 5, 6, 7]),
    ("wfts", None, "supernova explosions", &[2]),
    ("fts", Some("french"), "souris", &[6]),
    ("fts", Some("french"), "mangeons", &[]),
    ("plfts", None, "42 items", &[7]),
    ("fts", None, "don", &[]),
];

#[test]
fn matches_as_postgresql_does() {
    let mut wrong = Vec::new();
    for (op, config, query, expected) in CASES {
        let kind = Kind::from_operator(op).expect("kind");
        for (i, doc) in DOCS.iter().enumerate() {
            let got = matches(doc, kind, *config, query).expect("valid");
            if got != expected.contains(&i) {
                wrong.push(format!("{op}({config:?}) {query:?} on {doc:?}: got {got}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn to_tsquery_syntax_errors_are_postgresqls() {
    for bad in ["& cat", "(cat", "cat)", "cat <x> rat", "cat | | rat", "'cat", "cat <-"] {
        let e = check_syntax(Kind::To, bad).expect_err(bad);
        assert_eq!(e.sqlstate(), "42601", "{bad}");
        assert_eq!(e.to_string(), format!("syntax error in tsquery: \"{bad}\""));
    }
    for bad in ["cat &", "cat & ", "!", "("] {
        let e = check_syntax(Kind::To, bad).expect_err(bad);
        assert_eq!(e.sqlstate(), "42601", "{bad}");
        assert_eq!(e.to_string(), format!("no operand in tsquery: \"{bad}\""));
    }
    for good in ["", "  ", "cat", "a & (b | !c) <2> d:*", "'it''s'", "fat:AB*"] {
        check_syntax(Kind::To, good).expect(good);
    }
    for any in ["cat &", "\"unclosed", "-", "or or", ""] {
        check_syntax(Kind::Web, any).expect(any);
        check_syntax(Kind::Plain, any).expect(any);
        check_syntax(Kind::Phrase, any).expect(any);
    }
}

#[test]
fn configurations_are_postgresqls_names() {
    assert!(Config::named(Some("pg_catalog.english")).is_ok());
    assert!(Config::named(Some("French")).is_ok());
    let e = Config::named(Some("klingon")).err().expect("unknown");
    assert_eq!(e.sqlstate(), "42704");
    assert_eq!(e.to_string(), "text search configuration \"klingon\" does not exist");
}

#[test]
fn stop_words_are_sorted_for_binary_search() {
    let english = Config::named(None).expect("english");
    for w in ["the", "a", "yourselves", "don", "t"] {
        assert_eq!(english.lexeme(w), None, "{w}");
    }
    assert_eq!(english.lexeme("Cats").as_deref(), Some("cat"));
}

#[test]
fn documents_count_stop_words_and_hyphenated_parts() {
    let doc = Config::named(None).expect("english").document("fat-cat ate the rat");
    assert_eq!(doc.lexemes.get("fat-cat"), Some(&vec![1]));
    assert_eq!(doc.lexemes.get("cat"), Some(&vec![3]));
    assert_eq!(doc.lexemes.get("rat"), Some(&vec![6]));
    assert_eq!(doc.last, 6);
}
