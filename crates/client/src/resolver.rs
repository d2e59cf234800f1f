//! A live cache of every service, answering lookups locally.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::connection::{Error, Options};
use crate::subscription::{subscribe, Event, Home, Instance};

/// Keeps every service instance of the environment in memory, fed by a
/// subscription, so `resolve` never waits for the network.
pub struct Resolver {
    cache: Arc<Mutex<BTreeMap<(String, String), Instance>>>,
    home: Arc<Mutex<Home>>,
    task: JoinHandle<()>,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Resolver {
    /// Starts the cache; returns once it holds the first snapshot.
    pub async fn start(opts: &Options) -> Result<Self, Error> {
        let mut sub = subscribe(opts, "").await?;
        let cache: Arc<Mutex<BTreeMap<(String, String), Instance>>> = Arc::default();
        // Take the snapshot before returning, so resolve() answers at once.
        while let Some(ev) = sub.next().await {
            if apply(&cache, ev) {
                break;
            }
        }
        let home = sub.home.clone();
        let c = cache.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = sub.next().await {
                apply(&c, ev);
            }
        });
        Ok(Self { cache, home, task })
    }

    /// Instances of service `name`, one per URI, in locality order: those
    /// registered at our catalogue, then in our cluster, then the rest.
    pub fn resolve(&self, name: &str) -> Vec<Instance> {
        let all: Vec<Instance> = {
            let cache = self.cache.lock().expect("not poisoned");
            cache
                .values()
                .filter(|i| i.service.name() == name)
                .cloned()
                .collect()
        };
        let home = self.home.lock().expect("not poisoned").clone();
        order_by_locality(all, home.catalogue.as_ref(), &home.cluster)
    }
}

/// Returns true on Synced.
fn apply(cache: &Mutex<BTreeMap<(String, String), Instance>>, ev: Event) -> bool {
    let mut c = cache.lock().expect("not poisoned");
    match ev {
        Event::Added(i) => {
            c.insert((i.service.to_string(), i.catalogue.to_string()), i);
            false
        }
        Event::Removed(i) => {
            c.remove(&(i.service.to_string(), i.catalogue.to_string()));
            false
        }
        Event::Synced => true,
    }
}

/// Sorts instances by locality (same catalogue, same cluster, the rest,
/// then by URI) and keeps one per service URI, the most local: the
/// catalogue's own ordering ([`rarangi_proto::nearest_first`]).
pub fn order_by_locality(
    all: Vec<Instance>,
    catalogue: Option<&rarangi_proto::CatalogueUri>,
    cluster: &str,
) -> Vec<Instance> {
    rarangi_proto::nearest_first(all, catalogue, cluster, |i| {
        (i.service.as_str(), &i.catalogue, &i.cluster)
    })
}
