//! Reading, sealing and checking the audit log. Checks read the chain head and the entries it
//! covers in one read-only snapshot. On PostgreSQL, entries are appended by the trigger without
//! a lock and sealed into the chain here, by one instance at a time (an advisory lock), oldest
//! first: every instance runs a sealer a few times a second, and reads of the log seal first.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use crate::audit::{seal, Entry, Verdict, Walker};
use crate::error::{ApiError, ApiResult};

use super::audit_schema as sql;
use super::postgres::{map_pg_error, PgStore};
use super::Store;

/// Which entries to list: after a chain position (`seq`; on SQLite the same as `id`), oldest
/// first, at most `limit`, optionally of one table, one row or one actor.
#[derive(Debug, Clone, Default)]
pub struct EntryQuery {
    pub after: i64,
    pub limit: i64,
    pub table: Option<String>,
    pub row_id: Option<String>,
    pub actor_id: Option<String>,
}

impl EntryQuery {
    fn filters(&self) -> sql::Filters {
        sql::Filters { table: self.table.is_some(), row: self.row_id.is_some(), actor: self.actor_id.is_some() }
    }
}

/// Entries per page while checking or sealing the chain.
const PAGE: i64 = 1000;

/// How often each PostgreSQL instance looks for entries to seal.
const SEAL_EVERY: Duration = Duration::from_millis(200);

impl Store {
    pub async fn audit_entries(&self, q: EntryQuery) -> ApiResult<Vec<Entry>> {
        match self {
            Store::Sqlite(s) => {
                let path = s.path().to_path_buf();
                blocking(move || {
                    let conn = super::sqlite::open_audit_reader(&path)?;
                    sqlite_rows(
                        &conn,
                        &sql::sqlite_entries(q.filters()),
                        rusqlite::params![q.after, q.limit, q.table, q.row_id, q.actor_id],
                    )
                })
                .await
            }
            Store::Postgres(p) => {
                pg_seal(p, true).await?;
                let client = p.admin_client().await?;
                pg_rows(&client, &sql::pg_entries(q.filters()), &[&q.after, &q.limit, &q.table, &q.row_id, &q.actor_id]).await
            }
        }
    }

    /// Walks the whole chain and compares its end with the chain head.
    pub async fn audit_verify(&self) -> ApiResult<Verdict> {
        match self {
            Store::Sqlite(s) => {
                let path = s.path().to_path_buf();
                // The head first, then the entries it covers a page at a time, each page a short
                // read of its own: the log only grows, and one long read would hold back the
                // writer's restarting checkpoint (and every write queued behind it).
                blocking(move || {
                    let conn = super::sqlite::open_audit_reader(&path)?;
                    let (seq, hash): (i64, String) =
                        conn.query_row(sql::SQLITE_HEAD, [], |r| Ok((r.get(0)?, r.get(1)?))).map_err(ApiError::internal)?;
                    let (mut walker, mut after) = (Walker::default(), 0);
                    loop {
                        let page = sqlite_rows(&conn, &sql::sqlite_chain(), rusqlite::params![after, PAGE, seq])?;
                        if !walker.check(&page) || (page.len() as i64) < PAGE {
                            break;
                        }
                        after = page.last().map_or(after, |e| e.id);
                    }
                    Ok(walker.finish(seq, &hash, 0))
                })
                .await
            }
            Store::Postgres(p) => {
                pg_seal(p, true).await?;
                let mut client = p.admin_client().await?;
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(map_pg_error)?;
                let head = tx.query_one(sql::PG_HEAD, &[]).await.map_err(map_pg_error)?;
                let (seq, hash): (i64, String) = (head.get(0), head.get(1));
                let (mut walker, mut after) = (Walker::default(), 0i64);
                loop {
                    let page = pg_rows(&tx, &sql::pg_chain(), &[&after, &PAGE]).await?;
                    if !walker.check(&page) || (page.len() as i64) < PAGE {
                        break;
                    }
                    after = page.last().and_then(|e| e.seq).unwrap_or(after);
                }
                let unsealed: i64 = tx.query_one(sql::PG_UNSEALED_COUNT, &[]).await.map_err(map_pg_error)?.get(0);
                tx.commit().await.map_err(map_pg_error)?;
                Ok(walker.finish(seq, &hash, unsealed))
            }
        }
    }
}

