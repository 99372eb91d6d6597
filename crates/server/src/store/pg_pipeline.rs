//! A PostgreSQL connection of Basalt's own, for plain reads: the request context and the query
//! go to PostgreSQL as one pipeline under a single `Sync`, so they run as one implicit
//! transaction (the context local to it, as in a `BEGIN` ... `COMMIT`) and PostgreSQL answers
//! both with one flush. tokio-postgres ends every statement with a `Sync` of its own, which makes
//! each one its own implicit transaction, commit and flush, and has no call to send several
//! under one. Messages are built and parsed by postgres-protocol, tokio-postgres's own message
//! layer; TLS is the URL's, as on the tokio-postgres pools ([`super::pg_tls`]).

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{DataRowBody, ErrorFields, Message, ReadyForQueryBody};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::pg_tls::PgTls;

/// Every parameter is sent as `text` and cast in SQL, as on the tokio-postgres connections.
pub(super) const TEXT_OID: u32 = 25;

/// A connection that has prepared more statements than this is closed rather than reused, so
/// requests of ever new shapes cannot grow a connection's memory (on either side) without end.
pub(super) const MAX_PREPARED: usize = 2000;

/// What went wrong: PostgreSQL's own error, or the connection.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    #[error("{}", .0.message)]
    Db(DbError),
    #[error("PostgreSQL connection: {0}")]
    Io(#[from] io::Error),
    #[error("PostgreSQL protocol: {0}")]
    Protocol(String),
}

/// An `ErrorResponse`'s fields that reach the client, as PostgREST passes them on.
#[derive(Debug, Default)]
pub struct DbError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl DbError {
    pub(super) fn parse(mut fields: ErrorFields<'_>) -> Result<DbError, PipeError> {
        let mut e = DbError::default();
        while let Some(f) = fields.next().map_err(|e| PipeError::Protocol(e.to_string()))? {
            let value = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
        }
        Ok(e)
    }
}

#[derive(Debug, PartialEq)]
enum Addr {
    Tcp(String, u16),
    Ip(IpAddr, u16),
    Unix(PathBuf),
}

