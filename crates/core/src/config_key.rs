//! The layout of configuration keys (Nesoi's resources): one typed key
//! instead of strings assembled wherever they are used.
//!
//! | key | what | API path |
//! | --- | --- | --- |
//! | `app/NAME` | an application's JSON document | `/app/NAME` |
//! | `hook/KIND/NAME/HOOK` | a web-hook on `/KIND/NAME` | `/KIND/NAME/web-hooks/HOOK` |
//! | `hookstate/KIND/NAME/HOOK` | its delivery marker: the version last delivered | none |

use std::fmt;

use rarangi_proto::Ts;

/// The kind of resource a web-hook watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookKind {
    /// An application document, `/app/NAME`.
    App,
    /// A service's instances, `/srv/NAME`.
    Srv,
}

impl HookKind {
    /// The path segment: `app` or `srv`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::App => "app",
            HookKind::Srv => "srv",
        }
    }

    /// The kind named by a path segment.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(HookKind::App),
            "srv" => Some(HookKind::Srv),
            _ => None,
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration key the HTTP API and the webhooks use. Names are path
/// segments (no `/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKey {
    /// `app/NAME`: an application document.
    App {
        /// The application.
        name: String,
    },
    /// `hook/KIND/NAME/HOOK`: a web-hook registration (JSON with
    /// `endpoint` and `name`).
    Hook {
        /// What it watches.
        kind: HookKind,
        /// The watched resource's name.
        name: String,
        /// The hook's name.
        hook: String,
    },
    /// `hookstate/KIND/NAME/HOOK`: the version of the resource last
    /// delivered to that hook.
    HookState {
        /// What it watches.
        kind: HookKind,
        /// The watched resource's name.
        name: String,
        /// The hook's name.
        hook: String,
    },
}

/// Prefix of every application key.
const APP: &str = "app/";
/// Prefix of every hook key.
const HOOK: &str = "hook/";
/// Prefix of every delivery marker key.
const HOOKSTATE: &str = "hookstate/";

impl ConfigKey {
    /// The key prefix listing every application (`app/`).
    pub const APPS_PREFIX: &'static str = APP;
    /// The key prefix listing every hook (`hook/`).
    pub const HOOKS_PREFIX: &'static str = HOOK;

    /// The key prefix listing the hooks of one resource (`hook/KIND/NAME/`).
    pub fn hooks_of(kind: HookKind, name: &str) -> String {
        format!("{HOOK}{kind}/{name}/")
    }

    /// The stored key text.
    pub fn to_key(&self) -> String {
        self.to_string()
    }

    /// The typed form of a stored key; None for keys outside this layout.
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(name) = key.strip_prefix(APP) {
            return (!name.is_empty()).then(|| ConfigKey::App {
                name: name.to_owned(),
            });
        }
        let (rest, state) = match key.strip_prefix(HOOK) {
            Some(rest) => (rest, false),
            None => (key.strip_prefix(HOOKSTATE)?, true),
        };
        let mut parts = rest.splitn(3, '/');
        let kind = HookKind::parse(parts.next()?)?;
        let (name, hook) = (parts.next()?.to_owned(), parts.next()?.to_owned());
        if name.is_empty() || hook.is_empty() {
            return None;
        }
        Some(if state {
            ConfigKey::HookState { kind, name, hook }
        } else {
            ConfigKey::Hook { kind, name, hook }
        })
    }

    /// The HTTP API path of the resource the key holds; None for delivery
    /// markers, which the API does not show.
    pub fn api_path(&self) -> Option<String> {
        match self {
            ConfigKey::App { name } => Some(format!("/app/{name}")),
            ConfigKey::Hook { kind, name, hook } => Some(format!("/{kind}/{name}/web-hooks/{hook}")),
            ConfigKey::HookState { .. } => None,
        }
    }

    /// The delivery marker of a hook (itself for a marker); None for an
    /// application.
    pub fn marker(&self) -> Option<ConfigKey> {
        let (kind, name, hook) = self.hook_parts()?;
        Some(ConfigKey::HookState { kind, name, hook })
    }

    /// The hook a delivery marker belongs to (itself for a hook); None for
    /// an application.
    pub fn hook(&self) -> Option<ConfigKey> {
        let (kind, name, hook) = self.hook_parts()?;
        Some(ConfigKey::Hook { kind, name, hook })
    }

    /// Kind, resource name and hook name of a hook or marker.
    fn hook_parts(&self) -> Option<(HookKind, String, String)> {
        match self {
            ConfigKey::App { .. } => None,
            ConfigKey::Hook { kind, name, hook } | ConfigKey::HookState { kind, name, hook } => {
                Some((*kind, name.clone(), hook.clone()))
            }
        }
    }

    /// The API path of the resource a hook or marker watches (`/KIND/NAME`),
    /// or of the application itself.
    pub fn resource_path(&self) -> String {
        match self {
            ConfigKey::App { name } => format!("/app/{name}"),
            ConfigKey::Hook { kind, name, .. } | ConfigKey::HookState { kind, name, .. } => {
                format!("/{kind}/{name}")
            }
        }
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigKey::App { name } => write!(f, "{APP}{name}"),
            ConfigKey::Hook { kind, name, hook } => write!(f, "{HOOK}{kind}/{name}/{hook}"),
            ConfigKey::HookState { kind, name, hook } => write!(f, "{HOOKSTATE}{kind}/{name}/{hook}"),
        }
    }
}

