//! Network namespaces for whole-system tests: a [`Lab`] of namespaces on
//! one bridge, each with its own address in 10.213.X.0/24, the test's own
//! (root) namespace joined to the bridge so it reaches every one, and
//! faults made with iptables DROP rules inside the namespaces. It is one
//! broadcast domain (each address has its broadcast address), so LAN
//! broadcast (the beacon) works across it. Everything
//! is removed on drop, also when a test fails.
//!
//! ```text
//!   root ns: rrcPID-r 10.213.X.254 ──veth──┐
//!   hub ns:  bridge br0 ───────────────────┼──────────┬── …
//!   node ns: eth0 10.213.X.1 ──veth────────┘  eth0 10.213.X.2
//! ```
//!
//! The bridge sits in a namespace of its own (not the root's), so no
//! firewall of the host (say, a FORWARD DROP policy with br_netfilter)
//! sees the lab's traffic, and the lab's rules never touch the host's.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use crate::Error;

/// The first two octets of every lab address: a private range that exists
/// only inside the lab (and on the root namespace's veth into it).
const NET: [u8; 2] = [10, 213];
/// The last octet of the root namespace's address.
const HOST: u8 = 254;

/// Namespaces `PREFIX-0` … `PREFIX-(n-1)` on one bridge, reachable from the
/// root namespace; see the module documentation.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    hub: String,
    spaces: Vec<String>,
    root_if: Option<String>,
    octet: u8,
    dropped: BTreeSet<(usize, usize)>,
}

