//! The example conversations in docs/PROTOCOL.md are real protocol lines.

use rarangi_proto::{parse_line, Message};

#[test]
fn docs_examples_parse() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md exists");
    let mut checked = 0;
    let lines: Vec<&str> = doc.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some((who, wire)) = line.split_once("  ") else {
            continue;
        };
        if !who.contains('→') || who.contains(' ') {
            continue;
        }
        let parsed = parse_line(wire.as_bytes());
        // Bad input shown on purpose is followed by the ERROR it gets.
        let answered_with_error = lines.get(i + 1).is_some_and(|n| n.contains("→client  2 "));
        if answered_with_error && parsed.is_err() {
            continue;
        }
        let msg = parsed.unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
        // Catalogues send the numeric form; re-encoding gives the same line.
        if !matches!(msg, Message::Error { .. }) {
            assert_eq!(msg.encode(), wire, "{line:?}");
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} example lines found");
}
