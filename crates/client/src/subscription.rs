//! Following the services that match a regular expression.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use rarangi_proto::{Attrs, CatalogueUri, Message, ServiceUri, Ts};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::connection::{Connection, Error, Options};

/// One service instance: a service URI registered at a catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The service URI.
    pub service: ServiceUri,
    /// The catalogue it is registered at.
    pub catalogue: CatalogueUri,
    /// That catalogue's cluster.
    pub cluster: String,
    /// Registration metadata.
    pub attrs: Attrs,
    /// The record's version (its registering catalogue's hybrid clock).
    pub ts: Ts,
}

/// A change seen by a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An instance appeared (or its attributes changed).
    Added(Instance),
    /// An instance went away (deregistered, or its catalogue unreachable).
    Removed(Instance),
    /// The view is complete and equal to the catalogue's: sent after the
    /// first snapshot and after every reconnection.
    Synced,
}

type Key = (String, String);

/// The catalogue a subscription is connected to, for locality.
#[derive(Debug, Clone, Default)]
pub(crate) struct Home {
    pub(crate) catalogue: Option<CatalogueUri>,
    pub(crate) cluster: String,
}

/// A stream of [`Event`]s. Dropping it ends the subscription.
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<()>,
    pub(crate) home: Arc<Mutex<Home>>,
    connected: watch::Receiver<Option<CatalogueUri>>,
}

impl Stream for Subscription {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

impl Subscription {
    /// The next event.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// `instances` in locality order from the catalogue this subscription
    /// follows (its own, then its cluster's, then the rest), one per URI:
    /// what `lookup` returns.
    pub fn nearest(&self, instances: Vec<Instance>) -> Vec<Instance> {
        let home = self.home.lock().expect("not poisoned").clone();
        crate::resolver::order_by_locality(instances, home.catalogue.as_ref(), &home.cluster)
    }

    /// The catalogue the subscription follows, None while it has lost it
    /// and is reconnecting (its view may then be stale). Set to None as
    /// soon as the connection ends, and back to the catalogue just before
    /// the [`Event::Synced`] that ends the resynchronising diff.
    pub fn connected(&self) -> watch::Receiver<Option<CatalogueUri>> {
        self.connected.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes to services matching `regex`. Returns once the first
/// snapshot has arrived (its events and a [`Event::Synced`] are the first
/// items of the stream), or with the catalogue's error (a bad regex, say).
/// Across reconnections the stream emits exactly the difference between
/// the old and the new snapshot.
pub async fn subscribe(opts: &Options, regex: &str) -> Result<Subscription, Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (first_tx, first_rx) = oneshot::channel();
    let home = Arc::new(Mutex::new(Home::default()));
    let (status_tx, connected) = watch::channel(None);
    let link = Link {
        tx,
        status: status_tx,
        home: home.clone(),
    };
    let task = tokio::spawn(run(opts.clone(), regex.to_owned(), link, first_tx));
    match first_rx.await {
        Ok(Ok(())) => Ok(Subscription {
            rx,
            task,
            home,
            connected,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Protocol("subscription ended".into())),
    }
}

fn instance(msg: &Message) -> Option<(Key, Instance, bool)> {
    match msg {
        Message::AddServ {
            service,
            catalogue,
            cluster,
            attrs,
            ts,
        } => Some((
            key(service, catalogue),
            inst(service, catalogue, cluster, attrs.clone(), *ts),
            true,
        )),
        Message::DelServ {
            service,
            catalogue,
            cluster,
            ts,
        } => Some((
            key(service, catalogue),
            inst(service, catalogue, cluster, Attrs::default(), *ts),
            false,
        )),
        _ => None,
    }
}

fn key(s: &ServiceUri, c: &CatalogueUri) -> Key {
    (s.to_string(), c.to_string())
}

fn inst(service: &ServiceUri, catalogue: &CatalogueUri, cluster: &str, attrs: Attrs, ts: Ts) -> Instance {
    Instance {
        service: service.clone(),
        catalogue: catalogue.clone(),
        cluster: cluster.to_owned(),
        attrs,
        ts,
    }
}

/// Where a subscription's task reports: events, connection status, home.
struct Link {
    tx: mpsc::UnboundedSender<Event>,
    status: watch::Sender<Option<CatalogueUri>>,
    home: Arc<Mutex<Home>>,
}

async fn run(opts: Options, regex: String, link: Link, first: oneshot::Sender<Result<(), Error>>) {
    let mut first = Some(first);
    let mut view: BTreeMap<Key, Instance> = BTreeMap::new();
    let mut backoff = crate::reconnect_backoff();
    loop {
        let conn = match Connection::connect(&opts).await {
            Ok(c) => c,
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                tokio::time::sleep(backoff.next_delay(rand::random())).await;
                continue;
            }
        };
        backoff.reset();
        let result = follow(conn, &regex, &mut view, &link, &mut first).await;
        link.status.send_replace(None);
        match result {
            Ok(()) => {}
            Err(e @ (Error::Refused { .. } | Error::EnvMismatch { .. })) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                }
                return;
            }
            Err(_) => {}
        }
        if link.tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff.next_delay(rand::random())).await;
    }
}