/// Where and as whom to connect, read from the same configuration as the tokio-postgres pools
/// (the same URL, options and application name).
pub struct Target {
    addrs: Vec<Addr>,
    user: String,
    password: Option<Vec<u8>>,
    startup: Vec<(&'static str, String)>,
    connect_timeout: Option<Duration>,
    /// TCP keepalive as the URL asks (libpq's `keepalives*` settings, on by default with probes
    /// after 2 h idle, as tokio-postgres): an idle pooled connection whose server vanished
    /// without a word is found dead instead of being kept for good.
    keepalive: Option<socket2::TcpKeepalive>,
    /// libpq's `tcp_user_timeout` (Linux): how long sent data may go unacknowledged before the
    /// connection is dropped, which bounds a host that vanishes mid-request.
    user_timeout: Option<Duration>,
    tls: PgTls,
    /// libpq's `channel_binding`, for SCRAM over TLS.
    channel_binding: tokio_postgres::config::ChannelBinding,
}

impl Target {
    pub fn new(cfg: &tokio_postgres::Config, tls: PgTls) -> Result<Target, PipeError> {
        let port = |i: usize| match cfg.get_ports() {
            [] => 5432,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(5432),
        };
        let mut addrs = Vec::new();
        for (i, host) in cfg.get_hosts().iter().enumerate() {
            addrs.push(match host {
                tokio_postgres::config::Host::Tcp(h) => Addr::Tcp(h.clone(), port(i)),
                tokio_postgres::config::Host::Unix(dir) => Addr::Unix(dir.join(format!(".s.PGSQL.{}", port(i)))),
            });
        }
        if addrs.is_empty() {
            addrs.extend(cfg.get_hostaddrs().iter().enumerate().map(|(i, ip)| Addr::Ip(*ip, port(i))));
        }
        if addrs.is_empty() {
            return Err(PipeError::Protocol("the database URL names no host".into()));
        }
        // As libpq and tokio-postgres: without a user in the URL, the operating system's.
        let user = match cfg.get_user() {
            Some(u) => u.to_string(),
            None => std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .map_err(|_| PipeError::Protocol("the database URL names no user".into()))?,
        };
        let mut startup = vec![("client_encoding", "UTF8".to_string()), ("user", user.clone())];
        if let Some(db) = cfg.get_dbname() {
            startup.push(("database", db.to_string()));
        }
        if let Some(options) = cfg.get_options() {
            startup.push(("options", options.to_string()));
        }
        if let Some(name) = cfg.get_application_name() {
            startup.push(("application_name", name.to_string()));
        }
        Ok(Target {
            addrs,
            user,
            password: cfg.get_password().map(<[u8]>::to_vec),
            startup,
            connect_timeout: cfg.get_connect_timeout().copied(),
            keepalive: cfg.get_keepalives().then(|| keepalive(cfg)),
            user_timeout: cfg.get_tcp_user_timeout().copied(),
            tls,
            channel_binding: cfg.get_channel_binding(),
        })
    }
}

/// The probe interval and count where the platform has them, as tokio-postgres.
fn keepalive(cfg: &tokio_postgres::Config) -> socket2::TcpKeepalive {
    let k = socket2::TcpKeepalive::new().with_time(cfg.get_keepalives_idle());
    #[cfg(not(any(target_os = "aix", target_os = "redox", target_os = "solaris", target_os = "openbsd")))]
    let k = match cfg.get_keepalives_interval() {
        Some(interval) => k.with_interval(interval),
        None => k,
    };
    #[cfg(not(any(target_os = "aix", target_os = "redox", target_os = "solaris", target_os = "windows", target_os = "openbsd")))]
    let k = match cfg.get_keepalives_retries() {
        Some(retries) => k.with_retries(retries),
        None => k,
    };
    k
}

/// How much a TLS connection reads from its socket at a time.
const READ_AHEAD: usize = 16 * 1024;

pub(super) enum Stream {
    Tcp(TcpStream),
    /// Over a read-ahead buffer: TLS asks for each record's 5-byte header and then its body,
    /// which without it are two `recv`s for every answer, and a third that finds nothing.
    Tls(Box<tokio_native_tls::TlsStream<tokio::io::BufReader<TcpStream>>>),
    Unix(UnixStream),
    /// Handed to a task that says goodbye over TLS ([`PipeConn`]'s `Drop`).
    Closed,
}

impl Stream {
    async fn open(addr: &Addr, target: &Target) -> io::Result<Stream> {
        let tcp = |s: TcpStream| {
            s.set_nodelay(true)?;
            let sock = socket2::SockRef::from(&s);
            if let Some(k) = &target.keepalive {
                sock.set_tcp_keepalive(k)?;
            }
            #[cfg(target_os = "linux")]
            if let Some(t) = target.user_timeout {
                sock.set_tcp_user_timeout(Some(t))?;
            }
            Ok::<_, io::Error>(s)
        };
        match addr {
            Addr::Tcp(host, port) => Stream::start_tls(tcp(TcpStream::connect((host.as_str(), *port)).await?)?, host, &target.tls).await,
            Addr::Ip(ip, port) => Stream::start_tls(tcp(TcpStream::connect((*ip, *port)).await?)?, &ip.to_string(), &target.tls).await,
            // As libpq: no TLS over a Unix socket.
            Addr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    }

    /// Asks for TLS as the URL's `sslmode` says (an `SSLRequest`, answered by one byte) and
    /// shakes hands; `host` is checked against the certificate under `verify-full`.
    async fn start_tls(mut s: TcpStream, host: &str, tls: &PgTls) -> io::Result<Stream> {
        if !tls.wanted() {
            return Ok(Stream::Tcp(s));
        }
        let mut request = BytesMut::with_capacity(8);
        frontend::ssl_request(&mut request);
        s.write_all(&request).await?;
        // Exactly one byte: anything after it would be unencrypted text passed off as TLS's.
        match s.read_u8().await? {
            b'S' => {
                let connector = tokio_native_tls::TlsConnector::from(tls.connector().clone());
                let s = tokio::io::BufReader::with_capacity(READ_AHEAD, s);
                let stream = connector.connect(host, s).await.map_err(|e| io::Error::other(format!("TLS handshake with {host}: {e}")))?;
                Ok(Stream::Tls(Box::new(stream)))
            }
            b'N' if !tls.required() => Ok(Stream::Tcp(s)),
            b'N' => Err(io::Error::other("the server does not offer TLS, which the URL's sslmode requires")),
            other => Err(io::Error::other(format!("unexpected answer {other:#04x} to the TLS request"))),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Stream::Unix(s) => s.write_all(buf).await,
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Unix(s) => s.read_buf(buf).await,
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Best effort: a connection closed with a pending answer is cut off anyway. Over TLS,
    /// nothing: a message needs the TLS layer, which cannot write without waiting.
    fn try_write(&self, buf: &[u8]) {
        let _ = match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Tls(_) | Stream::Closed => return,
            Stream::Unix(s) => s.try_write(buf),
        };
    }

    /// Reads what is there without waiting: an idle connection has nothing to read, so
    /// anything (or the end) means the server closed it. Over TLS, the socket beneath.
    fn try_read(&self, probe: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(probe),
            Stream::Tls(s) => {
                let socket = s.get_ref().get_ref().get_ref();
                match socket.buffer().is_empty() {
                    true => socket.get_ref().try_read(probe),
                    false => Ok(socket.buffer().len()),
                }
            }
            Stream::Unix(s) => s.try_read(probe),
            Stream::Closed => Ok(0),
        }
    }

    /// The TLS server's certificate hash for SCRAM's channel binding (`tls-server-end-point`).
    fn server_end_point(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Tls(s) => s.get_ref().tls_server_end_point().ok().flatten(),
            _ => None,
        }
    }
}

/// The stream as tokio's traits, so a multiplexed connection can split it into a reading and a
/// writing half ([`super::pg_mux`]).
impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Closed => std::task::Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Closed => std::task::Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Closed => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Closed => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// One statement of a pipeline: its SQL and its parameters as text.
#[derive(Clone, Copy)]
pub struct Step<'a> {
    pub sql: &'a str,
    pub params: &'a [Option<&'a str>],
}

