//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through a single writer thread that groups concurrent writes into one
//! transaction (each write in its own savepoint, so one failing write does not undo the
//! others) and answers only after COMMIT: with `synchronous=FULL` a write that was reported
//! done survives a power cut, and the fsync is shared by every write in the group.
//! Reads use a pool of connections, which WAL lets run beside the writer.
//!
//! Checkpoints (copying the WAL back into the database file and syncing it) run on a
//! connection and thread of their own, so the writer does not stop for them; see
//! [`Checkpoints`].

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::db::{Dialect, Tx, sqlite_placeholders};
use crate::value::{Row, Value};

/// How many queued writes share one transaction at most.
const MAX_GROUP: usize = 128;

type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write: runs inside the group transaction, says whether it succeeded, and hands back
/// what to do once the group has committed (or failed to).
pub(crate) type WriteJob = Box<dyn FnOnce(&mut dyn Tx) -> (bool, Finish) + Send>;

/// A write on its way to the writer: `alone` asks for a transaction of its own rather than a
/// share of a group (large writes, whose statements a savepoint would slow down).
pub(crate) struct Queued {
    pub job: WriteJob,
    pub alone: bool,
}

pub(crate) struct SqliteBackend {
    writer: mpsc::SyncSender<Queued>,
    readers: r2d2::Pool<ReaderManager>,
    /// Readers for point reads ([`SqliteBackend::try_reader`]), without `mmap`: a read
    /// transaction that begins after another connection committed unmaps the whole mapped file
    /// (SQLite's `pagerBeginReadTransaction`), and the unmap, with its TLB shootdown on every
    /// core, and the page faults after it cost more than a few index probes read through the
    /// page cache: a tenth of the email sender's time (`rapport bench email`).
    point_readers: r2d2::Pool<ReaderManager>,
    path: PathBuf,
}

/// Every connection's settings. `mmap_size` lets reads use the OS page cache directly instead of
/// copying pages into each connection's cache: scans that touch many pages, such as segment
/// counts, ran 1.4–3× faster on a 5.5 GiB database (docs/benchmarks.md). The whole file is
/// mapped (up to 1 TiB, the ceiling SQLite is built with in `.cargo/config.toml`): with SQLite's
/// default 2 GiB ceiling, pages past it were read through system calls into a 32 MB cache.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32000;
         PRAGMA mmap_size = 1099511627776;
         PRAGMA analysis_limit = 1000;",
    )?;
    conn.set_prepared_statement_cache_capacity(256);
    register_functions(conn)?;
    Ok(())
}

