//! The one SQLite write connection, run by whichever thread asks first: a write is queued, and the
//! thread that finds nobody writing becomes the writer and runs the queue, a group per turn, until
//! it is empty. Writes that arrive meanwhile join a group and are answered after its commit
//! (group commit).
//!
//! Why not a writer thread of its own (as until 2026-12-06): each write then cost two wake-ups
//! across threads (the request's worker waking the writer, the writer waking the worker back),
//! and on a 2-core VM whose idle cores halt, those hand-offs, not the CPU, bounded audited
//! inserts (bench/README, thirteenth and fourteenth rounds). Here the worker that parsed a write
//! usually runs it too, and a writer with nothing queued goes back to serving requests instead
//! of sleeping.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use super::sqlite::{try_lock, Snapshots};

/// What the writer runs: writes, grouped into one transaction, or exclusive work.
pub(super) enum Job {
    Write(WriteWork),
    Exclusive(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// One write: runs on the group's connection (or learns that the group could not start).
pub(super) type WriteWork = Box<dyn for<'a> FnOnce(Result<&'a Connection, String>) -> Finish + Send>;

/// Delivers a write's result once its group has committed (or failed to).
pub(super) type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Most writes committed together; a bound keeps the first one's latency in check.
const GROUP_LIMIT: usize = 64;

/// Jobs waiting, and whether a thread is running them.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    leading: bool,
}

pub(super) struct Writer {
    queue: Mutex<Queue>,
    /// Locked only by the thread leading; a mutex so that leadership may move between threads.
    conn: Mutex<Connection>,
    /// Set by the checkpoint thread when the WAL should start over (see [`checkpoint_loop`]).
    restart: Arc<AtomicBool>,
    snapshots: Snapshots,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The right to run the queue, held by the leading thread or by a continuation not yet run.
/// Ending without handing it on (a panic, or a runtime that drops a continuation unrun at
/// shutdown) abandons it: see [`Writer::abandon`]. No queued write then waits for good.
struct Leadership(Option<Arc<Writer>>);

impl Leadership {
    fn writer(&self) -> Arc<Writer> {
        self.0.clone().expect("leadership is held")
    }

    /// Leadership was given up through the queue: nothing to abandon.
    fn released(mut self) {
        self.0 = None;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take() {
            writer.abandon();
        }
    }
}

impl Writer {
    pub(super) fn new(conn: Connection, restart: Arc<AtomicBool>, snapshots: Snapshots) -> Writer {
        Writer { queue: Mutex::new(Queue::default()), conn: Mutex::new(conn), restart, snapshots }
    }

    #[cfg(test)]
    pub(super) fn restart_flag(&self) -> &AtomicBool {
        &self.restart
    }

    /// Queues `job`; if no thread is writing, runs the queue on this one until it is empty.
    /// Returns once the job is queued or done: its own callbacks deliver its result.
    pub(super) fn run(self: &Arc<Self>, job: Job) {
        {
            let mut q = lock(&self.queue);
            q.jobs.push_back(job);
            if q.leading {
                return;
            }
            q.leading = true;
        }
        self.lead(Leadership(Some(self.clone())));
    }

    /// Runs queued jobs until there are none, one group per turn on an async worker: when more
    /// are queued after a group, a task of its own takes the next, so the worker first answers
    /// the request that made it the writer (a worker that kept writing while others fed the
    /// queue would hold that answer back for as long). A restarting checkpoint (it waits for
    /// readers and syncs the WAL, up to 15 ms) moves the writer to a blocking thread instead, so
    /// that no async worker waits for it.
    fn lead(self: &Arc<Self>, leadership: Leadership) {
        let mut conn = lock(&self.conn);
        let rt = tokio::runtime::Handle::try_current().ok();
        while let Some(job) = self.next(true) {
            self.run_one(&mut conn, job);
            let restart = self.restart.swap(false, Ordering::Relaxed);
            let Some(rt) = &rt else {
                if restart {
                    self.restart_wal(&conn);
                }
                continue;
            };
            if restart && rt.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
                drop(conn);
                rt.spawn_blocking(move || {
                    let writer = leadership.writer();
                    writer.restart_wal(&lock(&writer.conn));
                    writer.lead(leadership);
                });
                return;
            }
            if restart {
                self.restart_wal(&conn);
            }
            if !lock(&self.queue).jobs.is_empty() {
                drop(conn);
                rt.spawn(async move {
                    let writer = leadership.writer();
                    writer.lead(leadership);
                });
                return;
            }
        }
        drop(conn);
        leadership.released();
    }

