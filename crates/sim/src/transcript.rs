//! A real conversation between two catalogues, a service, a subscriber and
//! a topology follower, driven through the core and the wire codec. It is
//! the example in docs/PROTOCOL.md (a test keeps the two equal); print it
//! with `cargo run -p rarangi-sim --example transcript`.
//!
//! WELCOME lines are exchanged by the daemon, not the core; they are written
//! here as the daemon sends them.

macro_rules! say_line {
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($t)*);
    }};
}

use rarangi_core::{Catalogue, ClientId, Config, Durable, Output};
use rarangi_proto::{parse_line, CatalogueUri, Message, Ts};

/// The conversation, one line per message, as docs/PROTOCOL.md shows it
/// before elision.
pub fn transcript() -> String {
    let mut out = String::new();
    let sink = &mut out;
    let t0 = 1_700_000_000_000;
    let ua = CatalogueUri::from_addr("10.0.0.1:4790").unwrap();
    let ub = CatalogueUri::from_addr("10.0.0.2:4790").unwrap();
    let mut a = Catalogue::new(
        Config::new(ua.clone(), "eu", "development"),
        Durable::default(),
        Ts(0),
        t0,
    );
    let mut b = Catalogue::new(
        Config::new(ub.clone(), "eu", "development"),
        Durable::default(),
        Ts(0),
        t0 + 3,
    );
    let (svc, sub) = (ClientId(1), ClientId(2));

    say_line!(sink, "# B accepts A's connection; each side sends WELCOME");
    say_line!(sink, "B→A  0 {ub} eu development");
    say_line!(sink, "A→B  0 {ua} eu development");
    a.link_up(t0 + 10, &ub);
    b.link_up(t0 + 10, &ua);
    pump(sink, &mut a, &mut b, &ua, &ub, t0 + 11);

    say_line!(sink, "\n# A service registers at B");
    b.client_connected(svc, true);
    say(
        sink,
        &mut b,
        svc,
        "svc",
        "7 tcp://10.0.0.2:8080/orders weight=10",
        t0 + 20,
    );
    pump(sink, &mut a, &mut b, &ua, &ub, t0 + 21);

    say_line!(sink, "\n# A client subscribes at A: snapshot, end marker");
    a.client_connected(sub, false);
    say(sink, &mut a, sub, "client", "8 ^tcp://[^/]*/orders", t0 + 30);
    show_clients(sink, &mut a, "A");

    say_line!(sink, "\n# The service process dies: its connection closes");
    b.client_disconnected(t0 + 40, svc);
    pump(sink, &mut a, &mut b, &ua, &ub, t0 + 41);

    say_line!(sink, "\n# A tool follows the topology");
    let tool = ClientId(3);
    a.client_connected(tool, false);
    say(sink, &mut a, tool, "client", "13", t0 + 50);
    show_clients(sink, &mut a, "A");

    say_line!(sink, "\n# Errors keep the connection open");
    for line in [
        "8 (unclosed",
        "7 tcp://10.0.0.9:80/orders",
        "3 x-tvnetcs://a:1/ x-tvnetcs://b:1/ 5",
        "11 tcp://10.0.0.9:80/x",
    ] {
        say(sink, &mut a, tool, "client", line, t0 + 60);
        show_clients(sink, &mut a, "A");
    }
    match parse_line(b"7 tcp://10.0.0.9:80") {
        Err(e) => say_line!(
            sink,
            "client→cat  7 tcp://10.0.0.9:80\nA→client  {}",
            e.to_message().encode()
        ),
        Ok(_) => unreachable!(),
    }

    say_line!(
        sink,
        "\n# The link drops; 40 services register at B meanwhile; the link comes back"
    );
    a.link_down(t0 + 70, &ub);
    b.link_down(t0 + 70, &ua);
    pump(sink, &mut a, &mut b, &ua, &ub, t0 + 70);
    b.client_connected(ClientId(4), true);
    for i in 0..40 {
        let line = format!("7 tcp://10.0.1.{i}:8080/orders");
        b.client_message(t0 + 71, ClientId(4), parse_line(line.as_bytes()).unwrap());
    }
    b.link_up(t0 + 72, &ua);
    a.link_up(t0 + 72, &ub);
    pump(sink, &mut a, &mut b, &ua, &ub, t0 + 73);
    say_line!(
        sink,
        "\n# 3 billing services register and are lost in flight as the link drops; 3 more; re-link"
    );
    b.client_connected(ClientId(5), true);
    for i in 0..3 {
        let line = format!("7 tcp://10.0.2.{i}:8080/billing");
        b.client_message(t0 + 80, ClientId(5), parse_line(line.as_bytes()).unwrap());
    }
    b.link_down(t0 + 90, &ua);
    a.link_down(t0 + 90, &ub);
    b.drain();
    a.drain();
    for i in 3..6 {
        let line = format!("7 tcp://10.0.2.{i}:8080/billing");
        b.client_message(t0 + 91, ClientId(5), parse_line(line.as_bytes()).unwrap());
    }
    b.drain();
    b.link_up(t0 + 95, &ua);
    a.link_up(t0 + 95, &ub);
    pump(sink, &mut a, &mut b, &ua, &ub, t0 + 96);
    out
}

fn say(sink: &mut String, c: &mut Catalogue, id: ClientId, who: &str, line: &str, now: u64) {
    say_line!(sink, "{who}→cat  {line}");
    c.client_message(now, id, parse_line(line.as_bytes()).unwrap());
}

fn show_clients(sink: &mut String, c: &mut Catalogue, name: &str) {
    for o in c.drain() {
        for msg in o.client_messages().map_or(&[][..], |(_, m)| m) {
            say_line!(sink, "{name}→client  {}", msg.encode());
        }
    }
}

fn pump(
    sink: &mut String,
    a: &mut Catalogue,
    b: &mut Catalogue,
    ua: &CatalogueUri,
    ub: &CatalogueUri,
    now: u64,
) {
    loop {
        let mut moved = false;
        for (from, outs) in [("A", a.drain()), ("B", b.drain())] {
            for o in outs {
                match o {
                    Output::ToPeer { msg, .. } => {
                        let to = if from == "A" { "B" } else { "A" };
                        say_line!(sink, "{from}→{to}  {}", msg.encode());
                        let m: Message = parse_line(msg.encode().as_bytes()).unwrap();
                        if from == "A" {
                            b.peer_message(now, ua, m);
                        } else {
                            a.peer_message(now, ub, m);
                        }
                        moved = true;
                    }
                    other => {
                        for msg in other.client_messages().map_or(&[][..], |(_, m)| m) {
                            say_line!(sink, "{from}→client  {}", msg.encode());
                        }
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
}

/// The transcript as docs/PROTOCOL.md shows it: runs of the 40 similar
/// registration lines elided.
pub fn for_docs() -> String {
    let text = transcript();
    let mut out: Vec<String> = Vec::new();
    let mut skipped = 0;
    for l in text.lines() {
        if l.starts_with("A→client  5 tcp://10.0.1.") || l.starts_with("B→A  5 tcp://10.0.1.") {
            if skipped == 0 {
                out.push(l.to_owned());
            }
            skipped += 1;
            continue;
        }
        if skipped > 1 {
            out.push(format!("… ({} more like the line above)", skipped - 1));
        }
        skipped = 0;
        out.push(l.to_owned());
    }
    out.join("\n").trim().to_owned()
}