/// SQL functions SQLite lacks and segment filters need.
///
/// `rapport_local_ymd(micros, zone, default_zone)`: the calendar date (year·10000+month·100+day)
/// of a UTC instant in microseconds, in the IANA `zone` (or `default_zone` when it is NULL or
/// unknown) — the contact's local date of a purchase, for anniversaries. PostgreSQL does the same
/// with `AT TIME ZONE`.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function("rapport_local_ymd", 3, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, |ctx| {
        let Some(micros) = ctx.get::<Option<i64>>(0)? else { return Ok(None) };
        let zone =
            |i| -> rusqlite::Result<Option<chrono_tz::Tz>> { Ok(ctx.get::<Option<String>>(i)?.and_then(|z| z.parse().ok())) };
        let tz = zone(1)?.or(zone(2)?).unwrap_or(chrono_tz::Tz::UTC);
        Ok(chrono::DateTime::from_timestamp_micros(micros).map(|t| {
            use chrono::Datelike;
            let d = t.with_timezone(&tz).date_naive();
            i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())
        }))
    })
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {}: {e}", path.display())))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| StoreError::Unavailable(format!("cannot switch {} to WAL: {e}", path.display())))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("{} refused WAL mode (got {mode})", path.display())));
    }
    configure(&conn).map_err(db_err)?;
    // Checkpoint every 40 MB of WAL instead of every 4 MB (see CHECKPOINT_FRAMES). This is the
    // automatic checkpoint, for the migrations run before the writer starts; the writer then
    // hands checkpoints to its own thread (`Checkpoints`).
    conn.execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 134217728;").map_err(db_err)?;
    Ok(conn)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and runs `init` (migrations) on the
    /// writer connection before any other connection is handed out.
    pub(crate) fn open(
        path: &Path,
        readers: u32,
        init: impl FnOnce(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let mut conn = open_connection(path)?;
        init(&mut SqliteTx { conn: &conn })?;
        let checkpoints = Checkpoints::start(path)?;
        let (tx, rx) = mpsc::sync_channel::<Queued>(4096);
        std::thread::Builder::new()
            .name("rapport-sqlite-writer".into())
            .spawn(move || {
                // From here on the writer leaves checkpoints to the checkpointer (the hook
                // replaces SQLite's automatic checkpoint, which ran in the committing thread).
                conn.wal_hook(Some(record_wal_frames));
                writer_loop(&mut conn, rx, &checkpoints)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        let pool_size = readers.max(1);
        let readers = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(ReaderManager { path: path.to_path_buf(), mmap: true })
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite readers: {e}")))?;
        let point_readers = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(ReaderManager { path: path.to_path_buf(), mmap: false })
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite readers: {e}")))?;
        Ok(Self { writer: tx, readers, point_readers, path: path.to_path_buf() })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a write without blocking; hands the job back when the queue is full.
    pub(crate) fn try_submit(&self, job: Queued) -> Result<Option<Queued>, StoreError> {
        match self.writer.try_send(job) {
            Ok(()) => Ok(None),
            Err(mpsc::TrySendError::Full(job)) => Ok(Some(job)),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(StoreError::Unavailable("the SQLite writer has stopped".into())),
        }
    }

    /// Queues a write, waiting for room in the queue.
    pub(crate) fn submit(&self, job: Queued) -> Result<(), StoreError> {
        self.writer.send(job).map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))
    }

    /// A reader connection for point reads if one is free right now, without waiting.
    pub(crate) fn try_reader(&self) -> Option<r2d2::PooledConnection<ReaderManager>> {
        self.point_readers.try_get()
    }

    /// Runs `f` on `conn`. With `snapshot`, in one read transaction: its queries see one
    /// snapshot, and the WAL read lock is taken once instead of once per statement (worth it
    /// from two statements on; a single lookup is faster without the BEGIN and COMMIT).
    pub(crate) fn read_with<T>(
        conn: &Connection,
        snapshot: bool,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !snapshot {
            return f(&mut SqliteTx { conn });
        }
        conn.prepare_cached("BEGIN").and_then(|mut s| s.execute([])).map_err(db_err)?;
        let result = f(&mut SqliteTx { conn });
        // Nothing was written, so ending the transaction cannot lose anything.
        if conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])).is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.readers.get().map_err(|e| StoreError::Unavailable(format!("no SQLite reader free: {e}")))?;
        Self::read_with(&conn, true, f)
    }
}

fn writer_loop(conn: &mut Connection, rx: mpsc::Receiver<Queued>, checkpoints: &Checkpoints) {
    // A write that asked to be alone and was found while a group was being gathered.
    let mut next: Option<Queued> = None;
    loop {
        let first = match next.take() {
            Some(q) => q,
            None => match rx.recv() {
                Ok(q) => q,
                Err(_) => return,
            },
        };
        if first.alone {
            run_group(conn, vec![first.job]);
            checkpoints.after_commit(conn);
            continue;
        }
        let mut group = vec![first.job];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(q) if q.alone => {
                    next = Some(q);
                    break;
                }
                Ok(q) => group.push(q.job),
                Err(_) => break,
            }
        }
        run_group(conn, group);
        checkpoints.after_commit(conn);
    }
}

/// WAL frames (4 KiB pages) from which a checkpoint starts: about 40 MB. Pages written again
/// and again (profiles, index pages) reach the database file once per checkpoint, so a larger
/// WAL means fewer writes in all (measured: +15% ingest, +40% contact creates against 4 MB).
const CHECKPOINT_FRAMES: i64 = 10_000;
/// The writer copies what the checkpointer left only when it is at most this many frames:
/// about one small transaction (a batch of 100 events writes some 900 pages at 1M contacts),
/// which takes it 3–4 ms; otherwise the checkpointer goes round again. With 2,000 the writer
/// copied after ingest batches, 15–80 ms each, and the p99 of the ingest call was twice as long
/// (`rapport bench automation`). ...
const TAIL_FRAMES: i64 = 600;
/// ... or when the WAL has grown to this many frames (120 MB), so that it cannot grow without
/// bound under transactions larger than the tail (a batch of 10,000 events writes about that
/// many pages).
const WAL_CEILING_FRAMES: i64 = 3 * CHECKPOINT_FRAMES;
/// Background passes in one go at most.
const MAX_PASSES: u32 = 8;

thread_local! {
    /// Frames in the WAL after the last commit made on this thread (the writer's), as SQLite's
    /// WAL hook reports it.
    static WAL_FRAMES: Cell<i64> = const { Cell::new(0) };
}

fn record_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(i64::from(frames));
    Ok(())
}