/// What one statement gave back: its first row, and the rows its command tag counts (those a
/// write affected).
pub struct Answer {
    pub row: Option<Row>,
    pub affected: u64,
}

/// `Bind` and `Execute` of a prepared statement with its parameters as text. Fails only with
/// more parameters than the protocol counts (65,535).
pub(super) fn bind_execute<'a>(name: &str, params: impl IntoIterator<Item = Option<&'a str>>, out: &mut BytesMut) -> Result<(), PipeError> {
    let bound = frontend::bind(
        "",
        name,
        [],
        params,
        |p, buf| {
            Ok(match p {
                Some(text) => {
                    buf.put_slice(text.as_bytes());
                    IsNull::No
                }
                None => IsNull::Yes,
            })
        },
        [],
        out,
    );
    if bound.is_err() || frontend::execute("", 0, out).is_err() {
        return Err(PipeError::Protocol("too many parameters for one statement".into()));
    }
    Ok(())
}

/// The answers to one `Sync`'s statements as they arrive: each statement's first row and the
/// rows its command tag counts.
pub(super) struct Answers(Vec<Answer>);

impl Default for Answers {
    fn default() -> Answers {
        Answers(vec![Answer { row: None, affected: 0 }])
    }
}

impl Answers {
    pub(super) fn row(&mut self, body: DataRowBody) {
        if let Some(a @ Answer { row: None, .. }) = self.0.last_mut() {
            a.row = Some(Row(body));
        }
    }

