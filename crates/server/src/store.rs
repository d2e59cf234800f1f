//! Durable state in an embedded redb database under `--data-dir`:
//! configuration records, collected deletes and the clock's high-water mark.
//! Every write is committed (fsync) before it returns.
//!
//! A store that cannot be read as ours (damaged, truncated, zero-length,
//! foreign bytes) is refused with what to do, never opened as empty: a
//! catalogue rebuilds its configuration from the others when it rejoins,
//! but only once an operator has moved the file aside. redb may panic on
//! some damaged files; opening and loading catch that and report it the
//! same way. After an I/O error redb refuses every later write until the
//! database is opened again: [`Store::reopen`] does that.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rarangi_core::{Durable, KeyRecord, PersistOp};
use rarangi_proto::{parse_line, Message, Ts};
use redb::{Database, ReadableTable, TableDefinition};

const KEYS: TableDefinition<&str, &str> = TableDefinition::new("keys");
const COLLECTED: TableDefinition<&str, u64> = TableDefinition::new("collected");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version this build writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

/// The store's file name inside the data directory.
pub const FILE_NAME: &str = "rarangi.redb";

/// What an operator does about a store that cannot be read.
const MOVE_ASIDE: &str =
    "move it aside; the catalogue rebuilds its configuration from the other catalogues when it rejoins";

/// A storage failure, with the path involved and its cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("store {path}: cannot create its directory")]
    Dir {
        /// Database file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened, read or written.
    #[error("store {path}")]
    Db {
        /// Database file.
        path: String,
        /// What redb said (boxed: redb's error is large).
        #[source]
        source: Box<redb::Error>,
    },
    /// The file is not a readable store: damaged, truncated, empty or
    /// foreign. It is never opened as an empty store.
    #[error("store {path} is damaged ({detail}); {MOVE_ASIDE}")]
    Damaged {
        /// Database file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A stored record does not parse: the file was damaged.
    #[error("store {path}: damaged record under key {key:?}; {MOVE_ASIDE}")]
    Corrupt {
        /// Database file.
        path: String,
        /// The record's key.
        key: String,
    },
    /// The database was written by another version of Rarangi.
    #[error("store {path} has schema version {found}, this build uses {SCHEMA_VERSION}; move it aside (it will be rebuilt from the other catalogues) or run a matching version")]
    Schema {
        /// Database file.
        path: String,
        /// Version found.
        found: u64,
    },
    /// Another process holds the data directory's lock.
    #[error(
        "another catalogue already runs with {dir} (pid {pid}); stop it, or give this one another --data-dir"
    )]
    Locked {
        /// The data directory.
        dir: String,
        /// The holder's process id as its lock file says ("unknown" if unreadable).
        pid: String,
    },
    /// The lock file could not be created or locked.
    #[error("lock file {path}")]
    Lock {
        /// The lock file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database is closed: reopening it after an error failed.
    #[error("store {path} is closed after an error; it is reopened on the next attempt")]
    Closed {
        /// Database file.
        path: String,
    },
}

/// The catalogue's durable store.
pub struct Store {
    /// None after a failed [`Store::reopen`].
    db: Option<Database>,
    file: PathBuf,
    path: String,
    /// The data directory's lock, held while the store is open.
    _lock: std::fs::File,
}

/// The lock file's name inside the data directory; it holds the pid of
/// the catalogue that runs with it.
pub const LOCK_NAME: &str = "rarangi.lock";

/// Takes the data directory's lock (`flock`, so the kernel lets go of it
/// when the process ends, even by a crash: a stale file never blocks) and
/// writes our pid in it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    use rustix::fs::{flock, FlockOperation};
    use std::io::{Read, Seek, Write};
    let file = dir.join(LOCK_NAME);
    let failed = |source: std::io::Error| StoreError::Lock {
        path: file.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&file)
        .map_err(failed)?;
    if let Err(e) = flock(&f, FlockOperation::NonBlockingLockExclusive) {
        if e != rustix::io::Errno::WOULDBLOCK {
            return Err(failed(e.into()));
        }
        let mut text = String::new();
        // Bounded: a pid is a few digits; anything else is not ours.
        let _ = (&mut f).take(32).read_to_string(&mut text);
        let pid = text
            .trim()
            .parse::<u32>()
            .map_or("unknown".to_owned(), |p| p.to_string());
        return Err(StoreError::Locked {
            dir: dir.display().to_string(),
            pid,
        });
    }
    f.set_len(0).map_err(failed)?;
    f.rewind().map_err(failed)?;
    writeln!(f, "{}", std::process::id()).map_err(failed)?;
    Ok(f)
}

