//! The audit trail: one row per change to an audited table, written by database triggers in the
//! change's own transaction (so a rolled-back write leaves none) and chained by SHA-256, each
//! row's hash covering the previous one's. Editing, inserting or deleting a row in the log breaks
//! the chain at that row, and the chain head kept beside the log catches a cut-off tail.
//! On SQLite the trigger chains each entry as it writes it (there is one writer); on PostgreSQL
//! entries are appended without a lock and sealed into the chain right after they commit.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry as stored, its JSON as stored text (what the chain hashed).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The entry's number in write order (on PostgreSQL a sequence, which may skip numbers).
    pub id: i64,
    /// Its position in the chain: 1, 2, 3, ... without gaps; on PostgreSQL None until sealed.
    pub seq: Option<i64>,
    pub at: String,
    pub table_name: String,
    pub op: String,
    pub row_id: Option<String>,
    #[serde(serialize_with = "raw_json")]
    pub old_row: Option<String>,
    #[serde(serialize_with = "raw_json")]
    pub new_row: Option<String>,
    pub actor_id: Option<String>,
    pub actor_role: String,
    pub api_key_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

fn raw_json<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let value = v.as_deref().map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap_or_else(|_| serde_json::Value::String(t.into())));
    value.serialize(s)
}

impl Entry {
    /// An entry from its stored columns (id, seq, then the rest in log order, as text; see the
    /// store's entry queries), read by `text(column)`.
    pub fn from_columns(id: i64, seq: Option<i64>, text: impl Fn(usize) -> Option<String>) -> Entry {
        Entry {
            id,
            seq,
            at: text(2).unwrap_or_default(),
            table_name: text(3).unwrap_or_default(),
            op: text(4).unwrap_or_default(),
            row_id: text(5),
            old_row: text(6),
            new_row: text(7),
            actor_id: text(8),
            actor_role: text(9).unwrap_or_default(),
            api_key_id: text(10),
            ip: text(11),
            user_agent: text(12),
            request_id: text(13),
            prev_hash: text(14),
            hash: text(15),
        }
    }

    /// The fields in the order the chain hashes them (`basalt_schema::audit::FIELDS`).
    fn fields(&self) -> [Option<String>; 13] {
        [
            self.seq.map(|s| s.to_string()),
            Some(self.at.clone()),
            Some(self.table_name.clone()),
            Some(self.op.clone()),
            self.row_id.clone(),
            self.old_row.clone(),
            self.new_row.clone(),
            self.actor_id.clone(),
            Some(self.actor_role.clone()),
            self.api_key_id.clone(),
            self.ip.clone(),
            self.user_agent.clone(),
            self.request_id.clone(),
        ]
    }

    /// The hash this entry should carry after `prev`.
    pub fn expected_hash(&self, prev: &str) -> String {
        let fields = self.fields();
        entry_hash(prev, fields.iter().map(Option::as_deref))
    }
}

/// Puts entries (oldest first) into the chain after position `seq` with hash `prev`; returns
/// the new head.
pub fn seal(mut seq: i64, prev: &str, entries: &mut [Entry]) -> (i64, String) {
    let mut prev = prev.to_string();
    for e in entries {
        seq += 1;
        e.seq = Some(seq);
        e.prev_hash = Some(prev.clone());
        let hash = e.expected_hash(&prev);
        e.hash = Some(hash.clone());
        prev = hash;
    }
    (seq, prev)
}

/// `sha256(prev | f1 | f2 | ...)`, hex, each field written as `<chars>:<text>` (NULL as `~`) so
/// no two different entries encode alike. PostgreSQL's trigger computes the same in SQL.
pub fn entry_hash<'a>(prev: &str, fields: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    for f in fields {
        h.update(b"|");
        match f {
            None => h.update(b"~"),
            Some(t) => {
                let mut digits = [0u8; 20];
                h.update(decimal(t.chars().count(), &mut digits));
                h.update(b":");
                h.update(t.as_bytes());
            }
        }
    }
    hex::encode(h.finalize())
}

/// `n` in decimal, written into `buf` (SQLite computes one hash per audited write, on the writer).
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// What checking the chain found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// Entries written but not yet sealed into the chain (PostgreSQL, for a moment after commit).
    pub unsealed: i64,
    /// The last entry's hash (record it elsewhere to anchor the log).
    pub head: String,
    /// The chain position of the first entry that does not fit the chain, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Walks the chain page by page, in chain order.
pub struct Walker {
    prev: String,
    expected_seq: i64,
    entries: i64,
    broken: Option<(i64, String)>,
}

impl Default for Walker {
    fn default() -> Self {
        Walker { prev: GENESIS.to_string(), expected_seq: 1, entries: 0, broken: None }
    }
}