/// Sends SUB_SERV and reads its snapshot up to the end marker.
async fn read_snapshot(conn: &mut Connection, regex: &str) -> Result<BTreeMap<Key, Instance>, Error> {
    conn.send(&Message::SubServ {
        regex: regex.to_owned(),
    })
    .await?;
    let mut snapshot = BTreeMap::new();
    loop {
        match conn.recv().await? {
            Some(Message::SubServ { regex: r }) if r == regex => return Ok(snapshot),
            Some(Message::Error { code, text }) => return Err(Error::Refused { code, text }),
            Some(m) => {
                if let Some((k, i, true)) = instance(&m) {
                    snapshot.insert(k, i);
                }
            }
            None => return Err(Error::Protocol("closed during snapshot".into())),
        }
    }
}

/// The instances matching `regex` right now, nearest first and one per
/// URI (what `rarangi lookup` prints), with the catalogue that answered.
pub async fn lookup(opts: &Options, regex: &str) -> Result<(CatalogueUri, Vec<Instance>), Error> {
    let mut conn = Connection::connect(opts).await?;
    let found = read_snapshot(&mut conn, regex).await?.into_values().collect();
    let ordered = crate::resolver::order_by_locality(found, Some(&conn.catalogue), &conn.cluster);
    Ok((conn.catalogue, ordered))
}

/// Runs one connection: snapshot, diff against the previous view, then
/// live changes until the connection ends.
async fn follow(
    mut conn: Connection,
    regex: &str,
    view: &mut BTreeMap<Key, Instance>,
    link: &Link,
    first: &mut Option<oneshot::Sender<Result<(), Error>>>,
) -> Result<(), Error> {
    let tx = &link.tx;
    let snapshot = read_snapshot(&mut conn, regex).await?;
    {
        let mut h = link.home.lock().expect("not poisoned");
        h.catalogue = Some(conn.catalogue.clone());
        h.cluster = conn.cluster.clone();
    }
    let old = std::mem::take(view);
    for (k, i) in &old {
        if !snapshot.contains_key(k) {
            let _ = tx.send(Event::Removed(i.clone()));
        }
    }
    for (k, i) in &snapshot {
        if old.get(k) != Some(i) {
            let _ = tx.send(Event::Added(i.clone()));
        }
    }
    *view = snapshot;
    link.status.send_replace(Some(conn.catalogue.clone()));
    let _ = tx.send(Event::Synced);
    if let Some(f) = first.take() {
        let _ = f.send(Ok(()));
    }
    while let Some(m) = conn.recv().await? {
        match instance(&m) {
            Some((k, i, true)) => {
                view.insert(k, i.clone());
                let _ = tx.send(Event::Added(i));
            }
            Some((k, _, false)) => {
                if let Some(i) = view.remove(&k) {
                    let _ = tx.send(Event::Removed(i));
                }
            }
            None => {}
        }
    }
    Ok(())
}
