//! The change log: every visible change (a service instance, a
//! configuration document, a hook) gets the next index; the index is kept
//! per API path in the view (blocking queries) and broadcast (SSE).

use std::collections::HashSet;

use rarangi_proto::{Attrs, ServiceUri};
use tokio::sync::broadcast;

use super::view::View;

/// A change visible through the HTTP API (watches, SSE).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// Its index.
    pub(crate) index: u64,
    /// The API path that changed.
    pub(crate) path: String,
    /// `created`, `updated` or `deleted`.
    pub(crate) what: &'static str,
}

/// Numbers changes and tells created from updated.
pub(crate) struct ChangeLog {
    index: u64,
    /// Hashes of the paths that exist, to tell "created" from "updated".
    live_paths: HashSet<u64>,
    tx: broadcast::Sender<Change>,
}

impl ChangeLog {
    /// A log whose existing paths are `live`.
    pub(crate) fn new(live: impl Iterator<Item = String>, tx: broadcast::Sender<Change>) -> Self {
        Self {
            index: 0,
            live_paths: live.map(|p| path_hash(&p)).collect(),
            tx,
        }
    }

    /// Records that `path` now exists (`live`) or not; indexes it in `view`.
    pub(crate) fn record(&mut self, view: &mut View, path: String, live: bool) {
        let hash = path_hash(&path);
        let what = match (self.live_paths.contains(&hash), live) {
            (_, false) => "deleted",
            (false, true) => "created",
            (true, true) => "updated",
        };
        if live {
            self.live_paths.insert(hash);
        } else {
            self.live_paths.remove(&hash);
        }
        self.index += 1;
        view.changed(index_path(&path), self.index);
        let _ = self.tx.send(Change {
            index: self.index,
            path,
            what,
        });
    }
}

/// The API path of a configuration key, if it has one (hook delivery
/// markers have none).
pub(crate) fn key_path(key: &str) -> Option<String> {
    rarangi_core::ConfigKey::parse(key)?.api_path()
}

/// Where a path's change index is kept: a service instance's index is its
/// service name's (`/srv/NAME/HOST` → `/srv/NAME`), so a blocking query on
/// an instance may also return when a sibling instance changed, and one on a
/// service's web-hooks when the service changed. Not per instance: that
/// would cost memory for every replicated service.
pub(crate) fn index_path(path: &str) -> &str {
    match path.strip_prefix("/srv/") {
        Some(rest) => match rest.find('/') {
            Some(i) => &path[..5 + i],
            None => path,
        },
        None => path,
    }
}

/// A stable 64-bit hash of a path (collisions only mislabel created/updated).
fn path_hash(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

/// The API path of a service instance: `/srv/NAME/ID` (docs/MODEL.md).
pub(crate) fn instance_path(service: &ServiceUri, attrs: &Attrs) -> String {
    format!("/srv/{}/{}", service.name(), rarangi_proto::instance::id(service, attrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_share_their_service_names_index() {
        assert_eq!(index_path("/srv/orders/10.0.0.1:80"), "/srv/orders");
        assert_eq!(index_path("/srv/orders/web-hooks/h1"), "/srv/orders");
        assert_eq!(index_path("/srv/orders"), "/srv/orders");
        assert_eq!(index_path("/srv"), "/srv");
        assert_eq!(index_path("/app/db/web-hooks/h1"), "/app/db/web-hooks/h1");
        assert_eq!(
            key_path("hook/srv/web/h1").as_deref(),
            Some("/srv/web/web-hooks/h1")
        );
        assert_eq!(key_path("hookstate/srv/web/h1"), None);
    }
}
