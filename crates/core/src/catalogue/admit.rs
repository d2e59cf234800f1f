//! Admission: the size rules of `rarangi_proto::limits` and the caps of
//! [`crate::Limits`], applied where an item enters (a client, the HTTP API,
//! a peer), so whatever is accepted can be replicated over every link.

use rarangi_proto::{check_item, Attrs, CatalogueUri, Message, NameError, ServiceUri, TooLarge, Ts};

use super::replicate::service_owner;
use super::Catalogue;
use crate::item::Value;
use crate::output::Notice;
use crate::sort_key::SortKey;

/// A registration refused where it enters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Its replication line would not fit the protocol's item limit.
    #[error("the service is too large to replicate")]
    TooLarge(#[source] TooLarge),
    /// This catalogue holds its cap of service records.
    #[error("{held} service records registered here, the limit is {limit} (--max-services-per-catalogue)")]
    Full {
        /// Records held (live or deleted).
        held: usize,
        /// The cap.
        limit: usize,
    },
    /// The catalogue is short of memory (the server's memory guard, see
    /// [`Catalogue::set_memory_pressure`]): nothing new until it clears.
    #[error("{MEMORY_PRESSURE}")]
    MemoryPressure,
}

/// Why new registrations and subscriptions are refused under memory
/// pressure (the server sets it beyond `--memory-limit`).
pub(super) const MEMORY_PRESSURE: &str =
    "the catalogue is short of memory (resident size beyond --memory-limit): no new registrations or subscriptions for now";

/// A configuration write refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key breaks the naming rule.
    #[error("invalid key")]
    Name(#[from] NameError),
    /// The document is too large to replicate.
    #[error("the document is too large to replicate")]
    TooLarge(#[source] TooLarge),
}

impl Catalogue {
    /// A service registered here (REG_SERV or a lease) fits the size rule
    /// and, if new, the cap of services per catalogue.
    pub(super) fn admit_own(&self, service: &ServiceUri, attrs: &Attrs) -> Result<(), LimitError> {
        let add = Message::AddServ {
            service: service.clone(),
            catalogue: self.cfg.uri.clone(),
            cluster: self.cfg.cluster.clone(),
            ts: Ts::MAX,
            attrs: attrs.clone(),
        };
        check_item(&add).map_err(LimitError::TooLarge)?;
        let held = self.services_held(&self.cfg.uri);
        let limit = self.cfg.limits.services_per_catalogue;
        let new = !self.own.contains_key(service)
            && !self.db.contains_key(&SortKey::service(&self.cfg.uri, service));
        if new && held >= limit {
            return Err(LimitError::Full { held, limit });
        }
        // Under pressure only what is held already may be renewed.
        if self.memory_pressure && !self.own.contains_key(service) {
            return Err(LimitError::MemoryPressure);
        }
        Ok(())
    }

    /// A configuration write fits the size rule.
    pub(super) fn admit_key(&self, key: &str, value: &str) -> Result<(), KeyError> {
        let set = Message::SetKey {
            key: key.to_owned(),
            origin: self.cfg.uri.clone(),
            ts: Ts::MAX,
            value: value.to_owned(),
        };
        check_item(&set).map_err(KeyError::TooLarge)
    }

    /// A replication message from a peer over the size rules is refused
    /// (not stored, logged); the link stays up. Returns whether it was.
    pub(super) fn refuse_oversized(&mut self, peer: &CatalogueUri, msg: &Message) -> bool {
        let Err(e) = check_item(msg) else {
            return false;
        };
        self.notice(Notice::ItemRefused {
            peer: peer.clone(),
            detail: format!("{} {}", msg.kind().keyword(), e),
        });
        true
    }

    /// Why a service item new here, from a peer, is refused: its owner has
    /// no CATALOGUE record here (peers send that record first, so only a
    /// catalogue that never existed has none), or the owner's cap is full.
    pub(super) fn refuse_new_service(&self, value: &Value) -> Option<String> {
        let owner = service_owner(value)?;
        if !self.catalogues.contains_key(owner) {
            return Some(format!(
                "no CATALOGUE record of its owner {owner}, which peers send before its services; not stored"
            ));
        }
        let (held, limit) = (self.services_held(owner), self.cfg.limits.services_per_catalogue);
        (held >= limit).then(|| {
            format!(
                "{held} service records of {owner} held, the limit per catalogue is {limit} (--max-services-per-catalogue); not stored"
            )
        })
    }

    /// Service records (live or deleted) held for `owner`.
    pub(super) fn services_held(&self, owner: &CatalogueUri) -> usize {
        self.services_held.get(owner).copied().unwrap_or(0)
    }
}
