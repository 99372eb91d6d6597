//! The parsed request: what the client asked for, before any name is checked against the catalog.

/// One HTTP request to `/rest/v1/{table}`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub action: Action,
    pub table: String,
    pub select: Vec<SelectItem>,
    /// Filters, each at an embed path (empty = the root table).
    pub filters: Vec<(Vec<String>, Filter)>,
    /// `or=`/`and=` trees, each at an embed path.
    pub logic: Vec<(Vec<String>, Logic)>,
    pub order: Vec<(Vec<String>, Vec<OrderTerm>)>,
    /// `limit`/`offset`, each at an embed path.
    pub ranges: Vec<(Vec<String>, Range)>,
    pub on_conflict: Option<Vec<String>>,
    pub columns: Option<Vec<String>>,
    pub prefer: Preferences,
    pub accept: MediaType,
    /// `nulls=stripped` on the media type: null-valued keys are left out.
    pub strip_nulls: bool,
    /// The `Range` header (offset, inclusive end).
    pub range_header: Option<(i64, Option<i64>)>,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read {
        head: bool,
    },
    Insert,
    Update,
    Delete,
    /// `PUT`: one row, named by every primary key column with `eq`, inserted or replaced.
    Put,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Star,
    Field {
        alias: Option<String>,
        field: Field,
        cast: Option<String>,
    },
    Embed {
        alias: Option<String>,
        relation: String,
        hint: Option<String>,
        join: JoinKind,
        select: Vec<SelectItem>,
    },
    /// Legacy `rel(count)`.
    Count {
        alias: Option<String>,
        relation: String,
    },
    /// `col.sum()`, `count()`: an aggregate function; the other columns of its node group it.
    Aggregate {
        alias: Option<String>,
        func: AggregateFunc,
        /// None for `count()` (every row).
        field: Option<Field>,
        /// A cast of the column before the function (`col::int.sum()`).
        cast: Option<String>,
        /// A cast of the result (`col.sum()::text`).
        result_cast: Option<String>,
    },
    /// `...rel(cols)`: a to-one embed's columns flattened into the parent.
    Spread {
        relation: String,
        hint: Option<String>,
        select: Vec<SelectItem>,
    },
}

/// PostgREST's aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggregateFunc {
    pub fn parse(name: &str) -> Option<AggregateFunc> {
        Some(match name {
            "count" => AggregateFunc::Count,
            "sum" => AggregateFunc::Sum,
            "avg" => AggregateFunc::Avg,
            "min" => AggregateFunc::Min,
            "max" => AggregateFunc::Max,
            _ => return None,
        })
    }

    /// The SQL function, also the output key when there is no alias.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunc::Count => "count",
            AggregateFunc::Sum => "sum",
            AggregateFunc::Avg => "avg",
            AggregateFunc::Min => "min",
            AggregateFunc::Max => "max",
        }
    }
}

impl SelectItem {
    /// Whether this item or one nested in it is an aggregate function.
    pub fn has_aggregate(&self) -> bool {
        match self {
            SelectItem::Aggregate { .. } => true,
            SelectItem::Embed { select, .. } | SelectItem::Spread { select, .. } => select.iter().any(SelectItem::has_aggregate),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Left,
    Inner,
}

/// A column with an optional JSON path: `meta->a->>b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub column: String,
    pub path: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    /// `->>` (text) rather than `->` (json).
    pub as_text: bool,
    pub key: PathKey,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathKey {
    Name(String),
    Index(i64),
}

impl Field {
    /// The output name: the last JSON key, else the column.
    pub fn output_name(&self) -> String {
        match self.path.last() {
            Some(PathStep { key: PathKey::Name(n), .. }) => n.clone(),
            Some(PathStep { key: PathKey::Index(_), .. }) | None => self.column.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: Field,
    pub negate: bool,
    pub op: Operation,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Compare {
        op: CompareOp,
        quant: Option<Quantifier>,
        value: String,
    },
    /// `like`/`ilike` with `*` already turned into `%`.
    Like {
        insensitive: bool,
        quant: Option<Quantifier>,
        pattern: String,
    },
    Is(IsValue),
    In(Vec<String>),
    Contains(String),
    ContainedBy(String),
    Overlaps(String),
    Match {
        insensitive: bool,
        pattern: String,
    },
    IsDistinct(String),
    /// `fts`, `plfts`, `phfts`, `wfts`, with the configuration given in parentheses.
    TextSearch {
        kind: basalt_textsearch::Kind,
        config: Option<String>,
        query: String,
    },
}

/// `(any)` / `(all)` modifiers: the value is a `{a,b}` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    NotNull,
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Logic {
    And { negate: bool, items: Vec<Logic> },
    Or { negate: bool, items: Vec<Logic> },
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderTerm {
    /// `rel(col)`: order by a column of an embedded to-one relation.
    pub relation: Option<String>,
    pub field: Field,
    pub desc: bool,
    /// None: PostgreSQL's default (nulls last ascending, first descending).
    pub nulls_first: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPref {
    #[default]
    Minimal,
    Representation,
    HeadersOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPref {
    Exact,
    Planned,
    Estimated,
}

/// `Prefer: tx=`: how the transaction should end, when the server allows overriding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPref {
    Commit,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preferences {
    /// Asked for, but applied (and echoed) only where `db-tx-end` allows overriding.
    pub tx: Option<TxPref>,
    pub return_: Option<ReturnPref>,
    pub count: Option<CountPref>,
    pub resolution: Option<Resolution>,
    pub missing_default: bool,
    /// `max-affected=n` under `handling=strict`: a PATCH or DELETE touching more rows fails
    /// (PGRST124) and is rolled back; without `handling=strict` it is ignored, as in PostgREST.
    pub max_affected: Option<i64>,
    /// What to echo in `Preference-Applied`.
    pub applied: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaType {
    #[default]
    Json,
    SingleObject,
    Csv,
}
