//! The catalog: every table, column, key and relationship, resolved once per schema load.
//! The planner resolves every name in a request against it, so SQL only ever sees catalog names.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::default::DefaultExpr;
use crate::types::ColumnType;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The database schema these tables live in; None is `public` (a schema file's tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub tables: IndexMap<String, Table>,
    /// SQL functions callable at `/rpc/{name}` (PostgreSQL; found by introspection).
    #[serde(default)]
    pub functions: Vec<Function>,
}

/// A function in the exposed schema, as `/rpc` calls it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// The schema it is defined in; None is `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    pub args: Vec<FunctionArg>,
    pub returns_set: bool,
    pub returns: FunctionReturn,
    /// False for `immutable`/`stable` functions, which GET may call in a read-only transaction.
    pub volatile: bool,
    /// The columns of each result row (`SETOF table`, `RETURNS TABLE`, OUT arguments), so
    /// `select`, filters and `order` apply to set results: (name, PostgreSQL type).
    #[serde(default)]
    pub result_columns: Vec<(String, String)>,
    /// The table (or view) of the same schema whose rows it returns (`SETOF todos`, `RETURNS
    /// todos`): its results embed what the table embeds, as PostgREST's do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns_table: Option<String>,
    /// The result type's name as PostgreSQL's catalog has it (`int8`, `_text`, `todos`), for
    /// generated types.
    #[serde(default)]
    pub return_type: String,
}

impl Function {
    /// A single unnamed `json` or `jsonb` argument: the call passes the request body as it is.
    pub fn takes_whole_body(&self) -> bool {
        matches!(self.args.as_slice(), [a] if a.name.is_empty() && matches!(a.pg_type.as_str(), "json" | "jsonb"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionArg {
    /// Empty for a single unnamed `json`/`jsonb` argument ([`Function::takes_whole_body`]).
    pub name: String,
    /// The PostgreSQL type as `format_type` prints it.
    pub pg_type: String,
    pub has_default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionReturn {
    Scalar,
    Composite,
    Void,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub columns: IndexMap<String, Column>,
    pub primary_key: Vec<String>,
    pub uniques: Vec<UniqueConstraint>,
    pub foreign_keys: Vec<ForeignKey>,
    pub checks: Vec<CheckConstraint>,
    pub indexes: Vec<Index>,
    /// Whether the server maintains `updated_at` on update.
    pub maintains_updated_at: bool,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Signup hook: (column, user field) pairs inserted for each new user.
    #[serde(default)]
    pub on_signup: Vec<(String, String)>,
    /// Every insert, update and delete leaves a row in the hash-chained audit log.
    #[serde(default)]
    pub audit: Option<Audit>,
}

/// A table's audit trail: the columns whose values it records only as `"[redacted]"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub redact: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub not_null: bool,
    pub default: Option<DefaultExpr>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UniqueConstraint {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    NoAction,
    Cascade,
    SetNull,
    Restrict,
}

impl OnDelete {
    pub fn sql(&self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::Restrict => "RESTRICT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    pub on_delete: OnDelete,
}

/// A check constraint: `column IN (values)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckConstraint {
    pub name: String,
    pub column: String,
    pub one_of: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    /// (column, descending)
    pub columns: Vec<(String, bool)>,
    pub unique: bool,
}

/// A row-level security policy (permissive): who, for which command, and the expressions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    /// select, insert, update, delete or all
    pub command: String,
    /// anon, authenticated (service_role bypasses policies)
    pub roles: Vec<String>,
    pub using: Option<crate::policy::Expr>,
    pub with_check: Option<crate::policy::Expr>,
}

impl Policy {
    pub fn applies(&self, role: &str, command: &str) -> bool {
        (self.command == "all" || self.command == command)
            && (self.roles.is_empty() || self.roles.iter().any(|r| r == role || r == "public"))
    }
}

/// The table Supabase apps reference for users.
pub const AUTH_USERS: &str = "auth.users";

/// How an embedded resource relates to its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship<'a> {
    /// The foreign key that links the two tables.
    pub fk: &'a ForeignKey,
    /// True when the parent holds the foreign key (many-to-one: the embed is one object).
    pub parent_holds_fk: bool,
    /// True when the embed yields at most one row (many-to-one, or one-to-one through a unique key).
    pub to_one: bool,
}

impl Catalog {
    /// The schema's name, as errors and qualified names spell it.
    pub fn schema_name(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }

    /// The function `name` whose arguments can take exactly `given` (by name), as PostgREST picks overloads.
    pub fn function(&self, name: &str, given: &[String]) -> Option<&Function> {
        self.functions.iter().filter(|f| f.name == name && !f.takes_whole_body()).find(|f| {
            given.iter().all(|g| f.args.iter().any(|a| a.name == *g)) && f.args.iter().all(|a| a.has_default || given.contains(&a.name))
        })
    }

    /// The overload of `name` with a single unnamed `json`/`jsonb` argument, which PostgREST
    /// calls with the whole request body when no overload takes the body's keys by name.
    pub fn whole_body_function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name && f.takes_whole_body())
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// All relationships between `parent` and `target`, for resolving `select=target(*)`.
    pub fn relationships<'a>(&'a self, parent: &'a Table, target: &'a Table) -> Vec<Relationship<'a>> {
        let mut found = Vec::new();
        for fk in &parent.foreign_keys {
            if fk.ref_table == target.name {
                found.push(Relationship { fk, parent_holds_fk: true, to_one: true });
            }
        }
        for fk in &target.foreign_keys {
            if fk.ref_table == parent.name {
                found.push(Relationship { fk, parent_holds_fk: false, to_one: target.is_unique_set(&fk.columns) });
            }
        }
        found
    }

    /// The nearest table name, for "Perhaps you meant" hints.
    pub fn suggest_table(&self, name: &str) -> Option<&str> {
        closest(name, self.tables.keys().map(String::as_str))
    }
}

impl Table {
    /// A table with no columns, keys or policies yet (introspection and function results fill it).
    pub fn empty(name: &str) -> Table {
        Table {
            name: name.to_string(),
            description: None,
            columns: IndexMap::new(),
            primary_key: Vec::new(),
            uniques: Vec::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            indexes: Vec::new(),
            maintains_updated_at: false,
            owner: None,
            policies: Vec::new(),
            on_signup: Vec::new(),
            audit: None,
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.get(name)
    }

    /// True when `cols` is exactly the primary key or a unique constraint.
    pub fn is_unique_set(&self, cols: &[String]) -> bool {
        let same = |a: &[String]| a.len() == cols.len() && a.iter().all(|c| cols.contains(c));
        same(&self.primary_key) || self.uniques.iter().any(|u| same(&u.columns))
    }

    pub fn suggest_column(&self, name: &str) -> Option<&str> {
        closest(name, self.columns.keys().map(String::as_str))
    }
}

/// Picks the candidate with the smallest edit distance, if it is close enough to be a typo.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(closest("todo", ["todos", "lists"].into_iter()), Some("todos"));
        assert_eq!(closest("zzzzzz", ["todos", "lists"].into_iter()), None);
    }
}