impl Store {
    /// Opens (creating if needed) `DIR/rarangi.redb`. A file that exists
    /// but cannot be read as a store is refused ([`StoreError::Damaged`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let file = dir.join(FILE_NAME);
        let path = file.display().to_string();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: path.clone(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let mut store = Self {
            db: None,
            file,
            path,
            _lock: lock,
        };
        store.reopen()?;
        store.check_schema()?;
        Ok(store)
    }

    /// Closes the database and opens it again: redb refuses every write
    /// after an I/O error until then.
    pub fn reopen(&mut self) -> Result<(), StoreError> {
        // redb holds a lock on the file: the old handle goes first.
        self.db = None;
        if std::fs::metadata(&self.file).is_ok_and(|m| m.len() == 0) {
            return Err(self.damaged("the file is empty"));
        }
        let file = self.file.clone();
        let opened = catch_unwind(|| Database::create(&file))
            .map_err(|panic| self.damaged(&format!("reading it failed: {}", panic_text(&panic))))?;
        let db = opened.map_err(|e| self.open_error(e.into()))?;
        self.db = Some(db);
        Ok(())
    }

    /// The open database.
    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_ref().ok_or_else(|| StoreError::Closed {
            path: self.path.clone(),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn damaged(&self, detail: &str) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            detail: detail.to_owned(),
        }
    }

    /// An error from opening: damage is named as such, anything else
    /// (permissions, a full disk, a lock) keeps redb's words.
    fn open_error(&self, e: redb::Error) -> StoreError {
        use std::io::ErrorKind::{InvalidData, UnexpectedEof};
        match &e {
            redb::Error::Corrupted(what) => self.damaged(what),
            redb::Error::UpgradeRequired(v) => {
                self.damaged(&format!("file format {v}, not redb's current one"))
            }
            redb::Error::Io(io) if matches!(io.kind(), InvalidData | UnexpectedEof) => {
                self.damaged(&io.to_string())
            }
            _ => self.err(e),
        }
    }

