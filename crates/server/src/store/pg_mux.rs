//! Plain reads of many requests share a few PostgreSQL connections, pipelined. Each request's
//! context and statement still go under a `Sync` of their own (one implicit transaction, its
//! settings local to it, an error skipping only its own statements), but the requests that
//! arrive while a connection is busy are written together and answered together: PostgreSQL
//! wakes once for the lot instead of once per request, which on a machine that shares its cores
//! with the database is most of what a read costs it (bench/README.md, twentieth round).
//!
//! A writer task takes the queued requests, prepares the statements new to the connection
//! (under a `Sync` of their own, before the request, as [`super::pg_pipeline`] does in a round
//! trip of its own) and writes them all at once; a reader task matches the answers to the
//! requests in order. A request whose caller went away is still read and thrown away, so the
//! connection stays usable. A request waits behind those written before it on the same
//! connection, so a connection that has made no progress for a while, or has many requests in
//! flight, is passed over; when every connection is, the caller uses a pooled connection of its
//! own instead. Function calls (`/rpc`) never come here: a function may change its session,
//! which on a shared connection would reach other callers at once.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::pg_pipeline::{bind_execute, Answer, Answers, DbError, PipeConn, PipeError, Step, Stream, Target, MAX_PREPARED, TEXT_OID};

/// Requests in flight on one connection beyond which it is passed over.
const MAX_DEPTH: usize = 32;
/// A connection with requests in flight that has answered none for this long is passed over:
/// whatever it is running holds up every request behind it.
const STALL_MS: u64 = 20;
/// Requests written in one go, at most.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Vec<Answer>, PipeError>>;

/// One request: its statements (SQL and text parameters), owned to cross to the writer.
struct Job {
    steps: Vec<(Box<str>, Vec<Option<String>>)>,
    reply: Reply,
}

/// Statements a request parses before it runs: (SQL, name).
type Parsed = Vec<(Box<str>, Box<str>)>;

/// What the reader expects next, in the order it was written.
enum Pending {
    /// Statements parsed for the request after it: each becomes usable by later requests once
    /// PostgreSQL says it parsed.
    Prepare(Parsed),
    Request {
        reply: Reply,
        steps: usize,
    },
}