/// What a write did to a key or resource (the HTTP API answers 201 or 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// It did not exist before.
    Created,
    /// It existed and was replaced.
    Updated,
}

/// The outcome of a configuration write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWrite {
    /// The version written; durable once its `Persist` output is.
    pub ts: Ts,
    /// Whether the key was live before.
    pub written: Written,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<ConfigKey> {
        let mut keys = vec![ConfigKey::App {
            name: "orders".into(),
        }];
        for kind in [HookKind::App, HookKind::Srv] {
            let (name, hook) = ("orders".to_owned(), "h-1.x_y".to_owned());
            keys.push(ConfigKey::Hook {
                kind,
                name: name.clone(),
                hook: hook.clone(),
            });
            keys.push(ConfigKey::HookState { kind, name, hook });
        }
        keys
    }

    #[test]
    fn keys_are_todays_strings_and_round_trip() {
        let texts: Vec<String> = all().iter().map(ConfigKey::to_key).collect();
        assert_eq!(
            texts,
            [
                "app/orders",
                "hook/app/orders/h-1.x_y",
                "hookstate/app/orders/h-1.x_y",
                "hook/srv/orders/h-1.x_y",
                "hookstate/srv/orders/h-1.x_y",
            ]
        );
        for k in all() {
            assert_eq!(ConfigKey::parse(&k.to_key()), Some(k));
        }
    }

    #[test]
    fn api_paths() {
        let paths: Vec<Option<String>> = all().iter().map(ConfigKey::api_path).collect();
        assert_eq!(paths[0].as_deref(), Some("/app/orders"));
        assert_eq!(paths[1].as_deref(), Some("/app/orders/web-hooks/h-1.x_y"));
        assert_eq!(paths[2], None);
        assert_eq!(paths[3].as_deref(), Some("/srv/orders/web-hooks/h-1.x_y"));
        assert_eq!(all()[4].resource_path(), "/srv/orders");
    }

    #[test]
    fn markers_and_hooks_pair_up() {
        let keys = all();
        assert_eq!(keys[1].marker().as_ref(), Some(&keys[2]));
        assert_eq!(keys[2].hook().as_ref(), Some(&keys[1]));
        assert_eq!(keys[0].marker(), None);
    }

    #[test]
    fn prefixes_select_their_keys() {
        let keys = all();
        let hooks_of = ConfigKey::hooks_of(HookKind::Srv, "orders");
        assert_eq!(hooks_of, "hook/srv/orders/");
        assert!(keys[3].to_key().starts_with(&hooks_of));
        assert!(!keys[1].to_key().starts_with(&hooks_of));
        let hooks: Vec<_> = keys
            .iter()
            .filter(|k| k.to_key().starts_with(ConfigKey::HOOKS_PREFIX))
            .collect();
        assert_eq!(hooks, [&keys[1], &keys[3]]);
        assert!(keys[0].to_key().starts_with(ConfigKey::APPS_PREFIX));
    }

    #[test]
    fn foreign_keys_do_not_parse() {
        for k in [
            "app/",
            "hook/dns/x/y",
            "hook/app/x",
            "hook/app//y",
            "config/x",
            "hookstate/srv/x/",
        ] {
            assert_eq!(ConfigKey::parse(k), None, "{k}");
        }
    }
}
