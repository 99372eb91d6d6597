//! The PostgREST dialect as a pipeline of pure stages:
//! [`parse`] turns the HTTP request into an [`ApiRequest`], [`plan`] resolves it against the
//! catalog into a [`plan::ReadPlan`] or [`plan::MutatePlan`], and [`sql`] renders the plan for
//! a dialect as SQL text with bound parameters. Nothing here does IO.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod parse;
pub mod plan;
pub mod request;
pub mod sql;
pub mod value;

pub use error::{Error, Result};
pub use request::ApiRequest;
