//! A real conversation between two catalogues, a service, a subscriber and
//! a topology follower, driven through the core and the wire codec. It is
//! the example in docs/PROTOCOL.md (a test keeps the two equal); print it
//! with `cargo run -p rarangi-sim --example transcript`.
//!
//! WELCOME lines are exchanged by the daemon, not the core; they are written
//! here as the daemon sends them.

use std::fmt::{self, Write as _};

use rarangi_core::{Catalogue, ClientId, Config, Durable, Output};
use rarangi_proto::{parse_line, CatalogueUri, Message, Ts};

/// The conversation, one line per message, as docs/PROTOCOL.md shows it
/// before elision.
pub fn transcript() -> String {
    let t0 = 1_700_000_000_000;
    let mut t = Talk::new(t0);
    let (ua, ub) = (t.ua.clone(), t.ub.clone());
    let (svc, sub) = (ClientId(1), ClientId(2));

    t.say(format_args!(
        "# B accepts A's connection; each side sends WELCOME"
    ));
    t.say(format_args!("B→A  0 {ub} eu development"));
    t.say(format_args!("A→B  0 {ua} eu development"));
    t.link(t0 + 10, true);
    t.pump(t0 + 11);

    t.say(format_args!("\n# A service registers at B"));
    t.b.client_connected(svc, true);
    t.client_says(
        Side::B,
        svc,
        "svc",
        "7 tcp://10.0.0.2:8080/orders weight=10",
        t0 + 20,
    );
    t.pump(t0 + 21);

    t.say(format_args!("\n# A client subscribes at A: snapshot, end marker"));
    t.a.client_connected(sub, false);
    t.client_says(Side::A, sub, "client", "8 ^tcp://[^/]*/orders", t0 + 30);
    t.show_clients_of_a();

    t.say(format_args!(
        "\n# The service process dies: its connection closes"
    ));
    t.b.client_disconnected(t0 + 40, svc);
    t.pump(t0 + 41);

    t.say(format_args!("\n# A tool follows the topology"));
    let tool = ClientId(3);
    t.a.client_connected(tool, false);
    t.client_says(Side::A, tool, "client", "13", t0 + 50);
    t.show_clients_of_a();

    t.say(format_args!("\n# Errors keep the connection open"));
    for line in [
        "8 (unclosed",
        "7 tcp://10.0.0.9:80/orders",
        "3 x-tvnetcs://a:1/ x-tvnetcs://b:1/ 5",
        "11 tcp://10.0.0.9:80/x",
    ] {
        t.client_says(Side::A, tool, "client", line, t0 + 60);
        t.show_clients_of_a();
    }
    match parse_line(b"7 tcp://10.0.0.9:80") {
        Err(e) => t.say(format_args!(
            "client→cat  7 tcp://10.0.0.9:80\nA→client  {}",
            e.to_message().encode()
        )),
        Ok(_) => unreachable!(),
    }

    t.say(format_args!(
        "\n# The link drops; 40 services register at B meanwhile; the link comes back"
    ));
    t.link(t0 + 70, false);
    t.pump(t0 + 70);
    t.b.client_connected(ClientId(4), true);
    t.register_unseen(ClientId(4), t0 + 71, "10.0.1", 0..40, "orders");
    t.link(t0 + 72, true);
    t.pump(t0 + 73);
    t.say(format_args!(
        "\n# 3 billing services register and are lost in flight as the link drops; 3 more; re-link"
    ));
    t.b.client_connected(ClientId(5), true);
    t.register_unseen(ClientId(5), t0 + 80, "10.0.2", 0..3, "billing");
    t.link(t0 + 90, false);
    t.b.drain();
    t.a.drain();
    t.register_unseen(ClientId(5), t0 + 91, "10.0.2", 3..6, "billing");
    t.b.drain();
    t.link(t0 + 95, true);
    t.pump(t0 + 96);
    t.out
}

/// Which of the two catalogues.
#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

/// Two linked catalogues and the transcript of what they say.
struct Talk {
    out: String,
    a: Catalogue,
    b: Catalogue,
    ua: CatalogueUri,
    ub: CatalogueUri,
}

impl Talk {
    fn new(t0: u64) -> Self {
        let ua = CatalogueUri::from_addr("10.0.0.1:4790").unwrap();
        let ub = CatalogueUri::from_addr("10.0.0.2:4790").unwrap();
        let start = |uri: &CatalogueUri, now| {
            Catalogue::new(
                Config::new(uri.clone(), "eu", "development"),
                Durable::default(),
                Ts(0),
                now,
            )
        };
        Self {
            out: String::new(),
            a: start(&ua, t0),
            b: start(&ub, t0 + 3),
            ua,
            ub,
        }
    }

    /// Writes one line of the transcript.
    fn say(&mut self, line: fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Both ends learn the link between them went up or down.
    fn link(&mut self, now: u64, up: bool) {
        if up {
            self.a.link_up(now, &self.ub);
            self.b.link_up(now, &self.ua);
        } else {
            self.a.link_down(now, &self.ub);
            self.b.link_down(now, &self.ua);
        }
    }

    /// A client sends a catalogue a line, shown in the transcript.
    fn client_says(&mut self, side: Side, id: ClientId, who: &str, line: &str, now: u64) {
        self.say(format_args!("{who}→cat  {line}"));
        let c = match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        };
        c.client_message(now, id, parse_line(line.as_bytes()).unwrap());
    }

    /// A client registers `tcp://PREFIX.I:8080/NAME` at B for each I,
    /// left out of the transcript.
    fn register_unseen(
        &mut self,
        id: ClientId,
        now: u64,
        prefix: &str,
        hosts: std::ops::Range<u32>,
        name: &str,
    ) {
        for i in hosts {
            let line = format!("7 tcp://{prefix}.{i}:8080/{name}");
            self.b
                .client_message(now, id, parse_line(line.as_bytes()).unwrap());
        }
    }

    /// Shows what A sent its clients.
    fn show_clients_of_a(&mut self) {
        for o in self.a.drain() {
            self.show_client_messages("A", &o);
        }
    }

    fn show_client_messages(&mut self, from: &str, o: &Output) {
        for msg in o.client_messages().map_or(&[][..], |(_, m)| m) {
            self.say(format_args!("{from}→client  {}", msg.encode()));
        }
    }

    /// Carries messages between A and B, through the wire encoding, until
    /// neither has anything more to say.
    fn pump(&mut self, now: u64) {
        loop {
            let mut moved = false;
            for (from, outs) in [(Side::A, self.a.drain()), (Side::B, self.b.drain())] {
                let (name, to_name) = match from {
                    Side::A => ("A", "B"),
                    Side::B => ("B", "A"),
                };
                for o in outs {
                    let Output::ToPeer { msg, .. } = &o else {
                        self.show_client_messages(name, &o);
                        continue;
                    };
                    self.say(format_args!("{name}→{to_name}  {}", msg.encode()));
                    let m: Message = parse_line(msg.encode().as_bytes()).unwrap();
                    match from {
                        Side::A => self.b.peer_message(now, &self.ua, m),
                        Side::B => self.a.peer_message(now, &self.ub, m),
                    }
                    moved = true;
                }
            }
            if !moved {
                break;
            }
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
