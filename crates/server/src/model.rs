//! The one instance model (docs/MODEL.md), as the server's interfaces read
//! it from the published view: `/srv`, DNS and the Consul-compatible API
//! all render an instance through these methods, so they agree on its id,
//! address, port, attributes, `master`, `updated_at` and health. The rules
//! themselves (which attribute means what) are `rarangi_proto::instance`.

use std::net::IpAddr;

use rarangi_proto::{instance, nearest_first, CatalogueUri, ServiceUri};
use serde_json::{json, Map, Value};

use crate::driver::view::{Instance, View};
use crate::http::rfc3339;

impl Instance {
    /// The service name.
    pub(crate) fn name(&self) -> &str {
        self.service.name()
    }

    /// The instance id: unique among the service's instances at a
    /// catalogue (the `id` attribute, else the URI's `host:port`).
    pub(crate) fn id(&self) -> &str {
        instance::id(&self.service, self.attrs())
    }

    /// Host name or IP address, and port when the URI has one.
    pub(crate) fn address(&self) -> (&str, Option<u16>) {
        instance::address(&self.service)
    }

    /// The address when it is an IP address (DNS A/AAAA answers).
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.address().0.parse().ok()
    }

    /// The weight of DNS SRV answers and Consul's `Weights.Passing`.
    pub(crate) fn weight(&self) -> u16 {
        instance::weight(self.attrs())
    }

    /// Whether the instance claims Nesoi's master role.
    pub(crate) fn is_master(&self) -> bool {
        instance::is_master(self.attrs())
    }

    /// When the instance was last announced: the announcement's own
    /// `updated_at`, else the record's timestamp (its hybrid clock's
    /// wall-clock part at the registering catalogue).
    pub(crate) fn updated_at(&self) -> String {
        self.attrs()
            .get(instance::UPDATED_AT)
            .map_or_else(|| rfc3339(self.ts.millis()), str::to_owned)
    }

    /// The instance's health. Only passing instances are in the view:
    /// an instance whose check fails is withdrawn everywhere.
    pub(crate) fn health(&self) -> &'static str {
        "passing"
    }

    /// User attributes (model fields excluded).
    pub(crate) fn user_attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        instance::user_attrs(self.attrs())
    }

    /// The endpoints: as announced over HTTP, else `{SCHEME: URI}`.
    pub(crate) fn endpoints(&self) -> Value {
        self.attrs()
            .get(instance::ENDPOINTS)
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
            .unwrap_or_else(|| {
                let uri = self.service.as_str();
                let scheme = uri.split_once("://").map_or("", |(s, _)| s);
                json!({ scheme: uri })
            })
    }

    /// The instance as `/srv` shows it (docs/MODEL.md).
    pub(crate) fn to_json(&self) -> Value {
        let (address, port) = self.address();
        let attrs: Map<String, Value> = self
            .user_attrs()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        json!({
            "name": self.name(),
            "id": self.id(),
            "service": self.service.as_str(),
            "address": address,
            "port": port,
            "catalogue": self.catalogue.as_str(),
            "cluster": &*self.cluster,
            "attrs": attrs,
            "endpoints": self.endpoints(),
            "master": self.is_master(),
            "updated_at": self.updated_at(),
            "health": self.health(),
        })
    }
}

impl View {
    /// The instances of `name` as lookups order them: one per service URI,
    /// the nearest copy, this catalogue's first, then its cluster's, then
    /// the rest.
    pub(crate) fn nearest<'a>(&'a self, name: &str, here: &CatalogueUri, cluster: &str) -> Vec<&'a Instance> {
        nearest_first(self.instances(name), Some(here), cluster, |i| {
            (i.service.as_str(), &i.catalogue, &*i.cluster)
        })
    }

    /// The master of `name` by Nesoi's rule: among instances claiming
    /// `master`, the one with the latest `updated_at`.
    pub(crate) fn master(&self, name: &str) -> Option<&Instance> {
        self.instances(name)
            .filter(|i| i.is_master())
            .max_by_key(|i| i.updated_at())
    }
}

/// The service URI of an HTTP announcement of `name` by `host` with
/// these endpoints: the first endpoint that gives a `host:port` (a URL
/// such as `http://10.0.0.1:8080/x`, or `10.0.0.1:8080` whose scheme is
/// its key when `endpoints` is an object, else `tcp`), so line-protocol
/// clients get an address they can connect to. None when no endpoint
/// names a port: the instance is `nesoi://HOST/NAME` (address HOST, no
/// port; listed, but not in DNS SRV answers).
pub(crate) fn announced_uri(name: &str, host: &str, endpoints: &Value) -> ServiceUri {
    first_endpoint(endpoints)
        .and_then(|(scheme, authority)| ServiceUri::parse(&format!("{scheme}://{authority}/{name}")).ok())
        .or_else(|| ServiceUri::parse(&format!("nesoi://{host}/{name}")).ok())
        // `host` and `name` were checked as path segments; cannot fail.
        .unwrap_or_else(|| ServiceUri::parse("nesoi://invalid/invalid").expect("valid"))
}

/// The scheme and `host:port` of the first usable endpoint, in document
/// order (objects by key).
fn first_endpoint(endpoints: &Value) -> Option<(String, String)> {
    let candidates: Vec<(Option<&str>, &Value)> = match endpoints {
        Value::Object(m) => m.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
        Value::Array(a) => a.iter().map(|v| (None, v)).collect(),
        v => vec![(None, v)],
    };
    candidates.into_iter().find_map(|(key, v)| {
        let s = v.as_str()?;
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => (key.filter(|k| is_scheme(k)).unwrap_or("tcp"), s),
        };
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        match instance::host_port(hostport)? {
            (_, Some(_)) if is_scheme(scheme) => Some((scheme.to_ascii_lowercase(), hostport.to_owned())),
            _ => None,
        }
    })
}

fn is_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}