impl PgStore {
    /// Seals committed entries into the chain a few times a second, for as long as the server runs.
    pub fn start_audit_sealer(self: &std::sync::Arc<Self>) {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SEAL_EVERY).await;
                if let Err(e) = seal_if_needed(&store).await {
                    tracing::warn!(error = %e, "audit sealer");
                }
            }
        });
    }
}

async fn seal_if_needed(p: &PgStore) -> ApiResult<()> {
    let client = p.admin_client().await?;
    let any: bool = client.query_one(sql::PG_ANY_UNSEALED, &[]).await.map_err(map_pg_error)?.get(0);
    drop(client);
    if any {
        pg_seal(p, false).await?;
    }
    Ok(())
}

/// Seals every committed entry, a page per transaction. With `wait`, waits for another
/// instance's sealer to finish first (reads of the log want everything sealed); without, leaves
/// the work to it.
async fn pg_seal(p: &PgStore, wait: bool) -> ApiResult<()> {
    let mut client = p.admin_client().await?;
    loop {
        let tx = client.transaction().await.map_err(map_pg_error)?;
        if wait {
            tx.execute(sql::PG_SEAL_LOCK, &[]).await.map_err(map_pg_error)?;
        } else if !tx.query_one(sql::PG_TRY_SEAL_LOCK, &[]).await.map_err(map_pg_error)?.get::<_, bool>(0) {
            return Ok(());
        }
        let head = tx.query_one(sql::PG_HEAD, &[]).await.map_err(map_pg_error)?;
        let (seq, hash): (i64, String) = (head.get(0), head.get(1));
        let mut page = pg_rows(&tx, &sql::pg_unsealed(), &[&PAGE]).await?;
        if page.is_empty() {
            return tx.commit().await.map_err(map_pg_error);
        }
        let (new_seq, new_hash) = seal(seq, &hash, &mut page);
        let ids: Vec<i64> = page.iter().map(|e| e.id).collect();
        let seqs: Vec<i64> = page.iter().filter_map(|e| e.seq).collect();
        let prevs: Vec<String> = page.iter().filter_map(|e| e.prev_hash.clone()).collect();
        let hashes: Vec<String> = page.iter().filter_map(|e| e.hash.clone()).collect();
        tx.execute(sql::PG_SEAL, &[&ids, &seqs, &prevs, &hashes]).await.map_err(map_pg_error)?;
        tx.execute(sql::PG_SET_HEAD, &[&new_seq, &new_hash]).await.map_err(map_pg_error)?;
        tx.commit().await.map_err(map_pg_error)?;
        if (page.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// A column as text, whatever SQLite holds there: an entry edited to hold something else must
/// fail the chain check, not the read.
fn sqlite_text(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Option<String>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    })
}

fn sqlite_rows(conn: &rusqlite::Connection, query: &str, params: impl rusqlite::Params) -> ApiResult<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(query).map_err(ApiError::internal)?;
    let rows = stmt
        .query_map(params, |r| Ok(Entry::from_columns(r.get(0)?, r.get(1)?, |i| sqlite_text(r, i).ok().flatten())))
        .map_err(ApiError::internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(ApiError::internal)
}

async fn pg_rows(client: &impl GenericClient, query: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> ApiResult<Vec<Entry>> {
    let rows = client.query(query, params).await.map_err(map_pg_error)?;
    // `try_get`: a row edited into something unexpected fails the chain check instead of panicking.
    Ok(rows
        .iter()
        .map(|r| {
            Entry::from_columns(r.try_get(0).unwrap_or_default(), r.try_get(1).ok().flatten(), |i| {
                r.try_get::<_, Option<String>>(i).ok().flatten()
            })
        })
        .collect())
}
