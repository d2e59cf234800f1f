//! Tests of the store: round trips, schema, and refusing damaged files
//! without panicking.

use super::*;
use rarangi_proto::CatalogueUri;

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rarangi-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join(FILE_NAME)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(key: &str, ts: u64, value: &str) -> KeyRecord {
    KeyRecord {
        key: key.into(),
        origin: CatalogueUri::from_addr("a:1").unwrap(),
        ts: Ts(ts),
        value: Some(value.into()),
    }
}

/// A store with a few records, closed.
fn written(dir: &TempDir) {
    let s = Store::open(&dir.0).unwrap();
    let ops: Vec<PersistOp> = (0..50)
        .map(|i| PersistOp::Key(record(&format!("app/a{i}"), i + 1, &"x".repeat(300))))
        .collect();
    s.apply(&ops, Ts(99)).unwrap();
}

#[test]
fn survives_reopen_and_refuses_other_schemas() {
    let dir = TempDir::new("schema");
    {
        let s = Store::open(&dir.0).unwrap();
        s.apply(&[PersistOp::Key(record("app/x", 5, "{\"a\": 1}"))], Ts(9))
            .unwrap();
        s.apply(
            &[PersistOp::Collect {
                key: "app/y".into(),
                ts: Ts(3),
            }],
            Ts(10),
        )
        .unwrap();
    }
    let s = Store::open(&dir.0).unwrap();
    let (d, clock) = s.load().unwrap();
    assert_eq!(clock, Ts(10));
    assert_eq!(d.keys[0].value.as_deref(), Some("{\"a\": 1}"));
    assert_eq!(d.collected, vec![("app/y".to_owned(), Ts(3))]);
    let only = s.load_keys(&["app/y".to_owned()]).unwrap();
    assert!(only.keys.is_empty());
    assert_eq!(only.collected, d.collected);
    {
        let tx = s.db().unwrap().begin_write().unwrap();
        tx.open_table(META).unwrap().insert("schema", 99).unwrap();
        tx.commit().unwrap();
    }
    drop(s);
    let e = Store::open(&dir.0).err().unwrap();
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn reopening_keeps_the_data() {
    let dir = TempDir::new("reopen");
    written(&dir);
    let mut s = Store::open(&dir.0).unwrap();
    s.reopen().unwrap();
    s.apply(&[PersistOp::Key(record("app/b", 200, "{}"))], Ts(200))
        .unwrap();
    let (d, clock) = s.load().unwrap();
    assert_eq!((d.keys.len(), clock), (51, Ts(200)));
}

/// The refusal every damaged file gets: what is wrong and what to do.
fn assert_refused(dir: &TempDir, what: &str) {
    let e = match Store::open(&dir.0).and_then(|s| s.load()) {
        Ok(_) => panic!("{what}: a damaged store was opened"),
        Err(e) => e,
    };
    let text = crate::error_chain(&e);
    assert!(
        matches!(e, StoreError::Damaged { .. } | StoreError::Corrupt { .. }),
        "{what}: {text}"
    );
    assert!(text.contains("move it aside"), "{what}: {text}");
    assert!(text.contains(FILE_NAME), "{what}: {text}");
}

#[test]
fn a_zero_length_store_is_refused_not_started_empty() {
    let dir = TempDir::new("empty");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.file(), b"").unwrap();
    assert_refused(&dir, "zero-length");
    assert_eq!(std::fs::metadata(dir.file()).unwrap().len(), 0, "left as it was");
}

#[test]
fn a_truncated_store_is_refused_without_a_panic() {
    let dir = TempDir::new("truncated");
    written(&dir);
    let len = std::fs::metadata(dir.file()).unwrap().len();
    for keep in [len / 2, 4096, 1000, 100, 9] {
        let f = std::fs::OpenOptions::new().write(true).open(dir.file()).unwrap();
        f.set_len(keep).unwrap();
        drop(f);
        assert_refused(&dir, &format!("truncated to {keep} bytes"));
    }
}

#[test]
fn random_bytes_are_refused_without_a_panic() {
    let dir = TempDir::new("random");
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for size in [1, 100, 4096, 70_000] {
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                // xorshift: deterministic noise.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        std::fs::write(dir.file(), &bytes).unwrap();
        assert_refused(&dir, &format!("{size} random bytes"));
    }
}

#[test]
fn a_record_under_the_wrong_key_is_refused() {
    let dir = TempDir::new("wrongkey");
    {
        let s = Store::open(&dir.0).unwrap();
        let tx = s.db().unwrap().begin_write().unwrap();
        let line = encode_record(&record("app/other", 1, "{}"));
        tx.open_table(KEYS)
            .unwrap()
            .insert("app/x", line.as_str())
            .unwrap();
        tx.commit().unwrap();
    }
    assert_refused(&dir, "record under another key");
}

#[test]
fn a_second_store_on_the_same_directory_names_the_first_ones_pid() {
    let dir = TempDir::new("lock");
    let first = Store::open(&dir.0).unwrap();
    let e = Store::open(&dir.0).err().unwrap();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "another catalogue already runs with {} (pid {})",
            dir.0.display(),
            std::process::id()
        )),
        "{text}"
    );
    drop(first);
    // Released with the store; a leftover file (a crash) does not block.
    assert!(dir.0.join(LOCK_NAME).exists());
    Store::open(&dir.0).unwrap();
}