/// The entries the reader has still to answer; `closed` once it has stopped, so the writer
/// never queues an entry nobody will answer.
#[derive(Default)]
struct Queue {
    entries: VecDeque<Pending>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Queue>,
    /// Wakes the writer when the reader stops, so it does not wait on a socket nobody reads.
    reader_gone: tokio::sync::Notify,
    /// Statement SQL to name, for statements PostgreSQL has parsed. A request that needs one
    /// not yet confirmed parses its own, so no request depends on another's `Parse`.
    /// Keyed with foldhash: the key is the statement's whole text, hashed for every request.
    prepared: Mutex<foldhash::HashMap<Box<str>, Box<str>>>,
    broken: AtomicBool,
    /// Takes no new requests but serves those already queued (it has prepared too many
    /// statements); the pool opens another in its place.
    retiring: AtomicBool,
    /// Requests handed to the connection and not yet answered, whether or not their callers
    /// still wait: a read whose caller gave up still holds up those behind it.
    in_flight: AtomicUsize,
    /// When the connection last answered a request, or last went from idle to busy (ms since
    /// `epoch`).
    progress: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request answered (or refused before it was sent).
    fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One multiplexed connection.
pub struct MuxConn {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

impl MuxConn {
    /// Connects as [`PipeConn`] does, then hands the stream to a writer and a reader task.
    async fn connect(target: &Target) -> Result<MuxConn, PipeError> {
        let stream = PipeConn::connect(target).await?.into_stream();
        let (read, write) = tokio::io::split(stream);
        let (jobs, queue) = mpsc::unbounded_channel();
        let epoch = Instant::now();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Queue::default()),
            reader_gone: tokio::sync::Notify::new(),
            prepared: Mutex::new(foldhash::HashMap::default()),
            broken: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            epoch,
        });
        tokio::spawn(write_loop(write, queue, shared.clone()));
        tokio::spawn(read_loop(read, shared.clone()));
        Ok(MuxConn { jobs, shared })
    }

    fn usable(&self) -> bool {
        !self.shared.broken.load(Ordering::Acquire) && !self.shared.retiring.load(Ordering::Acquire)
    }

    /// Runs the steps under one `Sync`, as [`PipeConn::run`], pipelined with other callers'.
    pub async fn run(&self, steps: &[Step<'_>]) -> Result<Vec<Answer>, PipeError> {
        let owned = steps.iter().map(|s| (Box::<str>::from(s.sql), s.params.iter().map(|p| p.map(str::to_string)).collect())).collect();
        let (reply, answer) = oneshot::channel();
        if self.shared.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.shared.progress.store(self.shared.now(), Ordering::Release);
        }
        if self.jobs.send(Job { steps: owned, reply }).is_err() {
            self.shared.answered();
            return Err(closed());
        }
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> PipeError {
    PipeError::Io(io::ErrorKind::UnexpectedEof.into())
}

/// Writes queued requests in batches, preparing what the connection has not seen.
async fn write_loop(mut write: WriteHalf<Stream>, mut queue: mpsc::UnboundedReceiver<Job>, shared: Arc<Shared>) {
    let mut out = BytesMut::with_capacity(8192);
    let mut statements = 0u64;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // The writer is woken by the first request queued, usually before the other requests
        // that are ready to run have been parsed: let them run first and queue theirs, so that
        // one write (and one wake-up of PostgreSQL) carries them all.
        if batch.len() < MAX_BATCH {
            behind_the_ready_tasks().await;
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        {
            let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            let prepared = shared.prepared.lock().unwrap_or_else(|e| e.into_inner());
            for job in batch.drain(..) {
                // The reader has stopped: nobody would answer.
                if pending.closed || shared.broken.load(Ordering::Acquire) {
                    shared.answered();
                    let _ = job.reply.send(Err(closed()));
                    continue;
                }
                let start = out.len();
                match encode(&job, &mut out, &prepared, &mut statements) {
                    Ok(parsed) => {
                        if !parsed.is_empty() {
                            pending.entries.push_back(Pending::Prepare(parsed));
                        }
                        pending.entries.push_back(Pending::Request { reply: job.reply, steps: job.steps.len() });
                    }
                    Err(e) => {
                        out.truncate(start);
                        shared.answered();
                        let _ = job.reply.send(Err(e));
                    }
                }
            }
            // A connection that has prepared this many statements takes no more requests; the
            // pool opens a new one.
            if statements as usize > MAX_PREPARED {
                shared.retiring.store(true, Ordering::Release);
            }
        }
        if out.is_empty() {
            continue;
        }
        let written = async {
            write.write_all(&out).await?;
            write.flush().await
        };
        // A reader that stopped reads no more, and a server that cannot send stops reading:
        // the write would wait for good.
        let ok = tokio::select! {
            r = written => r.is_ok(),
            _ = shared.reader_gone.notified() => false,
        };
        out.clear();
        if !ok {
            shared.broken.store(true, Ordering::Release);
            break;
        }
    }
    // No more requests will come (the pool dropped the connection, or it broke): say goodbye,
    // which ends the reader once the answers still due are read. Within a second: the other end
    // may have stopped reading.
    frontend::terminate(&mut out);
    let goodbye = async {
        write.write_all(&out).await?;
        write.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), goodbye).await;
}

