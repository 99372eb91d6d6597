//! The live catalog: read by every request, replaced whole when the schema changes
//! (after a migration here, or when another instance announces one over LISTEN/NOTIFY).

use std::sync::{Arc, RwLock};

use basalt_schema::Catalog;

use crate::auth::service::SignupHook;

#[derive(Default)]
pub struct SharedCatalog(RwLock<Arc<Catalog>>);

impl SharedCatalog {
    pub fn new(c: Catalog) -> Self {
        SharedCatalog(RwLock::new(Arc::new(c)))
    }

    /// The current catalog; cheap (one Arc clone), so requests take it once and keep it.
    pub fn get(&self) -> Arc<Catalog> {
        self.0.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn set(&self, c: Catalog) {
        if let Ok(mut g) = self.0.write() {
            *g = Arc::new(c);
        }
    }

    /// Rows to insert for each new user, from the tables' `on_signup`.
    pub fn signup_hooks(&self) -> Vec<SignupHook> {
        self.get()
            .tables
            .values()
            .filter(|t| !t.on_signup.is_empty())
            .map(|t| SignupHook { table: t.name.clone(), columns: t.on_signup.clone() })
            .collect()
    }
}
