//! Point reads of a contact-sized row by primary key, through each driver the way a server
//! would issue them: many concurrent async tasks, a pool of connections. Prints reads/s.
//!
//! Run: cargo run --release -- [rows] [seconds] [concurrency]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SELECT: &str = "SELECT id, display_name, email, city, custom_fields, created_at FROM contacts WHERE id = ?1";

fn setup(path: &str, rows: i64) {
    let _ = std::fs::remove_file(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE contacts (id INTEGER PRIMARY KEY, display_name TEXT NOT NULL, email TEXT NOT NULL,
           city TEXT, custom_fields TEXT NOT NULL, created_at INTEGER NOT NULL);",
    )
    .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut st = conn.prepare("INSERT INTO contacts VALUES (?1, ?2, ?3, ?4, ?5, ?6)").unwrap();
        for i in 0..rows {
            st.execute(rusqlite::params![
                i,
                format!("Person Number {i}"),
                format!("person{i}@example.com"),
                "Oakland",
                r#"{"plan":"Premium","newsletter":true}"#,
                1_700_000_000_000_000i64 + i
            ])
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

struct Manager(String);
impl r2d2::ManageConnection for Manager {
    type Connection = rusqlite::Connection;
    type Error = rusqlite::Error;
    fn connect(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        let c = rusqlite::Connection::open(&self.0)?;
        c.execute_batch("PRAGMA query_only=ON")?;
        Ok(c)
    }
    fn is_valid(&self, _: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut rusqlite::Connection) -> bool {
        false
    }
}

async fn drive<F, Fut>(seconds: u64, concurrency: usize, op: F) -> f64
where
    F: Fn(i64) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (stop, count, op) = (stop.clone(), count.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::new();
            while !stop.load(Ordering::Relaxed) {
                op(rng.i64(0..100_000)).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let path = std::env::temp_dir().join("driver-bench.db").to_string_lossy().into_owned();
    setup(&path, rows);
    println!("{rows} rows, {seconds} s per driver, {concurrency} concurrent tasks, {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()));

    let pool = r2d2::Pool::builder().max_size(8).build(Manager(path.clone())).unwrap();
    let rusqlite_rate = drive(seconds, concurrency, move |id| {
        let pool = pool.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = pool.get().unwrap();
                let mut st = conn.prepare_cached(SELECT).unwrap();
                let row: (i64, String, String, String, String, i64) = st
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                    .unwrap();
                std::hint::black_box(row);
            })
            .await
            .unwrap();
        }
    })
    .await;
    println!("rusqlite (r2d2 pool of 8, spawn_blocking): {rusqlite_rate:>9.0} reads/s");

    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(8).connect_with(opts).await.unwrap();
    let sqlx_rate = drive(seconds, concurrency, move |id| {
        let pool = pool.clone();
        async move {
            let row: (i64, String, String, String, String, i64) =
                sqlx::query_as(SELECT).bind(id).fetch_one(&pool).await.unwrap();
            std::hint::black_box(row);
        }
    })
    .await;
    println!("sqlx sqlite (pool of 8):                   {sqlx_rate:>9.0} reads/s");
    println!("rusqlite / sqlx: {:.2}x", rusqlite_rate / sqlx_rate);
}