/// Comes back after the tasks already queued on this worker have run. Not tokio's `yield_now`,
/// which under load waits for the worker's next look at the I/O driver, dozens of tasks later;
/// a task that wakes itself goes to the back of the worker's queue.
async fn behind_the_ready_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| match std::mem::replace(&mut yielded, true) {
        true => std::task::Poll::Ready(()),
        false => {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// One request's messages: `Parse`s (and their `Sync`) for statements new to the connection,
/// then `Bind`/`Execute` for each step and a `Sync`. Returns the statements it parsed, whose
/// names later requests take once PostgreSQL confirms them.
fn encode(
    job: &Job,
    out: &mut BytesMut,
    prepared: &foldhash::HashMap<Box<str>, Box<str>>,
    statements: &mut u64,
) -> Result<Parsed, PipeError> {
    let mut parsed: Parsed = Vec::new();
    let mut names = Vec::with_capacity(job.steps.len());
    for (sql, params) in &job.steps {
        let known = prepared.get(sql).or_else(|| parsed.iter().find(|(s, _)| s == sql).map(|(_, n)| n));
        let name = match known {
            Some(name) => name.clone(),
            None => {
                *statements += 1;
                let name: Box<str> = format!("m{statements}").into();
                let types = std::iter::repeat_n(TEXT_OID, params.len());
                if let Err(e) = frontend::parse(&name, sql, types, out) {
                    return Err(PipeError::Protocol(format!("cannot send the statement: {e}")));
                }
                parsed.push((sql.clone(), name.clone()));
                name
            }
        };
        names.push(name);
    }
    if !parsed.is_empty() {
        frontend::sync(out);
    }
    for ((_, params), name) in job.steps.iter().zip(&names) {
        bind_execute(name, params.iter().map(Option::as_deref), out)?;
    }
    frontend::sync(out);
    Ok(parsed)
}

/// Reads the answers and hands each request its own, in the order they were written.
async fn read_loop(mut read: ReadHalf<Stream>, shared: Arc<Shared>) {
    let mut input = BytesMut::with_capacity(16384);
    // TLS reads only into initialized memory: reading straight into `input`'s spare capacity
    // would zero all of it before every read.
    let mut scratch = vec![0u8; 16384];
    let mut answers = Answers::default();
    let mut error: Option<DbError> = None;
    // A failed `Parse` fails the request it was sent for.
    let mut carried: Option<DbError> = None;
    // The statements of the `Prepare` being answered, in the order of their `ParseComplete`s.
    let mut parsing: VecDeque<(Box<str>, Box<str>)> = VecDeque::new();
    loop {
        let message = match Message::parse(&mut input) {
            Ok(Some(m)) => m,
            Ok(None) => match read.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    input.extend_from_slice(&scratch[..n]);
                    continue;
                }
            },
            Err(_) => break,
        };
        match message {
            Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_) => {}
            Message::ParseComplete => {
                if parsing.is_empty() {
                    if let Some(Pending::Prepare(list)) = shared.pending.lock().unwrap_or_else(|e| e.into_inner()).entries.front_mut() {
                        parsing.extend(list.drain(..));
                    }
                }
                if let Some((sql, name)) = parsing.pop_front() {
                    shared.prepared.lock().unwrap_or_else(|e| e.into_inner()).entry(sql).or_insert(name);
                }
            }
            Message::BindComplete | Message::NoData => {}
            Message::DataRow(body) => answers.row(body),
            Message::CommandComplete(body) => {
                if answers.complete(&body).is_err() {
                    break;
                }
            }
            Message::EmptyQueryResponse => answers.empty(),
            Message::ErrorResponse(body) => match DbError::parse(body.fields()) {
                Ok(e) => error = Some(e),
                Err(_) => break,
            },
            Message::ReadyForQuery(body) => {
                // A transaction left open would carry over into the next caller's statements.
                if body.status() != b'I' {
                    shared.broken.store(true, Ordering::Release);
                }
                let next = shared.pending.lock().unwrap_or_else(|e| e.into_inner()).entries.pop_front();
                let done = std::mem::take(&mut answers);
                match next {
                    Some(Pending::Prepare(_)) => {
                        parsing.clear();
                        carried = error.take();
                    }
                    Some(Pending::Request { reply, steps }) => {
                        shared.progress.store(shared.now(), Ordering::Release);
                        shared.answered();
                        let result = match carried.take().or(error.take()) {
                            Some(e) => {
                                // A statement gone from the server, or one whose result changed
                                // shape, stays so on this connection: it takes no more requests.
                                if e.code == "26000" || e.code == "0A000" {
                                    shared.retiring.store(true, Ordering::Release);
                                }
                                Err(PipeError::Db(e))
                            }
                            None => Ok(done.finish(steps)),
                        };
                        let _ = reply.send(result);
                    }
                    None => break,
                }
            }
            _ => break,
        }
    }
    shared.broken.store(true, Ordering::Release);
    let rest: Vec<Pending> = {
        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.closed = true;
        pending.entries.drain(..).collect()
    };
    for p in rest {
        if let Pending::Request { reply, .. } = p {
            shared.answered();
            let _ = reply.send(Err(closed()));
        }
    }
    shared.reader_gone.notify_one();
}

/// A few multiplexed connections of one schema's requests, opened as they are first needed and
/// replaced when they break.
pub struct MuxPool {
    target: Arc<Target>,
    slots: Vec<Arc<Slot>>,
}

#[derive(Default)]
struct Slot {
    conn: Mutex<Option<Arc<MuxConn>>>,
    connecting: AtomicBool,
}

impl MuxPool {
    pub fn new(target: Target, size: usize) -> MuxPool {
        MuxPool { target: Arc::new(target), slots: (0..size.max(1)).map(|_| Arc::new(Slot::default())).collect() }
    }

    /// The least busy connection that is making progress, or None (the caller then takes a
    /// connection of its own). Slots without a working connection start opening one.
    pub fn pick(&self) -> Option<Arc<MuxConn>> {
        let mut best: Option<(usize, Arc<MuxConn>)> = None;
        for slot in &self.slots {
            let conn = slot.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(conn) = conn.filter(|c| c.usable()) else {
                self.open(slot);
                continue;
            };
            let s = &conn.shared;
            let depth = s.in_flight.load(Ordering::Acquire);
            let stalled = depth > 0 && s.now().saturating_sub(s.progress.load(Ordering::Acquire)) > STALL_MS;
            if !stalled && depth < MAX_DEPTH && best.as_ref().is_none_or(|(d, _)| depth < *d) {
                best = Some((depth, conn));
            }
        }
        best.map(|(_, c)| c)
    }