/// Checkpoints off the writer's path.
///
/// A checkpoint copies the WAL's pages into the database file and syncs it: 80–110 ms for a
/// 40 MB WAL on these machines, which SQLite's automatic checkpoint spends in the committing
/// thread, so every write queued behind it waited (the p99 of ingest in `rapport bench
/// automation`). Here the writer only notes the WAL's size after each commit and, past
/// [`CHECKPOINT_FRAMES`], wakes a checkpointer thread with a connection of its own. That thread
/// runs passive checkpoints, which never block the writer, until a pass finds little new to
/// copy. The WAL can only start over from its beginning when it has been copied completely
/// while no transaction writes to it; with the writer committing during the passes that moment
/// may never come, so the writer itself copies the last few frames between two transactions
/// (a short copy and sync), after which its next transaction restarts the WAL.
struct Checkpoints {
    wake: mpsc::SyncSender<()>,
    /// A round (background passes, then the writer's tail) is under way. Only the writer
    /// reads and sets it.
    running: Cell<bool>,
    /// The background passes are done; the writer copies what is left (or asks for more).
    passes_done: Arc<AtomicBool>,
    /// Frames of the WAL in the database file after the checkpointer's last pass.
    copied: Arc<AtomicI64>,
}

impl Checkpoints {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        // The checkpointer reads the WAL and writes the file; mapping the file would only
        // make every growth of it remap.
        conn.execute_batch("PRAGMA mmap_size = 0").map_err(db_err)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let passes_done = Arc::new(AtomicBool::new(false));
        let copied = Arc::new(AtomicI64::new(0));
        let (done, progress) = (passes_done.clone(), copied.clone());
        std::thread::Builder::new()
            .name("rapport-sqlite-checkpointer".into())
            .spawn(move || {
                // Ends when the writer (the only sender) has stopped.
                while woken.recv().is_ok() {
                    progress.store(checkpoint_passes(&conn), Ordering::Release);
                    done.store(true, Ordering::Release);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite checkpointer: {e}")))?;
        Ok(Self { wake, running: Cell::new(false), passes_done, copied })
    }

    /// Called by the writer after each transaction.
    fn after_commit(&self, conn: &Connection) {
        let frames = WAL_FRAMES.get();
        if self.passes_done.swap(false, Ordering::AcqRel) {
            let left = frames - self.copied.load(Ordering::Acquire);
            if left > TAIL_FRAMES && frames < WAL_CEILING_FRAMES && self.wake.try_send(()).is_ok() {
                // Too much to copy here: another round of passes first.
                return;
            }
            let started = Instant::now();
            match passive_checkpoint(conn) {
                Ok((log, copied)) => {
                    tracing::debug!(
                        frames = log,
                        copied,
                        left,
                        ms = started.elapsed().as_secs_f64() * 1e3,
                        "the writer finished a checkpoint"
                    );
                    if copied == log {
                        // The next write starts the WAL over. Until it commits the hook says
                        // nothing, and a transaction that writes nothing must not start a
                        // round on the old count (a round and a tail for a few frames).
                        WAL_FRAMES.set(0);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the writer could not finish a checkpoint; the next round will"),
            }
            self.running.set(false);
            return;
        }
        if frames >= CHECKPOINT_FRAMES && !self.running.replace(true) {
            // The checkpointer is idle (running was false), so its one-slot channel is empty;
            // a send can only fail if its thread is gone, and then the writer checkpoints
            // itself, as SQLite's automatic checkpoint would, so that the WAL stays bounded.
            if self.wake.try_send(()).is_err() {
                self.running.set(false);
                if let Err(e) = passive_checkpoint(conn) {
                    tracing::warn!(error = %e, "the writer could not checkpoint the WAL");
                }
            }
        }
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: copies what it can without waiting for anyone; answers
/// the frames in the WAL and how many of them are in the database file now.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
}

/// The checkpointer's part of a round: passes until one finds little new to copy. Answers the
/// frames of the WAL in the database file at the end.
fn checkpoint_passes(conn: &Connection) -> i64 {
    let mut copied_before = 0;
    for pass in 1..=MAX_PASSES {
        let started = Instant::now();
        match passive_checkpoint(conn) {
            Ok((log, copied)) => {
                tracing::debug!(pass, frames = log, copied, ms = started.elapsed().as_secs_f64() * 1e3, "checkpoint pass");
                // A WAL that started over since the last pass counts from zero again.
                let new = if copied >= copied_before { copied - copied_before } else { copied };
                copied_before = copied;
                if new <= TAIL_FRAMES {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a background checkpoint failed; the writer will copy the WAL");
                break;
            }
        }
    }
    copied_before
}

fn run_group(conn: &mut Connection, group: Vec<WriteJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = db_err(e);
        for job in group {
            // The job never ran; tell its caller why.
            let (_, finish) = (job)(&mut FailingTx(err.clone()));
            finish(Err(err.clone()));
        }
        return;
    }
    // A job alone needs no savepoint: the transaction is its own. Savepoints are not free in
    // SQLite (every statement of a job under one walks the in-memory sub-journal at its end,
    // quadratic in the pages the job touches), and a lone job is the common case for large
    // writes: an automation pass, a batch of ingest.
    if group.len() == 1 {
        let job = group.into_iter().next().expect("one job");
        let outcome = catch_unwind(AssertUnwindSafe(|| (job)(&mut SqliteTx { conn })));
        match outcome {
            Ok((true, finish)) => {
                let committed = conn.execute_batch("COMMIT").map_err(db_err);
                if committed.is_err() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                finish(committed);
            }
            Ok((false, finish)) => {
                // The job failed and knows why; nothing of it stays.
                let _ = conn.execute_batch("ROLLBACK");
                finish(Ok(()));
            }
            Err(_) => {
                tracing::error!("a database write panicked; it was rolled back");
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        return;
    }
    let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
    for job in group {
        let sp = conn.execute_batch("SAVEPOINT job");
        let outcome = catch_unwind(AssertUnwindSafe(|| (job)(&mut SqliteTx { conn })));
        match (sp, outcome) {
            (Ok(()), Ok((true, finish))) => {
                let _ = conn.execute_batch("RELEASE job");
                finishes.push(finish);
            }
            (_, Ok((_, finish))) => {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                finishes.push(finish);
            }
            (_, Err(_)) => {
                // A panicking write is a bug; undo it and keep serving the others. Its
                // caller sees the channel close.
                tracing::error!("a database write panicked; it was rolled back");
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
    }
    let committed = conn.execute_batch("COMMIT").map_err(db_err);
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for finish in finishes {
        finish(committed.clone());
    }
}

/// Stands in for a transaction that could not begin: every statement fails with its error.
struct FailingTx(StoreError);

impl Tx for FailingTx {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn execute(&mut self, _: &str, _: &[Value]) -> Result<u64, StoreError> {
        Err(self.0.clone())
    }
    fn query(&mut self, _: &str, _: &[Value]) -> Result<Vec<Row>, StoreError> {
        Err(self.0.clone())
    }
    fn execute_batch(&mut self, _: &str) -> Result<(), StoreError> {
        Err(self.0.clone())
    }
}

pub(crate) struct SqliteTx<'c> {
    conn: &'c Connection,
}

struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
            Value::I64(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::F64(f) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Json(j) => ToSqlOutput::Owned(rusqlite::types::Value::Text(j.to_string())),
            Value::Uuid(u) => ToSqlOutput::Borrowed(ValueRef::Blob(u.as_bytes())),
            Value::Time(t) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(t.timestamp_micros())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::I64(i),
        ValueRef::Real(f) => Value::F64(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(&sqlite_placeholders(sql)).map_err(db_err)?;
        let n = stmt.execute(rusqlite::params_from_iter(params.iter().map(Param))).map_err(db_err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&sqlite_placeholders(sql)).map_err(db_err)?;
        let cols = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(Param))).map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db_err)? {
            let mut vals = Vec::with_capacity(cols);
            for i in 0..cols {
                vals.push(read_value(r.get_ref(i).map_err(db_err)?));
            }
            out.push(Row(vals));
        }
        Ok(out)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(db_err)
    }
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let msg = msg.clone().unwrap_or_default();
        match f.code {
            ErrorCode::ConstraintViolation
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                return StoreError::Conflict { field: String::new(), message: format!("already exists ({msg})") };
            }
            ErrorCode::ConstraintViolation if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                return StoreError::Conflict { field: String::new(), message: "refers to a record that does not exist".into() };
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable(format!("the database is busy: {msg}"));
            }
            ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::CannotOpen => {
                return StoreError::Unavailable(format!("the database cannot be written: {msg}"));
            }
            _ => {}
        }
    }
    StoreError::Database(e.to_string())
}

pub(crate) struct ReaderManager {
    path: PathBuf,
    mmap: bool,
}

impl r2d2::ManageConnection for ReaderManager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        configure(&conn)?;
        // Readers never write; this turns a stray write into an error instead of a lock fight.
        conn.execute_batch("PRAGMA query_only = ON")?;
        if !self.mmap {
            conn.execute_batch("PRAGMA mmap_size = 0")?;
        }
        Ok(conn)
    }

    fn is_valid(&self, _: &mut Connection) -> Result<(), rusqlite::Error> {
        Ok(())
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}
