//! The read model: an immutable snapshot of what the HTTP API (and later
//! DNS, the Consul-compatible API, metrics and the UI) reads, published by
//! the driver after each batch. Readers take the latest [`View`] without a
//! round trip to the driver. The maps are persistent (`imbl`): publishing
//! is O(1) and each change copies only a path of the tree, never all
//! services.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use rarangi_core::{KeyRecord, TopologyView};
use rarangi_proto::{Attrs, CatalogueUri, ServiceUri, Ts};

/// One visible service instance. The catalogue URI and cluster name are
/// shared with the other instances of the same catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    /// The service URI.
    pub(crate) service: ServiceUri,
    /// The catalogue it is registered at.
    pub(crate) catalogue: CatalogueUri,
    /// That catalogue's cluster.
    pub(crate) cluster: Arc<str>,
    /// Registration metadata; None when empty (most instances: saves the
    /// map's inline bytes).
    attrs: Option<Box<Attrs>>,
    /// The record's version.
    pub(crate) ts: Ts,
}

/// What an instance without metadata shows.
static NO_ATTRS: Attrs = Attrs(std::collections::BTreeMap::new());

impl Instance {
    /// An instance record.
    pub(crate) fn new(
        service: ServiceUri,
        catalogue: CatalogueUri,
        cluster: Arc<str>,
        attrs: Attrs,
        ts: Ts,
    ) -> Self {
        Self {
            service,
            catalogue,
            cluster,
            attrs: (!attrs.0.is_empty()).then(|| Box::new(attrs)),
            ts,
        }
    }

    /// Registration metadata.
    pub(crate) fn attrs(&self) -> &Attrs {
        self.attrs.as_deref().unwrap_or(&NO_ATTRS)
    }
}

/// An entry of the service set, ordered by service name, then URI, then
/// catalogue, so one name's instances are one range. The bounds only ever
/// serve as range ends.
#[derive(Debug, Clone)]
enum Slot {
    // Thin pointers throughout: a slot is 16 bytes, not 24.
    /// Sorts before every instance of the name.
    Before(Arc<String>),
    /// An instance.
    At(Arc<Instance>),
    /// Sorts after every instance of the name.
    After(Arc<String>),
}

impl Slot {
    fn name(&self) -> &str {
        match self {
            Slot::Before(n) | Slot::After(n) => n.as_str(),
            Slot::At(i) => i.service.name(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Slot::Before(_) => 0,
            Slot::At(_) => 1,
            Slot::After(_) => 2,
        }
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name()
            .cmp(other.name())
            .then(self.rank().cmp(&other.rank()))
            .then_with(|| match (self, other) {
                (Slot::At(a), Slot::At(b)) => {
                    (a.service.as_str(), &a.catalogue).cmp(&(b.service.as_str(), &b.catalogue))
                }
                _ => Ordering::Equal,
            })
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Slot {}

/// What readers see: visible services, live configuration, the topology
/// and the change indexes, as of change `index`.
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// The last change index.
    pub(crate) index: u64,
    services: OrdSet<Slot>,
    keys: OrdMap<Arc<str>, Arc<KeyRecord>>,
    /// The topology; replaced whole when it changes.
    pub(crate) topology: Arc<TopologyView>,
    /// Last change index per API path (services by name, see
    /// `changes::index_path`).
    paths: OrdMap<Arc<str>, u64>,
    /// Conditions an operator must see (the store alarm); empty when all
    /// is well.
    pub(crate) alarms: Vec<String>,
    /// Visible service names with ASCII upper case, by their lower-case
    /// form: DNS names are case-insensitive, service names are not.
    folded: OrdMap<Arc<str>, OrdSet<Arc<str>>>,
}

impl View {
    /// An empty view around a topology.
    pub(crate) fn new(topology: TopologyView) -> Self {
        Self {
            index: 0,
            services: OrdSet::new(),
            keys: OrdMap::new(),
            topology: Arc::new(topology),
            paths: OrdMap::new(),
            alarms: Vec::new(),
            folded: OrdMap::new(),
        }
    }

    /// The visible instances of service `name`, by URI then catalogue.
    pub(crate) fn instances<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Instance> + 'a {
        let from = Slot::Before(Arc::new(name.to_owned()));
        let to = Slot::After(Arc::new(name.to_owned()));
        self.services
            .range((Bound::Excluded(from), Bound::Excluded(to)))
            .filter_map(|s| match s {
                Slot::At(i) => Some(&**i),
                _ => None,
            })
    }

    /// The names of the visible services, sorted (one seek per name).
    pub(crate) fn service_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut next = self.services.iter().next();
        while let Some(slot) = next {
            let name = slot.name();
            names.push(name);
            next = self
                .services
                .range((
                    Bound::Excluded(Slot::After(Arc::new(name.to_owned()))),
                    Bound::Unbounded,
                ))
                .next();
        }
        names
    }

