//! Target `parser`: `parse_line` on arbitrary and near-valid lines.
//!
//! Checks: it never panics; whatever parses re-encodes to one line (no CR
//! or LF) that parses to the same message.

use rarangi_proto::{parse_line, MessageKind, DEFAULT_MAX_LINE};

use crate::engine::{smaller_vec, Target};
use crate::gen::Gen;

/// The line-parser target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parser;

/// One line given to the parser.
#[derive(Clone)]
pub struct Line(pub Vec<u8>);

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Escaped, so control bytes and invalid UTF-8 show up; huge lines
        // are cut for reading.
        let shown: String = self.0.escape_ascii().to_string().chars().take(4000).collect();
        write!(f, "Line({} bytes) b\"{shown}\"", self.0.len())
    }
}

impl Target for Parser {
    type Input = Line;

    fn name(&self) -> &'static str {
        "parser"
    }

    fn generate(&self, g: &mut Gen) -> Line {
        let now = g.u64() >> 16;
        Line(match g.below(8) {
            0 => g.bytes(300),
            1 => g.message(now).encode().into_bytes(),
            _ => {
                let mut line = g.message(now).encode().into_bytes();
                for _ in 0..=g.below(3) {
                    mutate(g, &mut line);
                }
                line
            }
        })
    }

    fn check(&self, input: &Line) {
        let Ok(msg) = parse_line(&input.0) else {
            return;
        };
        let line = msg.encode();
        assert!(
            !line.contains(['\n', '\r']),
            "encoded line holds CR or LF: {line:?}"
        );
        let back = parse_line(line.as_bytes());
        assert_eq!(
            back.as_ref(),
            Ok(&msg),
            "re-encoded line {line:?} parses differently"
        );
    }

    fn smaller(&self, input: &Line) -> Vec<Line> {
        // Whole fields first, then bytes (only for short lines: a huge line
        // shrinks by halves).
        let fields: Vec<&[u8]> = input.0.split(|b| *b == b' ').collect();
        let mut out: Vec<Line> = smaller_vec(&fields)
            .into_iter()
            .map(|fs| Line(fs.join(&b' ')))
            .collect();
        if input.0.len() <= 512 {
            out.extend(smaller_vec(&input.0).into_iter().map(Line));
        } else {
            let half = input.0.len() / 2;
            out.push(Line(input.0[..half].to_vec()));
            out.push(Line(input.0[half..].to_vec()));
        }
        out
    }
}

/// One structural mutation of an encoded line.
fn mutate(g: &mut Gen, line: &mut Vec<u8>) {
    const ESCAPES: [&str; 10] = [
        "%", "%2", "%zz", "%25", "%20", "%0A", "%0D", "%00", "%C3%28", "%FF",
    ];
    const CONTROL: [u8; 6] = [0, b'\t', b'\r', b'\n', 0x7f, 0x1b];
    let mut fields: Vec<Vec<u8>> = line.split(|b| *b == b' ').map(<[u8]>::to_vec).collect();
    let i = g.below(fields.len());
    match g.below(12) {
        // A field replaced by random text.
        0 => fields[i] = g.text(12).into_bytes(),
        // A huge field, sometimes over the line limit.
        1 => {
            let n = if g.chance(1, 8) {
                DEFAULT_MAX_LINE + g.below(64)
            } else {
                g.below(5000)
            };
            fields[i] = vec![b'a' + g.below(26) as u8; n];
        }
        // A control byte inside a field.
        2 => {
            let at = g.below(fields[i].len() + 1);
            fields[i].insert(at, g.pick(&CONTROL));
        }
        // A percent-escape (valid, truncated, invalid hex or invalid UTF-8).
        3 => {
            let at = g.below(fields[i].len() + 1);
            let esc = g.pick(&ESCAPES).as_bytes();
            fields[i].splice(at..at, esc.iter().copied());
        }
        // A field dropped or duplicated, or an empty one added.
        4 if fields.len() > 1 => {
            fields.remove(i);
        }
        5 => fields.insert(i, fields[i].clone()),
        6 => fields.insert(i, Vec::new()),
        // The code as a keyword in any case, or an out-of-range code.
        7 => {
            let kind = MessageKind::from_field(&String::from_utf8_lossy(&fields[0]));
            fields[0] = match kind {
                Some(k) if g.chance(2, 3) => k
                    .keyword()
                    .chars()
                    .map(|c| if g.chance(1, 2) { c.to_ascii_lowercase() } else { c })
                    .collect::<String>()
                    .into_bytes(),
                _ => g
                    .pick(&["20", "255", "-1", "007", "+3", "99999999999999999999"])
                    .into(),
            };
        }
        // A number changed to an edge value.
        8 => {
            let n = [
                "0",
                "18446744073709551615",
                "18446744073709551616",
                "-0",
                "1e3",
                "",
            ];
            fields[i] = g.pick(&n).into();
        }
        // Line endings.
        9 => {
            let endings: [&[u8]; 4] = [b"\n", b"\r\n", b"\r", b"\n\n"];
            fields
                .last_mut()
                .expect("split yields a field")
                .extend_from_slice(g.pick(&endings));
        }
        // A random byte overwritten.
        _ => {
            if !fields[i].is_empty() {
                let at = g.below(fields[i].len());
                fields[i][at] = g.u64() as u8;
            }
        }
    }
    *line = fields.join(&b' ');
}
