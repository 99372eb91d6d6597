//! Plan: the request resolved against the catalog. Every name here exists, every value is
//! typed, so rendering cannot fail. Built by small passes (fields, filters, order, ranges,
//! inner joins), as PostgREST's planner is.

mod access;
mod mutate;
mod read;
mod resolve;
mod rpc;

pub use access::Access;
pub use mutate::plan_mutate;
pub use read::plan_read;
pub use rpc::{plan_rpc, result_catalog, RpcPlan};

use basalt_schema::{Column, ColumnType};

use crate::request::{AggregateFunc, CompareOp, IsValue, PathStep, Quantifier};
use crate::value::Param;

/// A read: one table node with its output fields, conditions, order and window; embeds nest.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    pub table: String,
    pub alias: String,
    pub source: Source,
    /// Rows come from a set-returning function call instead of the table (`/rpc` with `select`).
    pub call: Option<Box<RpcPlan>>,
    pub fields: Vec<OutField>,
    pub conds: Vec<Cond>,
    pub order: Vec<PlanOrder>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl ReadPlan {
    /// Whether the node aggregates: one row per group of its plain columns.
    pub fn grouped(&self) -> bool {
        self.fields.iter().any(|f| matches!(f, OutField::Aggregate { .. }))
    }

    /// The output key of the plain column a grouped node groups `expr` by, if it does: its
    /// rows can be ordered only by those.
    pub fn group_key(&self, expr: &ColExpr) -> Option<&str> {
        self.fields.iter().find_map(|f| match f {
            OutField::Column { key, expr: e } if e.column == expr.column && e.path == expr.path => Some(key.as_str()),
            _ => None,
        })
    }
}

/// Where the root rows come from: the table, or the rows a mutation just touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Table,
    Mutated,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutField {
    Column {
        key: String,
        expr: ColExpr,
    },
    Embed {
        key: String,
        join: Join,
        to_one: bool,
        inner: bool,
        plan: Box<ReadPlan>,
        /// `rel()`: used for filtering only, left out of the output.
        hidden: bool,
    },
    /// `...rel(cols)`: each column of a to-one relation as a field of the parent.
    Spread {
        join: Join,
        plan: Box<ReadPlan>,
    },
    /// An aggregate function over the node's rows, grouped by its `Column` fields.
    Aggregate {
        key: String,
        func: AggregateFunc,
        /// None for `count()`.
        expr: Option<ColExpr>,
        result_cast: Option<ColumnType>,
        /// What the function yields (after `result_cast`), to shape the value on SQLite.
        out_type: ColumnType,
    },
    /// Legacy `rel(count)`: `[{"count": n}]`.
    Count {
        key: String,
        join: Join,
        table: String,
        alias: String,
        /// The child's row-level security (SQLite), so hidden rows are not counted.
        conds: Vec<Cond>,
    },
}

/// How a child node joins its parent: pairs of (parent column, child column), or, for a
/// many-to-many relationship, the junction table between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub parent_alias: String,
    pub pairs: Vec<(String, String)>,
    pub through: Option<Through>,
}

/// A junction table (`posts` <- `post_tags` -> `tags`): a child row belongs to a parent when a
/// junction row points at both, one the caller may see.
#[derive(Debug, Clone, PartialEq)]
pub struct Through {
    pub table: String,
    pub alias: String,
    /// (junction column, parent column) pairs.
    pub parent: Vec<(String, String)>,
    /// (junction column, child column) pairs.
    pub child: Vec<(String, String)>,
    /// The junction's SELECT policies, where the plan carries them (SQLite).
    pub conds: Vec<Cond>,
}

/// A column, possibly followed by JSON path steps and a cast.
#[derive(Debug, Clone, PartialEq)]
pub struct ColExpr {
    pub alias: String,
    pub column: String,
    pub column_type: ColumnType,
    pub path: Vec<PathStep>,
    pub cast: Option<ColumnType>,
}

/// What an expression evaluates to, for typing values and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprType {
    Column(ColumnType),
    /// `->>` : text
    JsonText,
    /// `->` : json
    Json,
}

impl ColExpr {
    pub fn expr_type(&self) -> ExprType {
        if let Some(c) = self.cast {
            return ExprType::Column(c);
        }
        match self.path.last() {
            None => ExprType::Column(self.column_type),
            Some(s) if s.as_text => ExprType::JsonText,
            Some(_) => ExprType::Json,
        }
    }