    /// The visible service names equal to `lower` (lower case) ignoring
    /// ASCII case: `lower` itself and those in the index of names with
    /// upper case.
    pub(crate) fn names_ignoring_case<'a>(&'a self, lower: &'a str) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .folded
            .get(lower)
            .map_or_else(Vec::new, |s| s.iter().map(|n| &**n).collect());
        if self.instances(lower).next().is_some() {
            names.insert(0, lower);
        }
        names
    }

    /// How many instances are visible.
    pub(crate) fn service_count(&self) -> usize {
        self.services.len()
    }

    /// How many visible instances are registered at `me` (a walk over
    /// every instance: for metrics at scrape time).
    pub(crate) fn local_count(&self, me: &CatalogueUri) -> usize {
        self.services
            .iter()
            .filter(|s| matches!(s, Slot::At(i) if i.catalogue == *me))
            .count()
    }

    /// A live configuration record.
    pub(crate) fn key(&self, key: &str) -> Option<&KeyRecord> {
        self.keys.get(key).map(|r| &**r)
    }

    /// Live configuration records whose key starts with `prefix`, in order.
    pub(crate) fn keys_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a KeyRecord> + 'a {
        self.keys
            .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, r)| &**r)
    }

    /// The last change index of the paths under `prefix` (0 if none).
    pub(crate) fn last_change_under(&self, prefix: &str) -> u64 {
        self.paths
            .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(prefix))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0)
    }

    /// The last change index of exactly `path` (0 if none).
    pub(crate) fn last_change_of(&self, path: &str) -> u64 {
        self.paths.get(path).copied().unwrap_or(0)
    }

    // ----- the driver's side -------------------------------------------------

    /// Adds or replaces an instance.
    pub(crate) fn put_instance(&mut self, instance: Instance) {
        let name = instance.service.name();
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            let mut names = self
                .folded
                .get(&*name.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default();
            if !names.contains(name) {
                names.insert(Arc::from(name));
                self.folded.insert(name.to_ascii_lowercase().into(), names);
            }
        }
        self.services.insert(Slot::At(Arc::new(instance)));
    }

    /// Removes an instance; returns it if it was there.
    pub(crate) fn remove_instance(
        &mut self,
        service: &ServiceUri,
        catalogue: &CatalogueUri,
    ) -> Option<Arc<Instance>> {
        let probe = Instance::new(
            service.clone(),
            catalogue.clone(),
            Arc::from(""),
            Attrs::default(),
            Ts(0),
        );
        let removed = match self.services.remove(&Slot::At(Arc::new(probe))) {
            Some(Slot::At(i)) => Some(i),
            _ => None,
        };
        let name = service.name();
        if removed.is_some()
            && name.bytes().any(|b| b.is_ascii_uppercase())
            && self.instances(name).next().is_none()
        {
            let lower: Arc<str> = name.to_ascii_lowercase().into();
            if let Some(mut names) = self.folded.get(&lower).cloned() {
                names.remove(name);
                if names.is_empty() {
                    self.folded.remove(&lower);
                } else {
                    self.folded.insert(lower, names);
                }
            }
        }
        removed
    }

    /// Stores a configuration record (a delete removes it).
    pub(crate) fn put_key(&mut self, rec: KeyRecord) {
        if rec.value.is_some() {
            self.keys.insert(rec.key.as_str().into(), Arc::new(rec));
        } else {
            self.keys.remove(rec.key.as_str());
        }
    }

    /// Forgets a configuration record.
    pub(crate) fn remove_key(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Records a change of `path` (already an index path) at `index`.
    pub(crate) fn changed(&mut self, path: &str, index: u64) {
        self.index = index;
        self.paths.insert(path.into(), index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(uri: &str, cat: &str) -> Instance {
        let service = ServiceUri::parse(uri).unwrap();
        Instance::new(
            service,
            CatalogueUri::from_addr(cat).unwrap(),
            Arc::from("c"),
            Attrs::default(),
            Ts(1),
        )
    }

    fn topo() -> TopologyView {
        let me = CatalogueUri::from_addr("a:1").unwrap();
        TopologyView {
            me: me.clone(),
            catalogues: Default::default(),
            links: Default::default(),
            reachable: Default::default(),
            leader: me,
        }
    }

    #[test]
    fn instances_by_name_and_names_in_order() {
        let mut v = View::new(topo());
        v.put_instance(inst("tcp://h:2/web", "b:1"));
        v.put_instance(inst("tcp://h:1/web", "a:1"));
        v.put_instance(inst("tcp://h:1/web", "b:1"));
        v.put_instance(inst("tcp://h:1/db", "a:1"));
        v.put_instance(inst("tcp://h:1/webx", "a:1"));
        let published = v.clone();
        v.remove_instance(
            &ServiceUri::parse("tcp://h:1/web").unwrap(),
            &CatalogueUri::from_addr("a:1").unwrap(),
        );
        let web: Vec<String> = v
            .instances("web")
            .map(|i| format!("{} {}", i.service, i.catalogue))
            .collect();
        assert_eq!(
            web,
            ["tcp://h:1/web x-tvnetcs://b:1/", "tcp://h:2/web x-tvnetcs://b:1/"]
        );
        assert_eq!(
            published.instances("web").count(),
            3,
            "a published view never changes"
        );
        assert_eq!(v.service_names(), ["db", "web", "webx"]);
        assert_eq!(v.instances("nope").count(), 0);
        assert_eq!(v.service_count(), 4);
    }

    #[test]
    fn names_ignoring_case() {
        let mut v = View::new(topo());
        v.put_instance(inst("tcp://h:1/Web", "a:1"));
        v.put_instance(inst("tcp://h:2/Web", "a:1"));
        v.put_instance(inst("tcp://h:1/web", "a:1"));
        v.put_instance(inst("tcp://h:1/WEB", "a:1"));
        assert_eq!(v.names_ignoring_case("web"), ["web", "WEB", "Web"]);
        let uri = |u: &str| ServiceUri::parse(u).unwrap();
        let cat = CatalogueUri::from_addr("a:1").unwrap();
        v.remove_instance(&uri("tcp://h:1/Web"), &cat);
        assert_eq!(
            v.names_ignoring_case("web"),
            ["web", "WEB", "Web"],
            "one Web is left"
        );
        v.remove_instance(&uri("tcp://h:2/Web"), &cat);
        v.remove_instance(&uri("tcp://h:1/web"), &cat);
        assert_eq!(v.names_ignoring_case("web"), ["WEB"]);
        v.remove_instance(&uri("tcp://h:1/WEB"), &cat);
        assert!(v.names_ignoring_case("web").is_empty());
        assert!(v.folded.is_empty());
    }

    #[test]
    fn keys_and_change_indexes_by_prefix() {
        let mut v = View::new(topo());
        let rec = |k: &str, val: Option<&str>| KeyRecord {
            key: k.into(),
            origin: CatalogueUri::from_addr("a:1").unwrap(),
            ts: Ts(1),
            value: val.map(Into::into),
        };
        v.put_key(rec("app/a", Some("{}")));
        v.put_key(rec("app/b", Some("{}")));
        v.put_key(rec("hook/app/a/h", Some("{}")));
        v.put_key(rec("app/b", None));
        let apps: Vec<&str> = v.keys_with_prefix("app/").map(|r| r.key.as_str()).collect();
        assert_eq!(apps, ["app/a"]);
        v.changed("/app/a", 1);
        v.changed("/srv/web", 2);
        v.changed("/app/b", 3);
        assert_eq!(v.last_change_under("/app/"), 3);
        assert_eq!(v.last_change_under("/srv/"), 2);
        assert_eq!(v.last_change_of("/app/a"), 1);
        assert_eq!(v.index, 3);
    }

    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        pages * 4096
    }

    /// What the view adds per replicated service, published every 256
    /// changes as the driver does. A measurement, not a check: run with
    /// `cargo test --release -p rarangi-server view_memory -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn view_memory() {
        const N: usize = 100_000;
        let catalogue = CatalogueUri::from_addr("replica:4790").unwrap();
        let cluster: Arc<str> = Arc::from("default");
        let before = rss_bytes();
        let mut v = View::new(topo());
        let mut published = Arc::new(v.clone());
        for i in 0..N {
            let service = ServiceUri::parse(&format!("tcp://bench-{i}:1/p")).unwrap();
            v.put_instance(Instance::new(
                service,
                catalogue.clone(),
                cluster.clone(),
                Attrs::default(),
                Ts(i as u64),
            ));
            v.changed("/srv/p", i as u64);
            if i % 256 == 0 {
                published = Arc::new(v.clone());
            }
        }
        drop(published);
        let after = rss_bytes();
        assert_eq!(v.instances("p").count(), N);
        println!("view: {} bytes RSS per service", (after - before) / N as u64);
    }
}