    /// Checks the schema version; writes only on a new store, so a
    /// catalogue on a full disk still starts (read-only until space is back).
    fn check_schema(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let checked = catch_unwind(AssertUnwindSafe(|| -> Result<(), StoreError> {
            let current = match db.begin_read().map_err(|e| self.err(e))?.open_table(META) {
                Ok(meta) => meta
                    .get("schema")
                    .map_err(|e| self.read_error(e))?
                    .map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(self.err(e)),
            };
            // The tables are created together with the version.
            if current == Some(SCHEMA_VERSION) {
                return Ok(());
            }
            let tx = db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
                let found = meta.get("schema").map_err(|e| self.err(e))?.map(|v| v.value());
                match found {
                    None => {
                        meta.insert("schema", SCHEMA_VERSION).map_err(|e| self.err(e))?;
                    }
                    Some(v) if v == SCHEMA_VERSION => {}
                    Some(found) => {
                        return Err(StoreError::Schema {
                            path: self.path.clone(),
                            found,
                        })
                    }
                }
                tx.open_table(KEYS).map_err(|e| self.err(e))?;
                tx.open_table(COLLECTED).map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))
        }));
        checked.map_err(|panic| self.damaged(&format!("reading it failed: {}", panic_text(&panic))))?
    }

    /// Reads everything back: configuration and the clock high-water mark.
    /// Every record is checked; a damaged one refuses the whole store.
    pub fn load(&self) -> Result<(Durable, Ts), StoreError> {
        self.read(|_| true)
    }

    /// Reads back what the store holds for `keys` only: their records and
    /// collected deletes (to put memory back after a failed commit).
    pub fn load_keys(&self, keys: &[String]) -> Result<Durable, StoreError> {
        self.read(|k| keys.iter().any(|want| want == k)).map(|(d, _)| d)
    }

    fn read(&self, wanted: impl Fn(&str) -> bool) -> Result<(Durable, Ts), StoreError> {
        let db = self.db()?;
        let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<(Durable, Ts), StoreError> {
            let tx = db.begin_read().map_err(|e| self.err(e))?;
            let mut durable = Durable::default();
            let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            for row in keys.iter().map_err(|e| self.err(e))? {
                let (key, line) = row.map_err(|e| self.read_error(e))?;
                let key = key.value();
                if !wanted(key) {
                    continue;
                }
                let rec = decode_record(key, line.value()).ok_or_else(|| StoreError::Corrupt {
                    path: self.path.clone(),
                    key: key.to_owned(),
                })?;
                durable.keys.push(rec);
            }
            let collected = tx.open_table(COLLECTED).map_err(|e| self.err(e))?;
            for row in collected.iter().map_err(|e| self.err(e))? {
                let (k, ts) = row.map_err(|e| self.read_error(e))?;
                if wanted(k.value()) {
                    durable.collected.push((k.value().to_owned(), Ts(ts.value())));
                }
            }
            let meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let clock = meta
                .get("clock")
                .map_err(|e| self.read_error(e))?
                .map_or(0, |v| v.value());
            Ok((durable, Ts(clock)))
        }));
        loaded.map_err(|panic| self.damaged(&format!("reading it failed: {}", panic_text(&panic))))?
    }

    /// A read error: damage is named as such.
    fn read_error(&self, e: redb::StorageError) -> StoreError {
        match e {
            redb::StorageError::Corrupted(what) => self.damaged(&what),
            e => self.err(e),
        }
    }

    /// Applies persist operations and the clock mark in one durable commit.
    pub fn apply(&self, ops: &[PersistOp], clock: Ts) -> Result<(), StoreError> {
        let db = self.db()?;
        let tx = db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            let mut collected = tx.open_table(COLLECTED).map_err(|e| self.err(e))?;
            for op in ops {
                match op {
                    PersistOp::Key(rec) => {
                        keys.insert(rec.key.as_str(), encode_record(rec).as_str())
                            .map_err(|e| self.err(e))?;
                        collected.remove(rec.key.as_str()).map_err(|e| self.err(e))?;
                    }
                    PersistOp::Collect { key, ts } => {
                        keys.remove(key.as_str()).map_err(|e| self.err(e))?;
                        collected.insert(key.as_str(), ts.0).map_err(|e| self.err(e))?;
                    }
                }
            }
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("clock", clock.0).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

/// What a caught panic said.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "redb panicked".to_owned())
}

/// Records are stored as their SET_KEY / DEL_KEY line: one format to read.
fn encode_record(rec: &KeyRecord) -> String {
    match &rec.value {
        Some(value) => Message::SetKey {
            key: rec.key.clone(),
            origin: rec.origin.clone(),
            ts: rec.ts,
            value: value.clone(),
        },
        None => Message::DelKey {
            key: rec.key.clone(),
            origin: rec.origin.clone(),
            ts: rec.ts,
        },
    }
    .encode()
}

/// The record stored under `key`; None unless it parses and names that
/// key.
fn decode_record(key: &str, line: &str) -> Option<KeyRecord> {
    let rec = match parse_line(line.as_bytes()).ok()? {
        Message::SetKey {
            key,
            origin,
            ts,
            value,
        } => KeyRecord {
            key,
            origin,
            ts,
            value: Some(value),
        },
        Message::DelKey { key, origin, ts } => KeyRecord {
            key,
            origin,
            ts,
            value: None,
        },
        _ => return None,
    };
    (rec.key == key && rarangi_proto::validate_key(key).is_ok()).then_some(rec)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