impl Walker {
    /// Checks the next entries; false once the chain is broken (no need to read further).
    pub fn check(&mut self, page: &[Entry]) -> bool {
        for e in page {
            if self.broken.is_some() {
                return false;
            }
            let reason = if e.seq != Some(self.expected_seq) {
                Some(format!("expected chain position {} next, found {:?}", self.expected_seq, e.seq))
            } else if e.prev_hash.as_deref() != Some(self.prev.as_str()) {
                Some("its previous hash is not the hash of the entry before it".to_string())
            } else if e.hash.as_deref() != Some(e.expected_hash(&self.prev).as_str()) {
                Some("its content does not match its hash".to_string())
            } else {
                None
            };
            if let Some(r) = reason {
                self.broken = Some((self.expected_seq, r));
                return false;
            }
            self.prev = e.hash.clone().unwrap_or_default();
            self.expected_seq += 1;
            self.entries += 1;
        }
        true
    }

    /// The verdict, given the chain head the database keeps (`seq`, `hash`) and the number of
    /// entries not yet sealed into the chain.
    pub fn finish(self, head_seq: i64, head_hash: &str, unsealed: i64) -> Verdict {
        let broken = self.broken.or_else(|| {
            (head_seq != self.entries || head_hash != self.prev).then(|| {
                (self.expected_seq, format!("the chain head says {head_seq} entries, the log holds {}: entries were removed", self.entries))
            })
        });
        Verdict {
            ok: broken.is_none(),
            entries: self.entries,
            unsealed,
            head: self.prev,
            broken_at: broken.as_ref().map(|b| b.0),
            reason: broken.map(|b| b.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, prev: &str) -> Entry {
        let mut e = Entry {
            id,
            seq: Some(id),
            at: "2026-12-01T00:00:00+00:00".into(),
            table_name: "t".into(),
            op: "INSERT".into(),
            row_id: Some("1".into()),
            old_row: None,
            new_row: Some("{\"a\":\"x|y\"}".into()),
            actor_id: None,
            actor_role: "authenticated".into(),
            api_key_id: None,
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: None,
            prev_hash: Some(prev.into()),
            hash: None,
        };
        e.hash = Some(e.expected_hash(prev));
        e
    }

    #[test]
    fn sealed_entries_verify() {
        let mut entries = vec![entry(7, GENESIS), entry(9, GENESIS)];
        for e in &mut entries {
            (e.seq, e.prev_hash, e.hash) = (None, None, None);
        }
        let (seq, head) = seal(0, GENESIS, &mut entries);
        assert_eq!((seq, entries[1].seq), (2, Some(2)));
        let mut w = Walker::default();
        assert!(w.check(&entries));
        assert!(w.finish(seq, &head, 0).ok);
    }

    #[test]
    fn fields_cannot_shift_into_each_other() {
        let a = entry_hash(GENESIS, [Some("a|b"), Some("c")].into_iter());
        let b = entry_hash(GENESIS, [Some("a"), Some("b|c")].into_iter());
        let c = entry_hash(GENESIS, [None, Some("")].into_iter());
        let d = entry_hash(GENESIS, [Some(""), None].into_iter());
        let mut digits = [0u8; 20];
        assert_eq!(decimal(0, &mut digits), b"0");
        assert_eq!(decimal(1234567890, &mut digits), b"1234567890");
        assert_eq!(decimal(usize::MAX, &mut digits), usize::MAX.to_string().as_bytes());
        assert_ne!(a, b);
        assert_ne!(c, d);
    }

    #[test]
    fn a_chain_verifies_and_edits_break_it() {
        let e1 = entry(1, GENESIS);
        let e2 = entry(2, e1.hash.as_deref().unwrap_or_default());
        let mut w = Walker::default();
        assert!(w.check(&[e1.clone(), e2.clone()]));
        let head = e2.hash.clone().unwrap_or_default();
        let v = w.finish(2, &head, 0);
        assert!(v.ok, "{v:?}");

        let mut edited = e2.clone();
        edited.new_row = Some("{\"a\":\"z\"}".into());
        let mut w = Walker::default();
        assert!(!w.check(&[e1.clone(), edited]));
        assert_eq!(w.finish(2, &head, 0).broken_at, Some(2));

        let mut w = Walker::default();
        w.check(std::slice::from_ref(&e1));
        let cut = w.finish(2, &head, 0);
        assert!(!cut.ok && cut.broken_at == Some(2), "{cut:?}");

        let mut w = Walker::default();
        assert!(!w.check(std::slice::from_ref(&e2)));
        assert_eq!(w.finish(2, &head, 0).broken_at, Some(1));
    }
}