impl Lab {
    /// Makes `n` namespaces (at most 250). [`Error::Unsupported`] says why
    /// namespaces cannot be made here (no `ip` or `iptables`, not
    /// permitted), so a test can skip.
    pub fn create(n: usize) -> Result<Lab, Error> {
        assert!((1..250).contains(&n), "a lab holds 1 to 249 namespaces");
        for (tool, package) in [("ip", "iproute2"), ("iptables", "iptables")] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(Error::Unsupported(format!(
                    "no `{tool}` command (install {package})"
                )));
            }
        }
        // The PID keeps two test processes' labs apart.
        let prefix = format!("rrc{}", std::process::id());
        let hub = format!("{prefix}-hub");
        run(&["ip", "netns", "add", &hub])
            .map_err(|e| Error::Unsupported(format!("{e} (it needs root or CAP_NET_ADMIN)")))?;
        // From here on, dropping `lab` removes whatever was made.
        let mut lab = Lab {
            octet: free_octet()?,
            prefix,
            hub,
            spaces: Vec::new(),
            root_if: None,
            dropped: BTreeSet::new(),
        };
        lab.build(n)?;
        Ok(lab)
    }

    fn build(&mut self, n: usize) -> Result<(), Error> {
        let (hub, prefix) = (self.hub.clone(), self.prefix.clone());
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let ns = format!("{prefix}-{i}");
            run(&["ip", "netns", "add", &ns])?;
            self.spaces.push(ns.clone());
            let port = format!("{prefix}p{i}");
            run(&[
                "ip", "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/24", self.ip(i));
            // With its broadcast address, as on a real LAN: a namespace
            // without one drops datagrams to 10.213.X.255 (the beacon's).
            run(&["ip", "-n", &ns, "addr", "add", &addr, "brd", "+", "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        let root_if = format!("{prefix}r");
        let hub_end = format!("{prefix}q");
        run(&[
            "ip", "link", "add", &root_if, "type", "veth", "peer", "name", &hub_end, "netns", &hub,
        ])?;
        self.root_if = Some(root_if.clone());
        run(&["ip", "-n", &hub, "link", "set", &hub_end, "master", "br0", "up"])?;
        let addr = format!("{}/24", self.host_ip());
        run(&["ip", "addr", "add", &addr, "dev", &root_if])?;
        run(&["ip", "link", "set", &root_if, "up"])?;
        // The faults need iptables inside a namespace: find out now.
        in_ns(&self.spaces[0], &["iptables", "-w", "-S"])
            .map_err(|e| Error::Unsupported(format!("iptables in a namespace: {e}")))
    }

    /// How many namespaces.
    pub fn len(&self) -> usize {
        self.spaces.len()
    }

    /// Whether it has none (never, once created).
    pub fn is_empty(&self) -> bool {
        self.spaces.is_empty()
    }

    /// The name of namespace `i` (for `ip netns exec`).
    pub fn name(&self, i: usize) -> &str {
        &self.spaces[i]
    }

    /// The address of namespace `i`: 10.213.X.(i+1).
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        let last = u8::try_from(i + 1).expect("at most 249 namespaces");
        Ipv4Addr::new(NET[0], NET[1], self.octet, last)
    }

    /// The root namespace's address on the lab's bridge (where the test's
    /// own connections come from).
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(NET[0], NET[1], self.octet, HOST)
    }

    /// The lab's network, as a CIDR (`10.213.X.0/24`).
    pub fn cidr(&self) -> String {
        format!("{}.{}.{}.0/24", NET[0], NET[1], self.octet)
    }

    /// The command that runs a program inside namespace `i`; it execs the
    /// program, so the PID started is the program's own.
    pub fn launcher(&self, i: usize) -> [String; 4] {
        ["ip".into(), "netns".into(), "exec".into(), self.spaces[i].clone()]
    }

    /// One-way fault: namespace `to` drops every packet from `from`.
    pub fn drop_from(&mut self, from: usize, to: usize) -> Result<(), Error> {
        if self.dropped.insert((from, to)) {
            self.rule("-A", from, to)?;
        }
        Ok(())
    }

    /// Ends a [`Lab::drop_from`] fault.
    pub fn allow_from(&mut self, from: usize, to: usize) -> Result<(), Error> {
        if self.dropped.remove(&(from, to)) {
            self.rule("-D", from, to)?;
        }
        Ok(())
    }

    /// Link down: `a` and `b` drop each other's packets (both directions).
    pub fn cut(&mut self, a: usize, b: usize) -> Result<(), Error> {
        self.drop_from(a, b)?;
        self.drop_from(b, a)
    }

    /// Ends a [`Lab::cut`] (and any one-way fault between `a` and `b`).
    pub fn mend(&mut self, a: usize, b: usize) -> Result<(), Error> {
        self.allow_from(a, b)?;
        self.allow_from(b, a)
    }

    /// Ends every fault.
    pub fn heal(&mut self) -> Result<(), Error> {
        for (from, to) in self.dropped.clone() {
            self.allow_from(from, to)?;
        }
        Ok(())
    }

    /// The faults in force, as (from, to): `to` drops what `from` sends.
    pub fn dropped(&self) -> &BTreeSet<(usize, usize)> {
        &self.dropped
    }

    fn rule(&self, op: &str, from: usize, to: usize) -> Result<(), Error> {
        let src = self.ip(from).to_string();
        in_ns(
            &self.spaces[to],
            &["iptables", "-w", op, "INPUT", "-s", &src, "-j", "DROP"],
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace also deletes its veth ends; the processes
        // inside are their owners' to end (by PID).
        for ns in self.spaces.iter().chain([&self.hub]) {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        if let Some(root_if) = &self.root_if {
            let _ = run(&["ip", "link", "del", root_if]);
        }
    }
}

/// A third octet whose /24 the root namespace does not route yet, from our
/// PID onwards (two labs at once get different networks).
fn free_octet() -> Result<u8, Error> {
    let start = std::process::id() % 250;
    for k in 0..250 {
        let octet = u8::try_from((start + k) % 250 + 1).expect("below 251");
        let net = format!("{}.{}.{octet}.0/24", NET[0], NET[1]);
        let out = Command::new("ip")
            .args(["-4", "route", "show", "root", &net])
            .output()
            .map_err(Error::io("run ip route"))?;
        if out.status.success() && out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(octet);
        }
    }
    Err(Error::Unsupported("every 10.213.X.0/24 is routed already".into()))
}

fn in_ns(ns: &str, args: &[&str]) -> Result<(), Error> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all)
}

/// Runs a command to completion; its failure carries stderr.
fn run(args: &[&str]) -> Result<(), Error> {
    let what = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(Error::io(format!("run {what}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        what,
        detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netns_list() -> String {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_lab_makes_addresses_and_faults_and_leaves_nothing_behind() {
        let mut lab = match Lab::create(2) {
            Err(Error::Unsupported(why)) => {
                eprintln!("skipped: {why}");
                return;
            }
            other => other.unwrap(),
        };
        let prefix = lab.prefix.clone();
        assert_eq!(lab.len(), 2);
        assert_eq!(lab.ip(1).octets()[3], 2);
        assert!(lab.cidr().ends_with(".0/24"));
        assert!(netns_list().contains(&format!("{prefix}-1")));
        lab.cut(0, 1).unwrap();
        lab.drop_from(0, 1).unwrap(); // already in force: no second rule
        assert_eq!(lab.dropped().len(), 2);
        lab.allow_from(0, 1).unwrap();
        lab.heal().unwrap();
        assert!(lab.dropped().is_empty());
        drop(lab);
        assert!(!netns_list().contains(&prefix), "{}", netns_list());
    }
}
