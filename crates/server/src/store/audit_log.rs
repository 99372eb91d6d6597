//! Reading and checking the audit log, on either backend, in one snapshot: the chain head and
//! the entries it covers are read by the same read-only transaction.

use crate::audit::{Entry, Verdict, Walker};
use crate::error::{ApiError, ApiResult};

use super::audit_schema::{PG_ENTRIES, PG_HEAD, SQLITE_ENTRIES, SQLITE_HEAD};
use super::postgres::map_pg_error;
use super::Store;

/// Which entries to list: after an id (oldest first), at most `limit`, optionally of one table
/// or one row.
#[derive(Debug, Clone, Default)]
pub struct EntryQuery {
    pub after: i64,
    pub limit: i64,
    pub table: Option<String>,
    pub row_id: Option<String>,
}

/// Entries per page while checking the chain.
const PAGE: i64 = 1000;

impl Store {
    pub async fn audit_entries(&self, q: EntryQuery) -> ApiResult<Vec<Entry>> {
        match self {
            Store::Sqlite(s) => {
                let path = s.path().to_path_buf();
                blocking(move || {
                    let conn = super::sqlite::open_audit_reader(&path)?;
                    sqlite_page(&conn, &q)
                })
                .await
            }
            Store::Postgres(p) => {
                let client = p.admin_client().await?;
                pg_page(&client, &q).await
            }
        }
    }

    /// Walks the whole chain and compares its end with the chain head.
    pub async fn audit_verify(&self) -> ApiResult<Verdict> {
        match self {
            Store::Sqlite(s) => {
                let path = s.path().to_path_buf();
                blocking(move || {
                    let mut conn = super::sqlite::open_audit_reader(&path)?;
                    let tx = conn.transaction().map_err(ApiError::internal)?;
                    let (seq, hash): (i64, String) =
                        tx.query_row(SQLITE_HEAD, [], |r| Ok((r.get(0)?, r.get(1)?))).map_err(ApiError::internal)?;
                    let mut walker = Walker::default();
                    let mut q = EntryQuery { limit: PAGE, ..Default::default() };
                    loop {
                        let page = sqlite_page(&tx, &q)?;
                        if !walker.check(&page) || (page.len() as i64) < PAGE {
                            break;
                        }
                        q.after = page.last().map_or(q.after, |e| e.id);
                    }
                    Ok(walker.finish(seq, &hash))
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = p.admin_client().await?;
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(map_pg_error)?;
                let head = tx.query_one(PG_HEAD, &[]).await.map_err(map_pg_error)?;
                let (seq, hash): (i64, String) = (head.get(0), head.get(1));
                let mut walker = Walker::default();
                let mut q = EntryQuery { limit: PAGE, ..Default::default() };
                loop {
                    let page = pg_page(&tx, &q).await?;
                    if !walker.check(&page) || (page.len() as i64) < PAGE {
                        break;
                    }
                    q.after = page.last().map_or(q.after, |e| e.id);
                }
                tx.commit().await.map_err(map_pg_error)?;
                Ok(walker.finish(seq, &hash))
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

fn sqlite_page(conn: &rusqlite::Connection, q: &EntryQuery) -> ApiResult<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(SQLITE_ENTRIES).map_err(ApiError::internal)?;
    let rows = stmt
        .query_map(rusqlite::params![q.after, q.limit, q.table, q.row_id], |r| {
            Ok(Entry {
                id: r.get(0)?,
                at: r.get(1)?,
                table_name: r.get(2)?,
                op: r.get(3)?,
                row_id: r.get(4)?,
                old_row: r.get(5)?,
                new_row: r.get(6)?,
                actor_id: r.get(7)?,
                actor_role: r.get(8)?,
                api_key_id: r.get(9)?,
                ip: r.get(10)?,
                user_agent: r.get(11)?,
                request_id: r.get(12)?,
                prev_hash: r.get(13)?,
                hash: r.get(14)?,
            })
        })
        .map_err(ApiError::internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(ApiError::internal)
}

async fn pg_page(client: &impl deadpool_postgres::GenericClient, q: &EntryQuery) -> ApiResult<Vec<Entry>> {
    let rows = client.query(PG_ENTRIES, &[&q.after, &q.limit, &q.table, &q.row_id]).await.map_err(map_pg_error)?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            id: r.get(0),
            at: r.get(1),
            table_name: r.get(2),
            op: r.get(3),
            row_id: r.get(4),
            old_row: r.get(5),
            new_row: r.get(6),
            actor_id: r.get(7),
            actor_role: r.get(8),
            api_key_id: r.get(9),
            ip: r.get(10),
            user_agent: r.get(11),
            request_id: r.get(12),
            prev_hash: r.get(13),
            hash: r.get(14),
        })
        .collect())
}
