//! The live catalogs, one per exposed schema: read by every request, replaced whole when the
//! schema changes (after a migration here, or when another instance announces one over
//! LISTEN/NOTIFY).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use basalt_schema::Catalog;

use crate::auth::service::SignupHook;

pub struct SharedCatalog {
    by_schema: RwLock<HashMap<String, Arc<Catalog>>>,
}

impl SharedCatalog {
    pub fn new(catalogs: Vec<Catalog>) -> Self {
        let cell = SharedCatalog { by_schema: RwLock::new(HashMap::new()) };
        cell.set_all(catalogs);
        cell
    }

    /// One exposed schema's catalog; cheap (one Arc clone), so requests take it once and keep it.
    pub fn schema(&self, name: &str) -> Option<Arc<Catalog>> {
        self.by_schema.read().ok().and_then(|m| m.get(name).cloned())
    }

    /// Replaces every schema's catalog.
    pub fn set_all(&self, catalogs: Vec<Catalog>) {
        let map = catalogs.into_iter().map(|c| (c.schema_name().to_string(), Arc::new(c))).collect();
        if let Ok(mut g) = self.by_schema.write() {
            *g = map;
        }
    }

    /// Rows to insert for each new user, from the `on_signup` of the schema file's tables.
    pub fn signup_hooks(&self) -> Vec<SignupHook> {
        self.schema("public")
            .map(|c| {
                c.tables
                    .values()
                    .filter(|t| !t.on_signup.is_empty())
                    .map(|t| SignupHook { table: t.name.clone(), columns: t.on_signup.clone() })
                    .collect()
            })
            .unwrap_or_default()
    }
}
