//! Tests of the token file, the token headers and the exposure rule.

use super::*;

fn table(text: &str) -> Result<Table, (usize, String)> {
    parse(text)
}

#[test]
fn token_files() {
    let t = table("# ops\n\nalpha-1 write\n  beta read  \n").unwrap();
    assert_eq!(t.access(b"alpha-1"), Some(Access::Write));
    assert_eq!(t.access(b"beta"), Some(Access::Read));
    assert_eq!(t.access(b"alpha"), None);
    assert_eq!(t.access(b""), None);
    assert_eq!(table("a read\nb\n").err().unwrap().0, 2);
    assert_eq!(table("a read\n\n#\nb admin\n").err().unwrap().0, 4);
    assert_eq!(table("a read extra\n").err().unwrap().0, 1);
    assert_eq!(table("a read\na write\n").err().unwrap().0, 2);
    assert!(table("").unwrap().0.is_empty());
}

#[test]
fn a_bad_file_names_its_line_and_an_empty_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("rarangi-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad");
    std::fs::write(&bad, "good write\noops\n").unwrap();
    let e = TokenFile::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad:2:"), "{e}");
    let empty = dir.join("empty");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    assert!(matches!(
        TokenFile::load(&empty),
        Err(TokenFileError::Empty { .. })
    ));
    let good = dir.join("good");
    std::fs::write(&good, "s3cret write\n").unwrap();
    let f = TokenFile::load(&good).unwrap();
    assert_eq!(f.access("s3cret"), Some(Access::Write));
    assert!(!format!("{f:?}").contains("s3cret"));
    assert!(TokenFile::load(&dir.join("missing")).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tokens_come_in_three_headers() {
    let with = |name: &str, value: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    };
    assert_eq!(presented(&with("authorization", "Bearer t1")), Some("t1"));
    assert_eq!(presented(&with("authorization", "bearer t1")), Some("t1"));
    assert_eq!(presented(&with("authorization", "Basic dTpw")), None);
    assert_eq!(presented(&with("x-rarangi-token", "t2")), Some("t2"));
    assert_eq!(presented(&with("x-consul-token", "t3")), Some("t3"));
    assert_eq!(presented(&HeaderMap::new()), None);
}

#[test]
fn beyond_loopback_needs_tokens_or_insecure() {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert!(check_exposure(a("127.0.0.1:4792"), false, false).is_ok());
    assert!(check_exposure(a("[::1]:4792"), false, false).is_ok());
    let e = check_exposure(a("0.0.0.0:4762"), false, false).unwrap_err();
    assert!(
        e.contains("--http-token-file") && e.contains("--http-insecure"),
        "{e}"
    );
    assert!(check_exposure(a("0.0.0.0:4762"), true, false).is_ok());
    assert!(check_exposure(a("10.0.0.1:4762"), false, true).is_ok());
}