    /// Leadership ended without being handed on: a transaction left open is rolled back, this
    /// thread's write state cleared, the writes still queued are answered with an error, and
    /// the next write to come leads again.
    fn abandon(&self) {
        super::sqlite_functions::set_transaction_time(None);
        super::sqlite_functions::set_actor(None);
        if let Some(conn) = try_lock(&self.conn) {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        let jobs = {
            let mut q = lock(&self.queue);
            q.leading = false;
            std::mem::take(&mut q.jobs)
        };
        if std::thread::panicking() {
            tracing::error!(queued = jobs.len(), "the SQLite writer panicked; the writes queued are answered with an error");
        } else if !jobs.is_empty() {
            tracing::warn!(
                queued = jobs.len(),
                "the SQLite writer's task was dropped (shutdown); the writes queued are answered with an error"
            );
        }
        for job in jobs {
            if let Job::Write(w) = job {
                let why = "the SQLite writer stopped before this write ran".to_string();
                w(Err(why.clone()))(Err(why));
            }
        }
    }

    /// The next queued job; when there is none and `last`, gives up leadership in the same step,
    /// so a job queued after this look finds nobody leading and runs itself.
    fn next(&self, last: bool) -> Option<Job> {
        let mut q = lock(&self.queue);
        let job = q.jobs.pop_front();
        if job.is_none() && last {
            q.leading = false;
        }
        job
    }

    /// Lets the WAL start over, after answering a group: it waits for the readers of this
    /// moment, and only writes still queued wait for it (the write lock is the leader's, so
    /// nobody polls for it). Idle readers let their snapshots go now, busy ones after their read
    /// (a snapshot kept until the next commit would hold it up to SNAPSHOT_MAX_AGE, the mix's p99
    /// in bench/run).
    fn restart_wal(&self, conn: &Connection) {
        self.snapshots.restarting.store(true, Ordering::Release);
        self.snapshots.end_stale(std::time::Duration::ZERO);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite checkpoint (restart) failed");
        }
        self.snapshots.restarting.store(false, Ordering::Release);
    }

    /// Runs exclusive work alone, or opens one transaction, runs `first` and every write queued
    /// meanwhile (each in its own savepoint), commits once, then answers them all.
    fn run_one(&self, conn: &mut Connection, job: Job) {
        let commits: &AtomicU64 = &self.snapshots.commits;
        let first = match job {
            Job::Exclusive(work) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn))).is_err() {
                    tracing::error!("exclusive work on the SQLite writer panicked");
                    let _ = conn.execute_batch("ROLLBACK");
                }
                commits.fetch_add(1, Ordering::Release);
                return;
            }
            Job::Write(w) => w,
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            first(Err(e.to_string()))(Err(e.to_string()));
            return;
        }
        super::sqlite_functions::set_transaction_time(Some(chrono::Utc::now()));
        let mut finishers = vec![first(Ok(conn))];
        let mut exclusive = None;
        while finishers.len() < GROUP_LIMIT {
            match self.next(false) {
                Some(Job::Write(w)) => finishers.push(w(Ok(conn))),
                Some(other) => {
                    exclusive = Some(other);
                    break;
                }
                None => break,
            }
        }
        super::sqlite_functions::set_transaction_time(None);
        let outcome = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            format!("commit failed: {e}")
        });
        commits.fetch_add(1, Ordering::Release);
        for finish in finishers {
            finish(outcome.clone());
        }
        if let Some(job) = exclusive {
            self.run_one(conn, job);
        }
    }
}

/// The writer waits for readers (a restarting checkpoint) and other processes in steps of 100 µs,
/// for about 5 s: SQLite's default waits 1, 2, 5, 10 ms..., long beside the reads it waits for.
pub(super) fn writer_busy(attempts: i32) -> bool {
    std::thread::sleep(std::time::Duration::from_micros(100));
    attempts < 30_000
}

