//! Which instances `lookup` and `watch` show: a service name matched
//! exactly, or a regular expression, then `--cluster` and `--attr` filters.

use std::process::ExitCode;

use anyhow::Result;
use rarangi_client::Instance;
use rarangi_proto::Attrs;

use crate::Target;

/// The selection shared by `lookup` and `watch`.
#[derive(clap::Args, Clone)]
pub(crate) struct Selection {
    /// The service name, matched exactly: `orders` is every instance whose
    /// URI's first path segment is `orders` (not `orders-db`).
    #[arg(required_unless_present = "regex", conflicts_with = "regex")]
    name: Option<String>,
    /// A regular expression matched against whole service URIs instead of
    /// a name, unanchored unless you anchor it ("" for every service).
    #[arg(long, value_name = "PATTERN")]
    regex: Option<String>,
    /// Only instances registered in this cluster.
    #[arg(long, value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Only instances with this attribute (repeatable; all must match).
    #[arg(long = "attr", value_name = "K=V")]
    attrs: Vec<String>,
}

/// A parsed [`Selection`].
pub(crate) struct Filter {
    /// The regular expression sent to the catalogue (SUB_SERV).
    pub(crate) regex: String,
    name: Option<String>,
    cluster: Option<String>,
    attrs: Attrs,
}

impl Selection {
    pub(crate) fn filter(&self) -> Result<Filter> {
        Ok(Filter {
            regex: match (&self.name, &self.regex) {
                (_, Some(r)) => r.clone(),
                (Some(n), None) => name_regex(n),
                (None, None) => String::new(),
            },
            name: self.name.clone(),
            cluster: self.cluster.clone(),
            attrs: crate::parse_attrs(&self.attrs)?,
        })
    }
}

/// The line-protocol regex for the instances of service `name`. The
/// catalogue matches it, unanchored, against the whole URI
/// (`SCHEME://AUTHORITY/NAME[/...][?...][#...]`): anchoring on the scheme
/// and the authority, and ending the name at `/`, `?`, `#` or the end,
/// keeps `orders` from matching `tcp://orders-db.local:5432/pg` or
/// `tcp://h:1/orders-db`. [`Filter::matches`] checks the name again on
/// our side, so the regex only has to narrow what the catalogue sends.
fn name_regex(name: &str) -> String {
    format!("^[^:/]*://[^/]*/{}([/?#]|$)", regex::escape(name))
}

impl Filter {
    /// Whether `i` is selected.
    pub(crate) fn matches(&self, i: &Instance) -> bool {
        self.name.as_deref().is_none_or(|n| i.name() == n)
            && self.cluster.as_deref().is_none_or(|c| i.cluster == c)
            && self
                .attrs
                .0
                .iter()
                .all(|(k, v)| i.attrs.get(k) == Some(v.as_str()))
    }
}

/// `rarangi lookup`: the selected instances, nearest first; exit 1 when
/// there are none.
pub(crate) async fn lookup(sel: &Selection, as_json: bool, target: &Target) -> Result<ExitCode> {
    let filter = sel.filter()?;
    let (_, ordered) = rarangi_client::lookup(&target.options(), &filter.regex).await?;
    let ordered: Vec<Instance> = ordered.into_iter().filter(|i| filter.matches(i)).collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&ordered))?);
    } else {
        for i in &ordered {
            println!("{}", i.service);
        }
    }
    Ok(if ordered.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A JSON array of the instance model.
pub(crate) fn to_json(list: &[Instance]) -> serde_json::Value {
    list.iter().map(Instance::to_json).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_regex_matches_the_name_only() {
        let re = regex::Regex::new(&name_regex("orders")).unwrap();
        assert!(re.is_match("tcp://10.0.0.1:80/orders"));
        assert!(re.is_match("tcp://10.0.0.1:80/orders/v2"));
        assert!(re.is_match("http://u@h/orders?x=1"));
        assert!(!re.is_match("tcp://orders-db.local:5432/pg"));
        assert!(!re.is_match("tcp://h:1/orders-db"));
        assert!(!re.is_match("tcp://h:1/x/orders"));
        let dot = regex::Regex::new(&name_regex("a.b")).unwrap();
        assert!(!dot.is_match("tcp://h:1/axb"));
    }
}