    /// A statement done: "INSERT 0 3", "UPDATE 3", "SELECT 3" (the count comes last).
    pub(super) fn complete(&mut self, body: &postgres_protocol::message::backend::CommandCompleteBody) -> Result<(), PipeError> {
        let tag = body.tag().map_err(|e| PipeError::Protocol(e.to_string()))?;
        if let Some(a) = self.0.last_mut() {
            a.affected = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
        self.empty();
        Ok(())
    }

    /// A statement done without a count (an empty query).
    pub(super) fn empty(&mut self) {
        self.0.push(Answer { row: None, affected: 0 });
    }

    /// One answer per statement.
    pub(super) fn finish(mut self, statements: usize) -> Vec<Answer> {
        self.0.truncate(statements);
        self.0
    }
}

/// A statement's first row, its columns as text.
pub struct Row(pub(super) DataRowBody);

impl Row {
    pub fn text(&self, column: usize) -> Result<Option<&str>, PipeError> {
        let range = self.0.ranges().nth(column).map_err(|e| PipeError::Protocol(e.to_string()))?;
        let range = range.ok_or_else(|| PipeError::Protocol(format!("no column {column}")))?;
        range.map(|r| std::str::from_utf8(&self.0.buffer()[r]).map_err(|e| PipeError::Protocol(e.to_string()))).transpose()
    }
}

pub struct PipeConn {
    stream: Stream,
    input: BytesMut,
    output: BytesMut,
    /// Statements prepared on this connection: SQL to statement name.
    prepared: foldhash::HashMap<Box<str>, Box<str>>,
    /// Numbers the statements' names.
    statements: u64,
    /// Set while a `Sync`'s answers are still to be read (there is never more than one).
    in_flight: bool,
    /// Set while a message is being written: a connection cut off then is lost.
    writing: bool,
    /// Outside any transaction, as the last `ReadyForQuery` said.
    idle: bool,
    broken: bool,
}

impl PipeConn {
    pub async fn connect(target: &Target) -> Result<PipeConn, PipeError> {
        let mut last = None;
        let mut stream = None;
        for addr in &target.addrs {
            let open = Stream::open(addr, target);
            let opened = match target.connect_timeout {
                Some(t) => tokio::time::timeout(t, open).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                None => open.await,
            };
            match opened {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => return Err(last.map(PipeError::Io).unwrap_or_else(|| PipeError::Protocol("no address".into()))),
        };
        let mut conn = PipeConn {
            stream,
            input: BytesMut::with_capacity(8192),
            output: BytesMut::with_capacity(1024),
            prepared: foldhash::HashMap::default(),
            statements: 0,
            in_flight: false,
            writing: false,
            idle: true,
            broken: false,
        };
        frontend::startup_message(target.startup.iter().map(|(k, v)| (*k, v.as_str())), &mut conn.output)?;
        conn.send().await?;
        conn.authenticate(target).await?;
        loop {
            match conn.next().await? {
                Message::ReadyForQuery(_) => return Ok(conn),
                Message::ErrorResponse(body) => return Err(PipeError::Db(DbError::parse(body.fields())?)),
                Message::ParameterStatus(_) | Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
                _ => return Err(PipeError::Protocol("unexpected message at start-up".into())),
            }
        }
    }

    /// The connection's stream, for a multiplexed connection to take over once connected (and
    /// idle: nothing is left to read).
    pub(super) fn into_stream(mut self) -> Stream {
        self.broken = true;
        std::mem::replace(&mut self.stream, Stream::Closed)
    }

    /// Trust, cleartext, MD5 and SCRAM-SHA-256 (bound to the TLS channel where the server offers
    /// SCRAM-SHA-256-PLUS), as tokio-postgres; `channel_binding=require` refuses the rest.
    async fn authenticate(&mut self, target: &Target) -> Result<(), PipeError> {
        use tokio_postgres::config::ChannelBinding;
        let password =
            || target.password.as_deref().ok_or_else(|| PipeError::Protocol("PostgreSQL asks for a password and the URL has none".into()));
        let unbound = || match target.channel_binding {
            ChannelBinding::Require => Err(PipeError::Protocol("the server did not use channel binding, which the URL requires".into())),
            _ => Ok(()),
        };
        match self.next().await? {
            Message::AuthenticationOk => return unbound(),
            Message::AuthenticationCleartextPassword => {
                unbound()?;
                frontend::password_message(password()?, &mut self.output)?;
                self.send().await?;
            }
            Message::AuthenticationMd5Password(body) => {
                unbound()?;
                let hash = md5_hash(target.user.as_bytes(), password()?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut self.output)?;
                self.send().await?;
            }
            Message::AuthenticationSasl(body) => {
                let (mut scram_offered, mut plus_offered) = (false, false);
                let mut mechanisms = body.mechanisms();
                while let Some(m) = mechanisms.next()? {
                    scram_offered |= m == sasl::SCRAM_SHA_256;
                    plus_offered |= m == sasl::SCRAM_SHA_256_PLUS;
                }
                let end_point = self.stream.server_end_point().filter(|_| target.channel_binding != ChannelBinding::Disable);
                let (binding, mechanism) = match (plus_offered, scram_offered, end_point) {
                    (true, _, Some(hash)) => (sasl::ChannelBinding::tls_server_end_point(hash), sasl::SCRAM_SHA_256_PLUS),
                    (_, true, Some(_)) => (sasl::ChannelBinding::unrequested(), sasl::SCRAM_SHA_256),
                    (_, true, None) => (sasl::ChannelBinding::unsupported(), sasl::SCRAM_SHA_256),
                    _ => return Err(PipeError::Protocol("PostgreSQL offers no SASL mechanism Basalt speaks".into())),
                };
                if mechanism != sasl::SCRAM_SHA_256_PLUS {
                    unbound()?;
                }
                let mut scram = sasl::ScramSha256::new(password()?, binding);
                frontend::sasl_initial_response(mechanism, scram.message(), &mut self.output)?;
                self.send().await?;
                match self.next().await? {
                    Message::AuthenticationSaslContinue(body) => scram.update(body.data())?,
                    Message::ErrorResponse(body) => return Err(PipeError::Db(DbError::parse(body.fields())?)),
                    _ => return Err(PipeError::Protocol("unexpected message in SCRAM".into())),
                }
                frontend::sasl_response(scram.message(), &mut self.output)?;
                self.send().await?;
                match self.next().await? {
                    Message::AuthenticationSaslFinal(body) => scram.finish(body.data())?,
                    Message::ErrorResponse(body) => return Err(PipeError::Db(DbError::parse(body.fields())?)),
                    _ => return Err(PipeError::Protocol("unexpected message in SCRAM".into())),
                }
            }
            Message::ErrorResponse(body) => return Err(PipeError::Db(DbError::parse(body.fields())?)),
            _ => return Err(PipeError::Protocol("PostgreSQL asks for an authentication method Basalt does not speak".into())),
        }
        match self.next().await? {
            Message::AuthenticationOk => Ok(()),
            Message::ErrorResponse(body) => Err(PipeError::Db(DbError::parse(body.fields())?)),
            _ => Err(PipeError::Protocol("unexpected message after authentication".into())),
        }
    }

    async fn send(&mut self) -> Result<(), PipeError> {
        self.writing = true;
        let sent = self.stream.write_all(&self.output).await;
        self.writing = false;
        self.output.clear();
        sent.map_err(|e| self.broke(e))
    }

    async fn next(&mut self) -> Result<Message, PipeError> {
        loop {
            match Message::parse(&mut self.input) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(self.broke(e)),
            }
            self.input.reserve(8192);
            match self.stream.read_buf(&mut self.input).await {
                Ok(0) => return Err(self.broke(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) => return Err(self.broke(e)),
            }
        }
    }

    fn broke(&mut self, e: io::Error) -> PipeError {
        self.broken = true;
        PipeError::Io(e)
    }

    /// The next message that answers what was sent: notices, parameter changes and
    /// notifications, which PostgreSQL may send at any time, are skipped.
    async fn answer(&mut self) -> Result<Message, PipeError> {
        loop {
            match self.next().await? {
                Message::NoticeResponse(_) | Message::ParameterStatus(_) | Message::NotificationResponse(_) => {}
                m => return Ok(m),
            }
        }
    }

    /// The end of a `Sync`'s (or a query's) answers, which says whether a transaction is open.
    fn ready(&mut self, body: &ReadyForQueryBody) {
        self.idle = body.status() == b'I';
    }

    /// A message out of place: the conversation cannot be trusted any more.
    fn unexpected(&mut self, during: &str) -> PipeError {
        self.broken = true;
        PipeError::Protocol(format!("unexpected message {during}"))
    }

    /// Whether the connection can go back to the pool: not cut off mid-pipeline, not inside a
    /// transaction.
    pub fn reusable(&self) -> bool {
        !self.in_flight && !self.writing && !self.broken && self.idle && self.prepared.len() <= MAX_PREPARED
    }

    /// Whether PostgreSQL closed the connection while it sat in the pool (a restart,
    /// `pg_terminate_backend`, `idle_session_timeout`): an idle connection has nothing to read.
    fn closed_by_server(&mut self) -> bool {
        let mut probe = [0u8; 1];
        !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Runs the steps in order under one `Sync`, in one round trip: one implicit transaction,
    /// unless the steps begin one of their own (which may stay open for the next call). Returns
    /// each step's answer. The first error stops the rest (PostgreSQL skips to the `Sync`) and
    /// rolls back the implicit transaction, or the explicit one the steps are in.
    pub async fn run(&mut self, steps: &[Step<'_>]) -> Result<Vec<Answer>, PipeError> {
        if self.in_flight || self.broken {
            return Err(PipeError::Protocol("connection not usable".into()));
        }
        let names = self.prepare(steps).await?;
        for (step, name) in steps.iter().zip(&names) {
            if let Err(e) = bind_execute(name, step.params.iter().copied(), &mut self.output) {
                self.output.clear();
                return Err(e);
            }
        }
        frontend::sync(&mut self.output);
        self.in_flight = true;
        self.send().await?;

        let mut answers = Answers::default();
        let mut error = None;
        loop {
            match self.answer().await? {
                Message::BindComplete | Message::NoData => {}
                Message::DataRow(body) => answers.row(body),
                Message::CommandComplete(body) => answers.complete(&body)?,
                Message::EmptyQueryResponse => answers.empty(),
                Message::ErrorResponse(body) => error = Some(DbError::parse(body.fields())?),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    break;
                }
                _ => return Err(self.unexpected("in a pipeline")),
            }
        }
        if let Some(e) = error {
            // A statement gone from the server, or one whose result changed shape, stays so on
            // this connection: the next caller gets a new one.
            if e.code == "26000" || e.code == "0A000" {
                self.broken = true;
            }
            if !self.idle {
                self.rollback().await?;
            }
            self.in_flight = false;
            return Err(PipeError::Db(e));
        }
        self.in_flight = false;
        Ok(answers.finish(steps.len()))
    }

    /// The steps' statement names, preparing those new to the connection first, in a round trip
    /// of their own (once per connection and statement): parsed in the pipeline, a statement
    /// would be resolved as the role an earlier step set, and would take the transaction's
    /// snapshot before its `BEGIN` could choose how the transaction runs.
    async fn prepare(&mut self, steps: &[Step<'_>]) -> Result<Vec<Box<str>>, PipeError> {
        let mut parsing = Vec::new();
        let mut names = Vec::with_capacity(steps.len());
        for step in steps {
            let name = match self.prepared.get(step.sql) {
                Some(name) => name.clone(),
                None => {
                    self.statements += 1;
                    let name: Box<str> = format!("b{}", self.statements).into();
                    let types = std::iter::repeat_n(TEXT_OID, step.params.len());
                    if let Err(e) = frontend::parse(&name, step.sql, types, &mut self.output) {
                        self.output.clear();
                        return Err(PipeError::Protocol(format!("cannot send the statement: {e}")));
                    }
                    parsing.push((Box::<str>::from(step.sql), name.clone()));
                    name
                }
            };
            names.push(name);
        }
        if parsing.is_empty() {
            return Ok(names);
        }
        frontend::sync(&mut self.output);
        self.in_flight = true;
        self.send().await?;
        let mut parsed = parsing.into_iter();
        let mut error = None;
        loop {
            match self.answer().await? {
                Message::ParseComplete => {
                    if let Some((sql, name)) = parsed.next() {
                        self.prepared.insert(sql, name);
                    }
                }
                Message::ErrorResponse(body) => error = Some(DbError::parse(body.fields())?),
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    break;
                }
                _ => return Err(self.unexpected("while preparing")),
            }
        }
        self.in_flight = false;
        match error {
            Some(e) => Err(PipeError::Db(e)),
            None => Ok(names),
        }
    }

    /// Whether a connection whose caller went away can be brought back to idle.
    fn recoverable(&self) -> bool {
        !self.broken && !self.writing && self.prepared.len() <= MAX_PREPARED
    }

    /// Brings a connection whose caller went away back to idle: reads the answers still due and
    /// rolls back a transaction left open. Whether it can be reused.
    async fn recover(&mut self) -> bool {
        if !self.recoverable() {
            return false;
        }
        if self.in_flight {
            loop {
                match self.next().await {
                    Ok(Message::ReadyForQuery(body)) => {
                        self.ready(&body);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            self.in_flight = false;
        }
        if !self.idle {
            self.in_flight = true;
            if self.rollback().await.is_err() {
                return false;
            }
            self.in_flight = false;
        }
        self.reusable()
    }

    /// Ends a failed explicit transaction.
    async fn rollback(&mut self) -> Result<(), PipeError> {
        frontend::query("ROLLBACK", &mut self.output)?;
        self.send().await?;
        loop {
            match self.answer().await? {
                Message::ReadyForQuery(body) => {
                    self.ready(&body);
                    return Ok(());
                }
                Message::CommandComplete(_) | Message::ErrorResponse(_) => {}
                _ => return Err(self.unexpected("in a rollback")),
            }
        }
    }
}

impl Drop for PipeConn {
    /// Says goodbye when the connection is idle, so PostgreSQL does not log a lost client. Over
    /// TLS, whose layer cannot write without waiting, a task of its own says it and closes TLS,
    /// within a second.
    fn drop(&mut self) {
        if self.in_flight || self.writing || self.broken {
            return;
        }
        let mut buf = BytesMut::with_capacity(5);
        frontend::terminate(&mut buf);
        let Stream::Tls(_) = self.stream else { return self.stream.try_write(&buf) };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if let Stream::Tls(mut s) = std::mem::replace(&mut self.stream, Stream::Closed) {
            runtime.spawn(async move {
                let goodbye = async {
                    s.write_all(&buf).await?;
                    s.shutdown().await
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
            });
        }
    }
}

/// Makes and checks the pool's connections.
pub struct PipeManager {
    pub target: Target,
}

impl deadpool::managed::Manager for PipeManager {
    type Type = PipeConn;
    type Error = PipeError;

    async fn create(&self) -> Result<PipeConn, PipeError> {
        PipeConn::connect(&self.target).await
    }

    async fn recycle(&self, conn: &mut PipeConn, _: &deadpool::managed::Metrics) -> deadpool::managed::RecycleResult<PipeError> {
        if conn.closed_by_server() {
            conn.broken = true;
        }
        match conn.reusable() {
            true => Ok(()),
            false => Err(deadpool::managed::RecycleError::message("connection closed, cut off or full")),
        }
    }
}

pub type PipePool = deadpool::managed::Pool<PipeManager>;

/// How long a connection whose caller went away may take to finish what it was sent (PostgreSQL's
/// `statement_timeout` usually ends it sooner); then it is closed.
const RECOVERY: Duration = Duration::from_secs(60);

/// A pooled connection that goes back to the pool only when it can serve another caller. One
/// whose caller went away mid-pipeline or inside a transaction is brought back to idle on a task
/// of its own (its answers read, its transaction rolled back), so a client that hangs up costs
/// no new connection; one cut off mid-message is closed at once. Either way PostgreSQL rolls back
/// and releases the locks now, not when the pool next hands the connection out.
pub struct Lease(Option<deadpool::managed::Object<PipeManager>>);

impl Lease {
    pub async fn get(pool: &PipePool) -> Result<Lease, deadpool::managed::PoolError<PipeError>> {
        Ok(Lease(Some(pool.get().await?)))
    }
}

impl std::ops::Deref for Lease {
    type Target = PipeConn;
    fn deref(&self) -> &PipeConn {
        self.0.as_ref().expect("leased until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PipeConn {
        self.0.as_mut().expect("leased until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut conn) = self.0.take() else { return };
        if conn.reusable() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if conn.recoverable() => {
                runtime.spawn(async move {
                    if !tokio::time::timeout(RECOVERY, conn.recover()).await.unwrap_or(false) {
                        drop(deadpool::managed::Object::take(conn));
                    }
                });
            }
            _ => drop(deadpool::managed::Object::take(conn)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, PipeError> {
        let connect = super::super::pg_tls::parse(url).expect("url");
        Target::new(&connect.config, connect.tls)
    }

    #[test]
    fn targets_read_the_url_as_tokio_postgres_does() {
        let t = target("postgres://app:pw@db.example:6543/main?options=-c%20x%3D1&application_name=basalt").unwrap();
        assert_eq!(t.addrs, vec![Addr::Tcp("db.example".into(), 6543)]);
        assert_eq!((t.user.as_str(), t.password.as_deref()), ("app", Some(&b"pw"[..])));
        let startup: Vec<(&str, &str)> = t.startup.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            startup,
            [("client_encoding", "UTF8"), ("user", "app"), ("database", "main"), ("options", "-c x=1"), ("application_name", "basalt")]
        );
        // A host that is a folder is a Unix socket, named after the port.
        let t = target("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(t.addrs, vec![Addr::Unix("/var/run/postgresql/.s.PGSQL.5432".into())]);
        // Several hosts, each with its port or the one given for all.
        let t = target("postgresql://u@a:1,b:2/db").unwrap();
        assert_eq!(t.addrs, vec![Addr::Tcp("a".into(), 1), Addr::Tcp("b".into(), 2)]);
        assert!(matches!(target("postgres://u@/db"), Err(PipeError::Protocol(_))), "no host");
    }

    /// TCP connections probe an idle server as the URL says (on by default, after 2 h), and
    /// give up on unacknowledged data after `tcp_user_timeout` when it is set.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn tcp_connections_keep_alive_as_the_url_asks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = |query: &str| {
            let t = target(&format!("postgres://u@127.0.0.1:{port}/db?sslmode=disable{query}")).unwrap();
            async move {
                let Stream::Tcp(s) = Stream::open(&t.addrs[0], &t).await.unwrap() else { panic!("a TCP address opens a TCP stream") };
                let sock = socket2::SockRef::from(&s);
                (sock.keepalive().unwrap(), sock.tcp_keepalive_time().unwrap(), sock.tcp_user_timeout().unwrap())
            }
        };
        assert_eq!(open("").await, (true, Duration::from_secs(7200), None));
        assert_eq!(open("&keepalives_idle=30").await, (true, Duration::from_secs(30), None));
        assert!(!open("&keepalives=0").await.0);
        assert_eq!(open("&tcp_user_timeout=5").await.2, Some(Duration::from_secs(5)));
    }

    /// A server that answers the TLS request with `N`: `prefer` goes on without TLS, `require`
    /// stops with a clear error, `disable` never asks.
    #[tokio::test]
    async fn a_server_without_tls_is_refused_only_when_tls_is_required() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut asked = Vec::new();
            for _ in 0..3 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 8];
                match s.read_exact(&mut request).await {
                    Ok(_) => {
                        asked.push(request);
                        s.write_all(b"N").await.unwrap();
                        // Held open until the client is done with it.
                        let _ = s.read_u8().await;
                    }
                    Err(_) => asked.push([0; 8]),
                }
            }
            asked
        });
        let open = |mode: &str| {
            let t = target(&format!("postgres://u@127.0.0.1:{port}/db?sslmode={mode}")).unwrap();
            async move { Stream::open(&t.addrs[0], &t).await }
        };
        assert!(matches!(open("prefer").await, Ok(Stream::Tcp(_))));
        let refused = open("require").await.err().expect("require refuses a server without TLS");
        assert!(refused.to_string().contains("does not offer TLS"), "{refused}");
        let plain = open("disable").await.expect("disable asks for nothing");
        drop(plain);
        let asked = server.await.unwrap();
        let mut ssl_request = BytesMut::new();
        frontend::ssl_request(&mut ssl_request);
        assert_eq!(&asked[0][..], &ssl_request[..]);
        assert_eq!(&asked[1][..], &ssl_request[..]);
        assert_eq!(asked[2], [0; 8], "no TLS request under disable");
    }
}
