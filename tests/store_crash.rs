//! Crash safety of the store: a child process ingests readings in batches and reports
//! each committed batch; the parent `kill -9`s it at a random moment, reopens the store
//! and checks that everything reported is there, intact, and that at most the one batch
//! in flight is missing. Rounds continue the same sequence in the same directory. The
//! child folds the store's head every third batch, so kills also land in folds: nothing
//! is lost or shown twice by one.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smollama::graph::{Item, Micros, Reading, ShortText, SourceId, Value};
use smollama::store::{Store, StoreOptions};

const CHILD: &str = "crash_child";
const ENV_DIR: &str = "SMOLLAMA_CRASH_DIR";
const ENV_START: &str = "SMOLLAMA_CRASH_START";
const BATCH: u64 = 500;
const SOURCES: u64 = 3;
const ROUNDS: usize = 24;
/// Safety net: a child that is never killed stops by itself.
const CHILD_MAX_BATCHES: u64 = 5_000;

fn opts() -> StoreOptions {
    StoreOptions {
        map_size: 256 << 20,
    }
}

/// The reading with sequence number `seq`: a pure function, so the parent can check
/// every stored value without talking to the child.
fn reading(seq: u64) -> Reading {
    let source = (seq % SOURCES) as u32;
    let value = match source {
        0 => Value::Number(seq as f64 * 0.5 - 1000.0),
        1 => Value::Bool(seq.is_multiple_of(2)),
        _ => Value::Text(ShortText::new(&format!("state-{seq}"))),
    };
    Reading {
        source: SourceId(source),
        // Distinct per sequence number, negative for the first ones.
        ts: seq as Micros * 1000 - 5_000_000,
        value,
        flags: (seq % 4) as u8,
    }
}

/// The child: ingest from `$SMOLLAMA_CRASH_START` until killed, printing
/// `committed <highest seq>` after each successful commit.
#[test]
#[ignore]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let mut seq: u64 = std::env::var(ENV_START).unwrap().parse().unwrap();
    let store = Store::open(Path::new(&dir), &opts()).unwrap();
    let mut out = std::io::stdout().lock();
    let mut batch = Vec::with_capacity(BATCH as usize);
    let mut fold_buf = Vec::new();
    for _ in 0..CHILD_MAX_BATCHES {
        batch.clear();
        batch.extend((seq..seq + BATCH).map(|s| Item::Reading(reading(s))));
        store.write_batch(&[], &batch).unwrap();
        seq += BATCH;
        writeln!(out, "committed {}", seq - 1).unwrap();
        out.flush().unwrap();
        // Fold the head into the per-source table every third batch, as the writer
        // does when the head is full: kills land in folds too.
        if (seq / BATCH).is_multiple_of(3) {
            store.fold(&mut fold_buf).unwrap();
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every reading `0..n` is present with its value, and nothing else.
fn verify(store: &Store, n: u64) {
    assert_eq!(store.counts().unwrap().readings, n);
    for s in 0..SOURCES {
        let got = store
            .history(SourceId(s as u32), Micros::MIN, Micros::MAX, usize::MAX)
            .unwrap();
        let want: Vec<Reading> = (0..n)
            .rev()
            .filter(|q| q % SOURCES == s)
            .map(reading)
            .collect();
        if got != want {
            let first_bad = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "source {s}: {} readings stored, {} expected; first difference at {first_bad:?}",
                got.len(),
                want.len()
            );
        }
    }
}

#[test]
fn kill_9_loses_nothing_committed() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = XorShift(seed);
    let dir = TempDir(
        std::env::temp_dir().join(format!("smollama-crash-{}-{nanos}", std::process::id())),
    );
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut next: u64 = 0; // readings 0..next are in the store
    let mut unreported = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD, "--nocapture", "--ignored"])
            .env(ENV_DIR, &dir.0)
            .env(ENV_START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("committed ") {
                    let _ = tx.send(n.trim().parse::<u64>().unwrap());
                }
            }
        });

        // Let it commit 0..12 batches, then kill it within a few ms: sometimes while it
        // opens the store, mostly in the middle of a write transaction or its fsync.
        let wait_commits = rng.next() % 12;
        let mut reported: Option<u64> = None;
        for _ in 0..wait_commits {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(n) => reported = Some(n),
                Err(e) => panic!("round {round}: child stopped reporting: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 4000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child ended by itself"
        );
        reader.join().unwrap();
        // Lines written before the kill are still in the pipe.
        while let Ok(n) = rx.try_recv() {
            reported = Some(n);
        }

        let store = Store::open(&dir.0, &opts())
            .unwrap_or_else(|e| panic!("round {round}: store does not open after kill -9: {e}"));
        let must_have = reported.map_or(next, |n| n + 1);
        if let Some(n) = reported {
            assert_eq!((n + 1 - next) % BATCH, 0, "round {round}: odd report {n}");
        }
        let present = store.counts().unwrap().readings;
        // Everything reported is there; beyond it at most the batch that committed
        // between its fsync and its report.
        assert!(
            present == must_have || present == must_have + BATCH,
            "round {round}: {present} readings stored, {must_have} reported committed"
        );
        if present > must_have {
            unreported += 1;
        }
        verify(&store, present);
        drop(store);
        next = present;
    }
    eprintln!(
        "crash test: {ROUNDS} kills, {next} readings, {unreported} batch(es) committed but \
         not yet reported at the kill, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(next > 0, "no round committed anything");
}
