//! The connection handshake rules of DESIGN §3, as a pure decision.

use rarangi_proto::{CatalogueUri, Message};

use crate::Config;

/// What a catalogue should do with the WELCOME it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WelcomeVerdict {
    /// A catalogue of our environment: bring the link up.
    Link {
        /// The peer's identity.
        peer: CatalogueUri,
        /// The peer's cluster.
        cluster: String,
    },
    /// Another environment: log, close, never redial this address.
    EnvMismatch {
        /// The peer's identity.
        peer: CatalogueUri,
        /// The peer's environment.
        theirs: String,
    },
    /// We reached ourselves: close and stop dialing this address.
    SelfConnection,
    /// The peer is not who we expected to reach: close and log.
    WrongIdentity {
        /// Who we meant to reach.
        expected: CatalogueUri,
        /// Who answered.
        got: CatalogueUri,
    },
    /// Not a WELCOME at all.
    NotWelcome,
}

/// Checks a WELCOME against our configuration and, when dialing a known
/// catalogue, the identity we expected.
pub fn check_welcome(local: &Config, expected: Option<&CatalogueUri>, msg: &Message) -> WelcomeVerdict {
    let Message::Welcome {
        catalogue,
        cluster,
        environment,
    } = msg
    else {
        return WelcomeVerdict::NotWelcome;
    };
    if environment != &local.environment {
        return WelcomeVerdict::EnvMismatch {
            peer: catalogue.clone(),
            theirs: environment.clone(),
        };
    }
    if catalogue == &local.uri {
        return WelcomeVerdict::SelfConnection;
    }
    if let Some(exp) = expected.filter(|e| *e != catalogue) {
        return WelcomeVerdict::WrongIdentity {
            expected: exp.clone(),
            got: catalogue.clone(),
        };
    }
    WelcomeVerdict::Link {
        peer: catalogue.clone(),
        cluster: cluster.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::new(CatalogueUri::from_addr("a:1").unwrap(), "c", "production")
    }

    fn welcome(addr: &str, env: &str) -> Message {
        Message::Welcome {
            catalogue: CatalogueUri::from_addr(addr).unwrap(),
            cluster: "c".into(),
            environment: env.into(),
        }
    }

    #[test]
    fn verdicts() {
        let c = cfg();
        assert!(
            matches!(check_welcome(&c, None, &welcome("b:1", "staging")), WelcomeVerdict::EnvMismatch { theirs, .. } if theirs == "staging")
        );
        assert_eq!(
            check_welcome(&c, None, &welcome("a:1", "production")),
            WelcomeVerdict::SelfConnection
        );
        let exp = CatalogueUri::from_addr("b:1").unwrap();
        assert!(matches!(
            check_welcome(&c, Some(&exp), &welcome("x:1", "production")),
            WelcomeVerdict::WrongIdentity { .. }
        ));
        assert!(matches!(
            check_welcome(&c, Some(&exp), &welcome("b:1", "production")),
            WelcomeVerdict::Link { .. }
        ));
        assert_eq!(
            check_welcome(&c, None, &Message::Heartbeat),
            WelcomeVerdict::NotWelcome
        );
    }
}