    /// The type used to coerce a filter value compared with this expression.
    pub fn value_type(&self) -> ColumnType {
        match self.expr_type() {
            ExprType::Column(t) => t,
            ExprType::JsonText => ColumnType::Text,
            ExprType::Json => ColumnType::Jsonb,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Filter {
        lhs: ColExpr,
        negate: bool,
        op: PlanOp,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// A child row exists (inner embeds, `rel=not.is.null`), or not.
    Exists {
        negate: bool,
        table: String,
        alias: String,
        join: Join,
        conds: Vec<Cond>,
    },
    /// A row-level security expression.
    Expr(PExpr),
}

/// A compiled policy expression.
#[derive(Debug, Clone, PartialEq)]
pub enum PExpr {
    Or(Vec<PExpr>),
    And(Vec<PExpr>),
    Not(Box<PExpr>),
    Cmp(PVal, CompareOp, PVal),
    IsNull(PVal, bool),
    In(PVal, Vec<PVal>, bool),
    Exists { table: String, alias: String, cond: Box<PExpr> },
    Truthy(PVal),
    Const(bool),
}

/// A policy operand: a column of a node, or a value (typed like what it is compared with).
#[derive(Debug, Clone, PartialEq)]
pub enum PVal {
    Col { alias: String, column: String, ty: ColumnType },
    Param(Param, Option<ColumnType>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanOp {
    Compare(CompareOp, Param),
    Like {
        insensitive: bool,
        pattern: Param,
    },
    Match {
        insensitive: bool,
        pattern: Param,
    },
    /// `(any)`/`(all)` over compare or like.
    Quantified {
        base: QuantBase,
        quant: Quantifier,
        values: Vec<Param>,
    },
    Is(IsValue),
    /// Values as one JSON array parameter, typed like the left side.
    In(Param),
    Contains(Param),
    ContainedBy(Param),
    Overlaps(Param),
    IsDistinct(Param),
    /// `to_tsvector(config, lhs) @@ <kind>(config, query)`; a `tsvector` column (PostgreSQL,
    /// found by introspection) is matched as it is.
    TextSearch {
        kind: basalt_textsearch::Kind,
        config: Option<String>,
        query: Param,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantBase {
    Compare(CompareOp),
    Like { insensitive: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanOrder {
    pub expr: ColExpr,
    pub desc: bool,
    pub nulls_first: bool,
    /// `order=rel(col)`: `expr` is a column of this embedded to-one row, read by a subquery.
    pub related: Option<RelatedRow>,
}

/// The row of a to-one embed, as its node reads it: the same join, policies and filters.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedRow {
    pub table: String,
    pub alias: String,
    pub join: Join,
    pub conds: Vec<Cond>,
}

/// A write, with the representation to return (shaped by `select=`) when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct MutatePlan<'c> {
    pub table: String,
    pub kind: MutateKind<'c>,
    pub returning: Option<ReadPlan>,
    /// Row-level security: what every written row must satisfy (compiled policies only).
    pub check: Option<(String, Cond)>,
    /// Every column of the table, to evaluate that check on the rows about to be written
    /// (borrowed from the catalog: a plan lives only as long as its request).
    pub table_columns: Vec<&'c Column>,
    /// For a merging upsert: what an existing row must satisfy to be overwritten (UPDATE's USING).
    pub conflict_check: Option<(String, Cond)>,
    /// For a merging upsert: what an overwritten row must satisfy as the upsert leaves it
    /// (UPDATE's WITH CHECK), beside the INSERT check on the proposed row.
    pub conflict_write_check: Option<(String, Cond)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MutateKind<'c> {
    Insert {
        columns: Vec<&'c Column>,
        /// The payload's objects keyed by column name, values canonical for their type; each
        /// dialect decides how to send them (a JSON array, or one row's values bound one by one).
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
        on_conflict: Option<OnConflict>,
        /// Absent keys take the column default (`Prefer: missing=default`).
        missing_default: bool,
    },
    Update {
        alias: String,
        columns: Vec<&'c Column>,
        /// One JSON object keyed by column name.
        values: Param,
        conds: Vec<Cond>,
        touch_updated_at: bool,
        /// A column to assign to itself when the payload sets nothing (PATCH `{}`).
        key_column: String,
        range: Option<WriteRange>,
    },
    Delete {
        alias: String,
        conds: Vec<Cond>,
        range: Option<WriteRange>,
    },
}

/// `limit`/`offset` with `order` on a PATCH or DELETE (PostgREST's limited update and delete):
/// only the rows a read with the same filters, order and range returns are written, picked by a
/// subquery over the table under `alias`.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRange {
    pub alias: String,
    pub conds: Vec<Cond>,
    pub order: Vec<PlanOrder>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnConflict {
    pub columns: Vec<String>,
    /// Columns to overwrite; empty means DO NOTHING.
    pub update: Vec<String>,
    pub touch_updated_at: bool,
}