    fn open(&self, slot: &Arc<Slot>) {
        if slot.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            slot.connecting.store(false, Ordering::Release);
            return;
        };
        let slot = slot.clone();
        let target = self.target.clone();
        runtime.spawn(async move {
            let conn = MuxConn::connect(&target).await.ok().map(Arc::new);
            if conn.is_none() {
                // Not at once again: a database that is down is tried at most every second.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            if let Some(c) = conn {
                *slot.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
            }
            slot.connecting.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to the test database, when the suite has one (its PostgreSQL half).
    async fn connect() -> Option<Arc<MuxConn>> {
        let url = std::env::var("BASALT_TEST_DATABASE_URL").ok()?;
        let connect = super::super::pg_tls::parse(&url).expect("url");
        let target = Target::new(&connect.config, connect.tls).expect("target");
        Some(Arc::new(MuxConn::connect(&target).await.expect("connect")))
    }

    /// A shared connection held up by a slow read is passed over, then taken again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_connection_is_passed_over() {
        let Ok(url) = std::env::var("BASALT_TEST_DATABASE_URL") else { return };
        let connect = super::super::pg_tls::parse(&url).expect("url");
        let pool = MuxPool::new(Target::new(&connect.config, connect.tls).expect("target"), 1);
        let started = Instant::now();
        let conn = loop {
            match pool.pick() {
                Some(c) => break c,
                None if started.elapsed() < std::time::Duration::from_secs(10) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                None => panic!("no connection within 10 s"),
            }
        };
        let slow = tokio::spawn(async move { conn.run(&[Step { sql: "SELECT pg_sleep(0.3)", params: &[] }]).await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(pool.pick().is_none(), "busy for 100 ms with nothing answered: passed over");
        slow.await.expect("join").expect("the slow read");
        assert!(pool.pick().is_some(), "answered: taken again");
    }

    fn first(answers: &[Answer]) -> Option<String> {
        answers.last()?.row.as_ref()?.text(0).expect("column").map(str::to_string)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_answers_and_errors() {
        let Some(conn) = connect().await else { return };
        let mut tasks = Vec::new();
        for i in 0..400u32 {
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move {
                let n = i.to_string();
                match i % 5 {
                    // Two statements under one Sync: the setting is the request's own.
                    0 | 1 => {
                        let p = [Some(n.as_str())];
                        let steps = [
                            Step { sql: "SELECT set_config('basalt.mux_test', $1, true)", params: &p },
                            Step { sql: "SELECT current_setting('basalt.mux_test', true)", params: &[] },
                        ];
                        let answers = conn.run(&steps).await.expect("answers");
                        assert_eq!(first(&answers), Some(n), "each request sees its own setting");
                    }
                    2 => {
                        let p = [Some(n.as_str())];
                        let answers = conn.run(&[Step { sql: "SELECT $1::int + 1", params: &p }]).await.expect("answers");
                        assert_eq!(first(&answers), Some((i + 1).to_string()));
                    }
                    // Fails when it runs: only this request.
                    3 => {
                        let e = conn.run(&[Step { sql: "SELECT $1::int + 1", params: &[Some("x")] }]).await;
                        assert!(matches!(&e, Err(PipeError::Db(d)) if d.code == "22P02"), "{:?}", e.err());
                    }
                    // Fails to parse: only this request, every time.
                    _ => {
                        let e = conn.run(&[Step { sql: "SELECT no_such_column_here", params: &[] }]).await;
                        assert!(matches!(&e, Err(PipeError::Db(d)) if d.code == "42703"), "{:?}", e.err());
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        // Settings were local to each request's implicit transaction.
        let answers = conn.run(&[Step { sql: "SELECT current_setting('basalt.mux_test', true)", params: &[] }]).await.expect("answers");
        assert_eq!(first(&answers).unwrap_or_default(), "");
        // Callers that go away before their answer leave the connection usable.
        for _ in 0..20 {
            let c = conn.clone();
            let run = async move { c.run(&[Step { sql: "SELECT pg_sleep(0.005)", params: &[] }]).await.map(|_| ()) };
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), run).await;
        }
        let answers = conn.run(&[Step { sql: "SELECT $1::int + 1", params: &[Some("41")] }]).await.expect("still usable");
        assert_eq!(first(&answers).as_deref(), Some("42"));
        assert!(conn.usable());
        assert_eq!(conn.shared.in_flight.load(Ordering::Acquire), 0);
    }
}
