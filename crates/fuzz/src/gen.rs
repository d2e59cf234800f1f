//! A seeded generator of protocol values: URIs, names, timestamps and whole
//! messages, drawn mostly from small pools (so catalogues see the same
//! services and keys again and again) and sometimes from anywhere.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rarangi_proto::{Attrs, Bound, CatalogueUri, ErrorCode, Message, ServiceUri, Ts};

/// A deterministic source of fuzz input: the same seed gives the same case.
#[derive(Debug, Clone)]
pub struct Gen {
    rng: ChaCha8Rng,
}

/// Hosts of the honest catalogues (`n0`, `n1`, ...) and of fake peers.
pub(crate) const HONEST_HOSTS: [&str; 3] = ["n0:4760", "n1:4760", "n2:4760"];
/// Hosts a fake peer may claim to be.
pub(crate) const FAKE_HOSTS: [&str; 3] = ["f0:4760", "f1:4761", "zz:1"];

const SERVICES: [&str; 8] = [
    "tcp://10.0.0.1:80/orders",
    "tcp://10.0.0.2:80/orders",
    "http://h:8080/users/v1",
    "tcp://h:1/x",
    "udp://[::1]:53/dns",
    "tcp://10.0.0.1:80/orders?x=%20",
    "tcp://h:2/caf%C3%A9",
    "tcp://h:3/a/b/c#frag",
];
const CLUSTERS: [&str; 4] = ["eu", "us", "eu-2", "x"];
const KEYS: [&str; 8] = [
    "app/a",
    "app/b",
    "hook/app/a/h1",
    "hookstate/app/a/h1",
    "hook/srv/orders/h2",
    "hookstate/srv/orders/h2",
    "plain",
    "a/b/c",
];
const VALUES: [&str; 5] = [
    "{}",
    "{\"name\":\"h1\",\"endpoint\":\"http://127.0.0.1:9/\"}",
    "{\"x\":1}",
    "",
    "not json",
];
const REGEXES: [&str; 12] = [
    ".*",
    "orders",
    "^tcp://",
    "(a|b)*c",
    "[",
    "(?i)USERS",
    "a{1000}",
    "(?:(?:a{50}){50}){50}",
    "\\p{L}+",
    "$^",
    ".",
    "x{0,65535}",
];

