//! The instance model (docs/MODEL.md) for instances a client received, so
//! every client-side rendering (`rarangi lookup --json`, `watch --exec`)
//! shows the fields `/srv` shows, by the rules of
//! `rarangi_proto::instance`.

use rarangi_proto::instance;
use serde_json::{json, Map, Value};

use crate::Instance;

impl Instance {
    /// The service name: the URI's first path segment.
    pub fn name(&self) -> &str {
        self.service.name()
    }

    /// The instance id (the `id` attribute, else the URI's `host:port`).
    pub fn id(&self) -> &str {
        instance::id(&self.service, &self.attrs)
    }

    /// Host name or IP address, and the port when the URI has one.
    pub fn address(&self) -> (&str, Option<u16>) {
        instance::address(&self.service)
    }

    /// Whether the instance claims Nesoi's master role.
    pub fn is_master(&self) -> bool {
        instance::is_master(&self.attrs)
    }

    /// RFC 3339: the `updated_at` attribute, else the record's timestamp.
    pub fn updated_at(&self) -> String {
        instance::updated_at(&self.attrs, self.ts.millis())
    }

    /// The instance as JSON: `name`, `id`, `service`, `address`, `port`,
    /// `catalogue`, `cluster`, `attrs` (user attributes only), `master`,
    /// `updated_at`.
    pub fn to_json(&self) -> Value {
        let (address, port) = self.address();
        let attrs: Map<String, Value> = instance::user_attrs(&self.attrs)
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        json!({
            "name": self.name(),
            "id": self.id(),
            "service": self.service.as_str(),
            "address": address,
            "port": port,
            "catalogue": self.catalogue.as_str(),
            "cluster": self.cluster,
            "attrs": attrs,
            "master": self.is_master(),
            "updated_at": self.updated_at(),
        })
    }
}
