//! A DNS server for discovery tests and benchmarks: Debian's `dnsmasq`
//! (package dnsmasq-base) serving the SRV records of one name on a
//! loopback address, restarted with new records when they change (it reads
//! `--srv-host` only at start). Killed on drop.

use std::process::{Child, Command, Stdio};

use crate::{fresh_addr, Error};

/// A running dnsmasq serving `name`'s SRV records.
#[derive(Debug)]
pub struct Dnsmasq {
    /// Where it answers (UDP and TCP), `IP:PORT` on loopback.
    pub addr: String,
    name: String,
    child: Option<Child>,
}

impl Dnsmasq {
    /// Serves `name` (e.g. `_rarangi._tcp.disc.test`) with one SRV target
    /// per catalogue address. [`Error::Unsupported`] if dnsmasq is missing.
    pub fn start(name: &str, cats: &[&str]) -> Result<Dnsmasq, Error> {
        if Command::new("dnsmasq").arg("--version").output().is_err() {
            return Err(Error::Unsupported(
                "no dnsmasq (apt-get install dnsmasq-base)".into(),
            ));
        }
        let mut dns = Dnsmasq {
            addr: fresh_addr(),
            name: name.to_owned(),
            child: None,
        };
        dns.serve(cats)?;
        Ok(dns)
    }

    /// Restarts it with these catalogues as the name's SRV targets.
    pub fn serve(&mut self, cats: &[&str]) -> Result<(), Error> {
        self.stop();
        let (ip, port) = self.addr.rsplit_once(':').expect("IP:PORT");
        let mut args: Vec<String> = [
            "-d",
            "-C",
            "/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
        ]
        .map(String::from)
        .to_vec();
        args.extend(["--bind-interfaces".into(), "-p".into(), port.into()]);
        args.extend(["--listen-address".into(), ip.into()]);
        for (i, cat) in cats.iter().enumerate() {
            let (cip, cport) = cat.rsplit_once(':').expect("IP:PORT");
            args.push(format!("--srv-host={},cat{i}.{},{cport}", self.name, self.name));
            args.push(format!("--host-record=cat{i}.{},{cip}", self.name));
        }
        let child = Command::new("dnsmasq")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Spawn {
                bin: "dnsmasq".into(),
                source,
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}