impl Gen {
    /// A generator for one case.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A uniform number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.gen_range(0..n)
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        self.rng.gen_ratio(num.min(den), den)
    }

    /// A uniform `u64`.
    pub fn u64(&mut self) -> u64 {
        self.rng.gen()
    }

    /// A uniform number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.gen_range(lo..=hi)
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// Random bytes of a length below `max`.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.rng.gen()).collect()
    }

    /// Text of up to `max` characters mixing letters, punctuation, spaces,
    /// percent signs, control characters and non-ASCII.
    pub fn text(&mut self, max: usize) -> String {
        const ODD: [char; 12] = [
            ' ', '%', '\r', '\n', '\0', '\t', 'é', '😀', '\u{7f}', '/', '=', ',',
        ];
        let n = self.below(max + 1);
        (0..n)
            .map(|_| match self.below(4) {
                0 => self.pick(&ODD),
                1 => char::from_u32(self.range(0x20, 0x2FFF) as u32).unwrap_or('?'),
                _ => char::from(b'a' + self.below(26) as u8),
            })
            .collect()
    }

    /// A catalogue URI: an honest one, a fake peer, or a random host.
    pub fn catalogue(&mut self) -> CatalogueUri {
        let host = match self.below(8) {
            0..=3 => self.pick(&HONEST_HOSTS).to_owned(),
            4..=6 => self.pick(&FAKE_HOSTS).to_owned(),
            _ => format!("r{}:{}", self.below(1000), self.range(1, 65535)),
        };
        CatalogueUri::from_addr(&host).expect("generated hosts are valid")
    }

    /// A service URI, from the pool or built from odd parts.
    pub fn service(&mut self) -> ServiceUri {
        if self.chance(7, 8) {
            return ServiceUri::parse(self.pick(&SERVICES)).expect("pool URIs are valid");
        }
        loop {
            let s = format!("tcp://h{}:{}/{}", self.below(5), self.below(70000), self.text(12));
            if let Ok(u) = ServiceUri::parse(&s) {
                return u;
            }
            if let Ok(u) = ServiceUri::parse(self.pick(&SERVICES)) {
                return u;
            }
        }
    }

    /// Mostly (15 in 16) an entry of `pool`, else odd text of up to `max`
    /// characters.
    fn pool_or_text(&mut self, pool: &[&str], max: usize) -> String {
        if self.chance(15, 16) {
            self.pick(pool).to_owned()
        } else {
            self.text(max)
        }
    }

    /// A cluster name (sometimes an invalid one).
    pub fn cluster(&mut self) -> String {
        self.pool_or_text(&CLUSTERS, 8)
    }

    /// A configuration key (sometimes an odd or invalid one).
    pub fn key(&mut self) -> String {
        self.pool_or_text(&KEYS, 20)
    }

    /// A configuration value.
    pub fn value(&mut self) -> String {
        self.pool_or_text(&VALUES, 40)
    }

    /// A subscription regex (valid, invalid, or expensive).
    pub fn regex(&mut self) -> String {
        self.pool_or_text(&REGEXES, 16)
    }

    /// Attributes: usually empty or small.
    pub fn attrs(&mut self) -> Attrs {
        let n = if self.chance(1, 2) { 0 } else { self.below(4) };
        Attrs(
            (0..n)
                .map(|_| {
                    let k = if self.chance(3, 4) {
                        "w".to_owned()
                    } else {
                        self.text(6)
                    };
                    (k, self.text(8))
                })
                .collect(),
        )
    }

    /// A timestamp near `now_ms` (within the skew bound either way), or an
    /// edge: zero, far future, the largest value.
    pub fn ts(&mut self, now_ms: u64) -> Ts {
        match self.below(10) {
            0 => Ts(0),
            1 => Ts(u64::MAX),
            2 => Ts::from_parts(now_ms.saturating_add(60_000), u16::MAX),
            3 => Ts::from_parts(now_ms.saturating_add(self.range(60_001, 1 << 30)), 0),
            4 => Ts(self.u64()),
            _ => {
                let back = self.range(0, 120_000);
                let fwd = self.range(0, 59_000);
                Ts::from_parts(
                    now_ms.saturating_sub(back).saturating_add(fwd),
                    self.below(4) as u16,
                )
            }
        }
    }

    /// A SYNC range bound.
    pub fn bound(&mut self) -> Bound {
        if self.chance(1, 3) {
            Bound::Unbounded
        } else if self.chance(1, 2) {
            Bound::Key(format!("s{}", self.pick(&SERVICES)))
        } else {
            Bound::Key(self.text(10))
        }
    }

    /// Two distinct catalogue URIs in order (as ADD_LINK wants).
    fn link_ends(&mut self) -> (CatalogueUri, CatalogueUri) {
        let a = self.catalogue();
        let mut b = self.catalogue();
        if a == b {
            b = CatalogueUri::from_addr("zzz:9").expect("valid");
        }
        if a < b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// Any message, with fields that are each well formed on their own
    /// (the wire may still refuse some, e.g. an invalid cluster name).
    pub fn message(&mut self, now_ms: u64) -> Message {
        match self.below(20) {
            0 => Message::Welcome {
                catalogue: self.catalogue(),
                cluster: self.cluster(),
                environment: if self.chance(3, 4) {
                    "production".into()
                } else {
                    self.text(8)
                },
            },
            1 => Message::Heartbeat,
            2 => Message::Error {
                code: ErrorCode::from_wire(if self.chance(1, 2) { "limit" } else { "odd-code" }),
                text: self.text(20),
            },
            3 | 4 => {
                let (a, b) = self.link_ends();
                let ts = self.ts(now_ms);
                if self.chance(1, 2) {
                    Message::AddLink { a, b, ts }
                } else {
                    Message::DelLink { a, b, ts }
                }
            }
            5 => Message::AddServ {
                service: self.service(),
                catalogue: self.catalogue(),
                cluster: self.cluster(),
                ts: self.ts(now_ms),
                attrs: self.attrs(),
            },
            6 => Message::DelServ {
                service: self.service(),
                catalogue: self.catalogue(),
                cluster: self.cluster(),
                ts: self.ts(now_ms),
            },
            7 => Message::RegServ {
                service: self.service(),
                attrs: self.attrs(),
            },
            8 => Message::SubServ { regex: self.regex() },
            9 => Message::SetKey {
                key: self.key(),
                origin: self.catalogue(),
                ts: self.ts(now_ms),
                value: self.value(),
            },
            10 => Message::DelKey {
                key: self.key(),
                origin: self.catalogue(),
                ts: self.ts(now_ms),
            },
            11 => Message::UnregServ {
                service: self.service(),
            },
            12 => Message::UnsubServ { regex: self.regex() },
            13 => Message::SubLink,
            14 => Message::UnsubLink,
            15 => Message::Catalogue {
                catalogue: self.catalogue(),
                cluster: self.cluster(),
                ts: self.ts(now_ms),
            },
            16 => Message::Sync {
                lo: self.bound(),
                hi: self.bound(),
                count: if self.chance(1, 2) {
                    self.range(0, 5)
                } else {
                    self.u64()
                },
                fingerprint: self.u64(),
            },
            17 => Message::SyncPull {
                lo: self.bound(),
                hi: self.bound(),
            },
            18 => Message::SyncMark {
                last: self.chance(1, 2),
            },
            _ => Message::Reachable {
                leader: self.catalogue(),
                reachable: (0..=self.below(4)).map(|_| self.catalogue()).collect(),
            },
        }
    }
}
