//! Durable state in an embedded redb database under `--data-dir`:
//! configuration records, collected deletes and the clock's high-water mark.
//! Every write is committed (fsync) before it returns.

use std::path::Path;

use rarangi_core::{Durable, KeyRecord, PersistOp};
use rarangi_proto::{parse_line, Message, Ts};
use redb::{Database, ReadableTable, TableDefinition};

const KEYS: TableDefinition<&str, &str> = TableDefinition::new("keys");
const COLLECTED: TableDefinition<&str, u64> = TableDefinition::new("collected");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version this build writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

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
    /// A stored record does not parse: the file was damaged.
    #[error("store {path}: damaged record under key {key:?}; move the file aside (it will be rebuilt from the other catalogues)")]
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
}

/// The catalogue's durable store.
pub struct Store {
    db: Database,
    path: String,
}

impl Store {
    /// Opens (creating if needed) `DIR/rarangi.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let file = dir.join("rarangi.redb");
        let path = file.display().to_string();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: path.clone(),
            source,
        })?;
        let db = Database::create(&file).map_err(|e| StoreError::Db {
            path: path.clone(),
            source: Box::new(e.into()),
        })?;
        let store = Self { db, path };
        store.check_schema()?;
        Ok(store)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
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
    }

    /// Reads everything back: configuration and the clock high-water mark.
    pub fn load(&self) -> Result<(Durable, Ts), StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut durable = Durable::default();
        let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        for row in keys.iter().map_err(|e| self.err(e))? {
            let (key, line) = row.map_err(|e| self.err(e))?;
            let rec = decode_record(line.value()).ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                key: key.value().to_owned(),
            })?;
            durable.keys.push(rec);
        }
        let collected = tx.open_table(COLLECTED).map_err(|e| self.err(e))?;
        for row in collected.iter().map_err(|e| self.err(e))? {
            let (k, ts) = row.map_err(|e| self.err(e))?;
            durable.collected.push((k.value().to_owned(), Ts(ts.value())));
        }
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let clock = meta
            .get("clock")
            .map_err(|e| self.err(e))?
            .map_or(0, |v| v.value());
        Ok((durable, Ts(clock)))
    }

    /// Applies persist operations and the clock mark in one durable commit.
    pub fn apply(&self, ops: &[PersistOp], clock: Ts) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
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

fn decode_record(line: &str) -> Option<KeyRecord> {
    match parse_line(line.as_bytes()).ok()? {
        Message::SetKey {
            key,
            origin,
            ts,
            value,
        } => Some(KeyRecord {
            key,
            origin,
            ts,
            value: Some(value),
        }),
        Message::DelKey { key, origin, ts } => Some(KeyRecord {
            key,
            origin,
            ts,
            value: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rarangi_proto::CatalogueUri;

    #[test]
    fn survives_reopen_and_refuses_other_schemas() {
        let dir = std::env::temp_dir().join(format!("rarangi-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let origin = CatalogueUri::from_addr("a:1").unwrap();
        {
            let s = Store::open(&dir).unwrap();
            let rec = KeyRecord {
                key: "app/x".into(),
                origin: origin.clone(),
                ts: Ts(5),
                value: Some("{\"a\": 1}".into()),
            };
            s.apply(&[PersistOp::Key(rec)], Ts(9)).unwrap();
            s.apply(
                &[PersistOp::Collect {
                    key: "app/y".into(),
                    ts: Ts(3),
                }],
                Ts(10),
            )
            .unwrap();
        }
        let s = Store::open(&dir).unwrap();
        let (d, clock) = s.load().unwrap();
        assert_eq!(clock, Ts(10));
        assert_eq!(d.keys[0].value.as_deref(), Some("{\"a\": 1}"));
        assert_eq!(d.collected, vec![("app/y".to_owned(), Ts(3))]);
        {
            let tx = s.db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("schema", 99).unwrap();
            tx.commit().unwrap();
        }
        drop(s);
        let e = Store::open(&dir).err().unwrap();
        assert!(e.to_string().contains("schema version 99"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
