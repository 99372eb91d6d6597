//! `GET /rest/v1/`: a Swagger 2.0 document of the tables the caller may reach,
//! generated from the catalog (PostgREST's follow-privileges mode).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use basalt_schema::{Catalog, Table};
use serde_json::{json, Map, Value};

use super::identity::identify;
use super::respond;
use crate::app::AppState;
use crate::auth::Role;

/// The document of the schema `Accept-Profile` names (the default schema otherwise).
pub async fn document(State(app): State<AppState>, method: Method, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let ident = match identify(&app, &headers, q.as_deref().unwrap_or_default()).await {
        Ok(i) => i,
        Err(e) => return respond::error(e),
    };
    let profile = match super::rest::profile(&app, &Method::GET, &headers) {
        Ok(p) => p,
        Err(e) => return respond::error(e),
    };
    let empty = Catalog::default();
    let visible = if ident.role == Role::ServiceRole { profile.catalog.as_ref() } else { &empty };
    let base = if app.config.rest.mount.is_empty() { "/" } else { app.config.rest.mount.as_str() };
    let doc = build(visible, headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"), base);
    let mut res = axum::response::IntoResponse::into_response(axum::Json(doc));
    if method == Method::HEAD {
        *res.body_mut() = axum::body::Body::empty();
    }
    res.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/openapi+json; charset=utf-8"));
    if profile.echo {
        if let Ok(v) = axum::http::HeaderValue::from_str(&profile.name) {
            res.headers_mut().insert("content-profile", v);
        }
    }
    res
}

pub fn build(catalog: &Catalog, host: &str, base_path: &str) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    paths.insert("/".into(), json!({"get": {"tags": ["Introspection"], "summary": "OpenAPI description (this document)", "produces": ["application/openapi+json", "application/json"], "responses": {"200": {"description": "OK"}}}}));
    for t in catalog.tables.values() {
        definitions.insert(t.name.clone(), definition(t));
        let reference = json!({"$ref": format!("#/definitions/{}", t.name)});
        let filters: Vec<Value> = t
            .columns
            .values()
            .map(|c| json!({"name": c.name, "in": "query", "required": false, "type": "string", "format": c.ty.format_name(), "description": "A PostgREST filter, e.g. eq.value"}))
            .collect();
        let mut get_params = filters.clone();
        for p in ["select", "order", "limit", "offset"] {
            get_params.push(json!({"name": p, "in": "query", "required": false, "type": "string"}));
        }
        let body = json!({"name": "body", "in": "body", "required": true, "schema": reference});
        // PUT names the row by its primary key, so it is offered only on tables that have one.
        let put = (!t.primary_key.is_empty()).then(|| {
            let key: Vec<_> = filters.iter().filter(|f| t.primary_key.iter().any(|k| f["name"] == k.as_str())).cloned().map(|mut f| {
                f["required"] = json!(true);
                f
            }).collect();
            json!({"tags": [t.name], "parameters": key.into_iter().chain([body.clone()]).collect::<Vec<_>>(), "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}, "204": {"description": "No Content"}}})
        });
        paths.insert(
            format!("/{}", t.name),
            json!({
                "get": {"tags": [t.name], "summary": t.description, "parameters": get_params, "responses": {"200": {"description": "OK", "schema": {"type": "array", "items": reference}}, "206": {"description": "Partial Content"}}},
                "post": {"tags": [t.name], "parameters": [body, {"name": "select", "in": "query", "type": "string"}], "responses": {"201": {"description": "Created"}}},
                "patch": {"tags": [t.name], "parameters": filters.iter().cloned().chain([body.clone()]).collect::<Vec<_>>(), "responses": {"204": {"description": "No Content"}}},
                "delete": {"tags": [t.name], "parameters": filters, "responses": {"204": {"description": "No Content"}}},
            }),
        );
        if let (Some(put), Some(item)) = (put, paths.get_mut(&format!("/{}", t.name))) {
            item["put"] = put;
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Basalt data API", "description": "PostgREST-compatible API generated from the Basalt schema", "version": env!("CARGO_PKG_VERSION")},
        "host": host,
        "basePath": base_path,
        "schemes": ["http", "https"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": paths,
        "definitions": definitions,
    })
}

fn definition(t: &Table) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for c in t.columns.values() {
        let mut notes = Vec::new();
        if let Some(d) = &c.description {
            notes.push(d.clone());
        }
        if t.primary_key.contains(&c.name) {
            notes.push("Note:\nThis is a Primary Key.<pk/>".into());
        }
        for fk in t.foreign_keys.iter().filter(|f| f.columns.contains(&c.name)) {
            notes.push(format!(
                "Note:\nThis is a Foreign Key to `{}.{}`.<fk table='{}' column='{}'/>",
                fk.ref_table, fk.ref_columns[0], fk.ref_table, fk.ref_columns[0]
            ));
        }
        let mut p = json!({"type": c.ty.json_type(), "format": c.ty.format_name()});
        if c.ty.is_array() {
            p["items"] = json!({"type": "string"});
        }
        if !notes.is_empty() {
            p["description"] = Value::from(notes.join("\n\n"));
        }
        if let Some(ck) = t.checks.iter().find(|k| k.column == c.name) {
            p["enum"] = Value::from(ck.one_of.clone());
        }
        if c.not_null && c.default.is_none() {
            required.push(c.name.clone());
        }
        props.insert(c.name.clone(), p);
    }
    json!({"type": "object", "required": required, "properties": props, "description": t.description})
}
