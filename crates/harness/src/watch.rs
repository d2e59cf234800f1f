//! Line-protocol subscribers: a [`Watcher`] that follows a subscription and
//! records when each change arrived, and one-shot lookups.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rarangi_client::{Connection, Options};
use rarangi_proto::Message;

use crate::{clock, Error};

/// A change to a watched service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// ADD_SERV arrived.
    Added,
    /// DEL_SERV arrived.
    Removed,
}

#[derive(Default)]
struct Seen {
    /// "SERVICE @CATALOGUE-ADDR" of every record shown now.
    records: BTreeSet<String>,
    /// When each (service URI, change) arrived, in order.
    arrivals: HashMap<(String, Change), Vec<Instant>>,
}

/// Follows one subscription in the background: the records it shows now,
/// and when each change arrived (stamped as the line was read).
pub struct Watcher {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Subscribes to `regex`; returns once the snapshot has arrived.
    pub async fn start(opts: &Options, regex: &str) -> Result<Watcher, Error> {
        let mut c = Connection::connect(opts).await?;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        c.send(&Message::SubServ { regex: regex.into() }).await?;
        loop {
            match c.recv().await? {
                Some(Message::SubServ { .. }) => break,
                Some(m) => record(&mut seen.lock().expect("watcher state"), m, clock::now()),
                None => return Err(Error::Closed),
            }
        }
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(m)) = c.recv().await {
                let now = clock::now();
                record(&mut sink.lock().expect("watcher state"), m, now);
            }
        });
        Ok(Watcher { seen, task })
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().expect("watcher state")
    }

    /// The service URIs shown now.
    pub fn uris(&self) -> BTreeSet<String> {
        self.seen()
            .records
            .iter()
            .map(|s| s.split(" @").next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The records shown now, as "SERVICE @CATALOGUE-ADDR".
    pub fn records(&self) -> BTreeSet<String> {
        self.seen().records.clone()
    }

    /// When `change` of `service` arrived, each time it did.
    pub fn arrivals(&self, service: &str, change: Change) -> Vec<Instant> {
        self.seen()
            .arrivals
            .get(&(service.to_owned(), change))
            .cloned()
            .unwrap_or_default()
    }
}

fn record(seen: &mut Seen, m: Message, at: Instant) {
    let (service, catalogue, change) = match m {
        Message::AddServ {
            service, catalogue, ..
        } => (service, catalogue, Change::Added),
        Message::DelServ {
            service, catalogue, ..
        } => (service, catalogue, Change::Removed),
        _ => return,
    };
    let service = service.to_string();
    let key = format!("{service} @{}", catalogue.addr());
    match change {
        Change::Added => seen.records.insert(key),
        Change::Removed => seen.records.remove(&key),
    };
    seen.arrivals.entry((service, change)).or_default().push(at);
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One lookup: subscribes to `regex` on a new connection and calls `each`
/// with every record of the snapshot, until its end marker.
pub async fn snapshot(opts: &Options, regex: &str, mut each: impl FnMut(Message)) -> Result<(), Error> {
    let mut c = Connection::connect(opts).await?;
    c.send(&Message::SubServ { regex: regex.into() }).await?;
    loop {
        match c.recv().await? {
            Some(m @ Message::AddServ { .. }) => each(m),
            Some(Message::SubServ { .. }) => return Ok(()),
            Some(Message::Error { code, text }) => {
                return Err(rarangi_client::Error::Refused { code, text }.into())
            }
            Some(_) => {}
            None => return Err(Error::Closed),
        }
    }
}

/// The service URIs a lookup of `regex` returns now.
pub async fn lookup(opts: &Options, regex: &str) -> Result<BTreeSet<String>, Error> {
    let mut out = BTreeSet::new();
    snapshot(opts, regex, |m| {
        if let Message::AddServ { service, .. } = m {
            out.insert(service.to_string());
        }
    })
    .await?;
    Ok(out)
}