/// Copies the WAL back into the database every 250 ms without blocking anyone (a passive
/// checkpoint: the longer the interval, the more often a hot page is copied once for several
/// commits; against 100 ms, audited inserts +11-13 % with p99 15 -> 20-22 ms, the 90/10 mix +10 %
/// with p99 unchanged; before the in-memory sub-journal, 200 ms had cost 10 ms of p99). Readers
/// that never pause would keep the WAL from starting over, so past 4096 pages (16 MiB) it asks
/// the writer to run a restarting checkpoint after its next commit, which waits for the readers
/// of that moment and lets the WAL start over. (Run from this thread, the restart and the writer
/// polled for each other's lock: insert p99 40-55 ms in bench/run.) The restart copies, and
/// syncs, what was written since the last passive checkpoint began, with writes waiting. So first
/// passive checkpoints run back to back, each followed by a sync of the database file `db`, until
/// one such round is quick or had little to copy ([`catch_up`]): each has only what came during
/// the one before, and the restart is left the frames, and the database pages to sync, of a few
/// milliseconds. (A passive checkpoint that writes come after syncs the WAL but not the database
/// file: SQLite syncs that only once it has copied the whole WAL, so the restart's sync wrote out
/// every page copied since the restart before. Restarts took 60-70 ms at 10k audited inserts a
/// second, 11-18 ms now: bench/README, seventeenth round.) `db` is never closed (the thread runs
/// as long as the process): closing a descriptor of the file would drop the POSIX locks that
/// SQLite's connections in this process hold on it.
pub(super) fn checkpoint_loop(conn: Connection, db: std::mem::ManuallyDrop<std::fs::File>, restart: Arc<AtomicBool>) {
    const RESTART_PAGES: i64 = 4096;
    let passive = || conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)));
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        match passive() {
            Ok((frames, copied)) if frames >= RESTART_PAGES => {
                if catch_up(passive, || db.sync_data(), copied) {
                    restart.store(true, Ordering::Relaxed)
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
    }
}

/// A round of the catch-up that takes less is quick.
const CATCH_UP_QUICK: std::time::Duration = std::time::Duration::from_millis(4);
/// A round that copied fewer frames (1 MiB of 4 KiB pages) had little to do, even where a sync
/// alone takes longer than [`CATCH_UP_QUICK`] (a disk that spins, a network volume).
const CATCH_UP_FEW: i64 = 256;
/// At most this many rounds: writes that come faster than a checkpoint copies them would never
/// let one be quick.
const CATCH_UP_MOST: usize = 8;

/// Runs `passive` (a passive checkpoint: frames in the WAL, frames copied back so far), each time
/// followed by `sync` of the database file, until a round is quick or had little to copy, from
/// `copied` frames copied back before the first. False when a checkpoint or a sync failed: the
/// restart, which would fail the same way with writes waiting, is then not asked for.
fn catch_up(passive: impl Fn() -> rusqlite::Result<(i64, i64)>, sync: impl Fn() -> std::io::Result<()>, mut copied: i64) -> bool {
    for _ in 0..CATCH_UP_MOST {
        let started = std::time::Instant::now();
        let (frames, now_copied) = match passive() {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "SQLite checkpoint failed");
                return false;
            }
        };
        if let Err(e) = sync() {
            tracing::warn!(error = %e, "syncing the SQLite database file failed");
            return false;
        }
        // -1: another checkpoint was running (SQLite's own restart, say); nothing to wait for.
        if frames < 0 {
            return true;
        }
        // Counted from 0 again when the WAL started over meanwhile.
        let this_round = if now_copied >= copied { now_copied - copied } else { now_copied };
        copied = now_copied;
        if this_round < CATCH_UP_FEW || started.elapsed() < CATCH_UP_QUICK {
            return true;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::portable::Stmt;
    use super::super::sqlite::SqliteStore;
    use super::{lock, Leadership};

    /// The catch-up stops at the first round that had little to copy, at a bound when every
    /// round is busy, and at once, without asking for the restart, when a checkpoint or a sync
    /// fails. Each fake round takes longer than a quick one, so only the counts decide.
    #[test]
    fn catch_up_stops_when_little_is_left() {
        use std::cell::Cell;
        let slow = || std::thread::sleep(super::CATCH_UP_QUICK + std::time::Duration::from_millis(1));
        let run = |copied_after: &[i64], fail_round: Option<usize>, fail_sync: bool| {
            let (rounds, syncs) = (Cell::new(0), Cell::new(0));
            let passive = || {
                slow();
                let i = rounds.get();
                rounds.set(i + 1);
                if fail_round == Some(i) {
                    return Err(rusqlite::Error::InvalidQuery);
                }
                let c = copied_after[i.min(copied_after.len() - 1)];
                Ok((c + 50, c))
            };
            let sync = || {
                syncs.set(syncs.get() + 1);
                if fail_sync {
                    return Err(std::io::Error::other("disk gone"));
                }
                Ok(())
            };
            let asked = super::catch_up(passive, sync, 10_000);
            (asked, rounds.get(), syncs.get())
        };
        // 5,000 frames, then 1,000, then 100: done after the third round.
        assert_eq!(run(&[15_000, 16_000, 16_100, 30_000], None, false), (true, 3, 3));
        // The WAL started over meanwhile: its counts begin again from 0.
        assert_eq!(run(&[5_000, 5_100], None, false), (true, 2, 2));
        // Always a lot to copy: the bound.
        let busy: Vec<i64> = (1..=20).map(|i| 10_000 + i * 5_000).collect();
        assert_eq!(run(&busy, None, false), (true, super::CATCH_UP_MOST, super::CATCH_UP_MOST));
        assert_eq!(run(&busy, Some(1), false), (false, 2, 1));
        assert_eq!(run(&busy, None, true), (false, 1, 1));
    }

    /// A leader that vanishes (its task dropped unrun, say) leaves no write waiting for good:
    /// the queued one is answered with an error, and the next write leads again.
    #[test]
    fn abandoned_leadership_answers_the_queue_and_frees_the_writer() {
        let dir = std::env::temp_dir().join(format!("basalt-writer-{}", uuid::Uuid::new_v4()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = Arc::new(SqliteStore::open(&dir, 5_000).unwrap());
            let writer = store.writer().clone();
            lock(&writer.queue).leading = true;
            let create = || vec![Stmt::new("CREATE TABLE t (n INTEGER)", vec![])];
            let queued = tokio::spawn({
                let store = store.clone();
                async move { store.batch(create()).await }
            });
            while lock(&writer.queue).jobs.is_empty() {
                tokio::task::yield_now().await;
            }
            drop(Leadership(Some(writer.clone())));
            let answer = tokio::time::timeout(std::time::Duration::from_secs(10), queued).await.expect("answered").unwrap();
            assert!(answer.is_err());
            assert!(!lock(&writer.queue).leading);
            store.batch(create()).await.expect("the next write leads");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
