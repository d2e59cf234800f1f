//! The `rarangi` command.

mod cmd;
mod man;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use rarangi_client::{register, Connection, Endpoint, Options, TlsOptions};
use rarangi_proto::{Attrs, CatalogueUri, Message};

/// Rarangi: a distributed service catalogue.
///
/// Run a catalogue with `rarangi serve`; register services, look them up and
/// watch them with the other commands. With no --catalogue or --unix, the
/// commands talk to this host's catalogue of the environment: side A (its
/// Unix socket, then 127.0.0.1 on the well-known port), then side B.
#[derive(Parser)]
#[command(name = "rarangi", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the client commands.
#[derive(clap::Args, Clone)]
pub(crate) struct Target {
    /// Environment to talk to.
    #[arg(long, env = "RARANGI_ENV", default_value = "development")]
    env: String,
    /// A catalogue's line-protocol address instead of this host's.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "unix")]
    catalogue: Option<String>,
    /// A catalogue's Unix socket instead of this host's.
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// CA certificate to verify catalogues with TLS by (TCP only; the Unix
    /// socket stays plain).
    #[arg(long, env = "RARANGI_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Our certificate, signed by the CA: needed to register over TLS.
    #[arg(long, env = "RARANGI_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert.
    #[arg(long, env = "RARANGI_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Target {
    pub(crate) fn options(&self) -> Options {
        let opts = match (&self.catalogue, &self.unix) {
            (Some(addr), _) => Options::endpoints(&self.env, vec![Endpoint::Tcp(addr.clone())]),
            (None, Some(path)) => Options::endpoints(&self.env, vec![Endpoint::Unix(path.clone())]),
            (None, None) => Options::local(&self.env),
        };
        let tls = self.tls_ca.clone().map(|ca| TlsOptions {
            ca,
            cert: self.tls_cert.clone().zip(self.tls_key.clone()),
        });
        opts.with_tls(tls)
    }
}

/// A watchdog check declared with `register`: the catalogue probes the
/// service and withdraws it everywhere while it fails.
#[derive(clap::Args)]
struct CheckArgs {
    /// Watchdog check: `tcp` (connect to the service URI's host:port),
    /// `tcp://HOST:PORT`, or an `http://HOST:PORT/PATH` URL (a 2xx is
    /// healthy). While it fails the service is withdrawn everywhere; it
    /// returns when it passes again, without re-registering.
    #[arg(long, value_name = "tcp|tcp://HOST:PORT|URL")]
    check: Option<String>,
    /// Time between probes, e.g. 500ms, 2s (100ms to 1h). [default: 1s]
    #[arg(long, value_name = "DURATION", requires = "check")]
    check_interval: Option<String>,
    /// Time one probe may take, less than the interval. [default: 500ms]
    #[arg(long, value_name = "DURATION", requires = "check")]
    check_timeout: Option<String>,
    /// Consecutive failures before the service is withdrawn (1-100). [default: 3]
    #[arg(long, value_name = "N", requires = "check")]
    check_fails: Option<u32>,
    /// Consecutive passes before it returns (1-100). [default: 2]
    #[arg(long, value_name = "N", requires = "check")]
    check_passes: Option<u32>,
}

impl CheckArgs {
    /// Adds the check's attributes (the catalogue validates them).
    fn add_to(&self, attrs: &mut Attrs) {
        let Some(spec) = &self.check else { return };
        let mut check = rarangi_client::Check::parse(spec);
        if let Some(n) = self.check_fails {
            check = check.fails(n);
        }
        if let Some(n) = self.check_passes {
            check = check.passes(n);
        }
        check.add_to(attrs);
        // Durations go as written: the catalogue parses and bounds them.
        let durations = [
            ("check-interval", &self.check_interval),
            ("check-timeout", &self.check_timeout),
        ];
        for (k, v) in durations {
            if let Some(v) = v {
                attrs.0.insert(k.into(), v.clone());
            }
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a catalogue server (stops gracefully on SIGTERM or Ctrl-C).
    Serve(Box<rarangi_server::ServeArgs>),
    /// Register a service and keep it registered until this command is
    /// stopped (it re-registers if the catalogue restarts).
    Register {
        /// The service URI, e.g. tcp://10.0.0.5:8080/orders.
        service: String,
        /// Metadata, e.g. --attr weight=10 (repeatable).
        #[arg(long = "attr", value_name = "K=V")]
        attrs: Vec<String>,
        #[command(flatten)]
        check: CheckArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Print the instances of service NAME (or matching --regex), one URI
    /// per line, nearest first. Exits 1 when nothing matches.
    Lookup {
        #[command(flatten)]
        select: cmd::select::Selection,
        /// Print a JSON array of instances (docs/MODEL.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Print the instances of service NAME (or matching --regex), then
    /// `+ URI` / `- URI` as they come and go, until stopped. While the
    /// catalogue is lost it prints `! stale: catalogue lost, reconnecting`,
    /// then what changed meanwhile and `! synced: CATALOGUE`.
    Watch {
        #[command(flatten)]
        select: cmd::select::Selection,
        /// Print one JSON object per line: {"event":"added"|"removed",
        /// "snapshot":BOOL,"instance":{...}}, {"event":"synced"},
        /// {"event":"stale"}.
        #[arg(long)]
        json: bool,
        /// Run CMD (with `sh -c`) after the first snapshot and on each
        /// change, the current instances as a JSON array on its stdin; one
        /// run at a time (changes during a run cause one more run after
        /// it). Its exit status is reported on stderr.
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Show the catalogues, the links between them, which catalogues this
    /// one can reach, and the leader.
    Topology {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List the catalogues: cluster, reachable or not from the catalogue
    /// asked, the leader, and each one's link count.
    Members {
        /// Print a JSON array: {"uri","cluster","reachable","leader","links"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove an unreachable catalogue from every topology now, with its
    /// links and services, instead of waiting for --reap-after. Refused for
    /// a catalogue that is reachable (stop it instead: it leaves by itself)
    /// and from connections that may not register.
    ForceLeave {
        /// The catalogue: its URI (x-tvnetcs://HOST:PORT/) or HOST:PORT.
        uri: String,
        #[command(flatten)]
        target: Target,
    },
    /// Configuration documents (/app) over the HTTP API.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Web-hooks on documents and services over the HTTP API.
    #[command(subcommand)]
    Hooks(cmd::config::HooksCommand),
    /// Make a certificate authority and certificates for mutual TLS.
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// Write the man pages (rarangi.1, rarangi-COMMAND.1) into DIR, for
    /// packaging.
    #[command(hide = true)]
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
}

/// mimalloc keeps less memory per block and returns freed memory to the
/// system: a replica holding 100k services measured about 10% less RSS than
/// with the system allocator. `--no-default-features` builds without it, for
/// heaptrack or valgrind.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rarangi: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Register {
            service,
            attrs,
            check,
            target,
        } => register_cmd(&service, &attrs, &check, &target).await,
        Command::Lookup { select, json, target } => cmd::select::lookup(&select, json, &target).await,
        Command::Watch {
            select,
            json,
            exec,
            target,
        } => cmd::watch::watch(&select, json, exec, &target).await,
        Command::Topology { json, target } => cmd::topology::topology(json, &target).await,
        Command::Members { json, target } => cmd::topology::members(json, &target).await,
        Command::ForceLeave { uri, target } => force_leave(&uri, &target).await,
        Command::Config(c) => cmd::config::config(&c).await,
        Command::Hooks(c) => cmd::config::hooks(&c).await,
        Command::Tls(cmd) => tls::run(&cmd).map(|()| ExitCode::SUCCESS),
        Command::Man { dir } => {
            for page in man::write_pages(Cli::command(), &dir)? {
                println!("{}", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: rarangi_server::ServeArgs) -> Result<ExitCode> {
    let settings = args.resolve()?;
    rarangi_server::init_logging(settings.log_format);
    // SIGHUP means "read the files again" (`systemctl reload`): a catalogue
    // with nothing to reload must not die of it. Tokio keeps the handler
    // for the whole process once installed.
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    let stop = rarangi_server::CancellationToken::new();
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal_stop.cancel();
    });
    rarangi_server::serve(settings, stop).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn wait_for_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

pub(crate) fn parse_attrs(attrs: &[String]) -> Result<Attrs> {
    attrs
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("--attr {a:?} must look like KEY=VALUE"),
        })
        .collect()
}

async fn register_cmd(
    service: &str,
    attrs: &[String],
    check: &CheckArgs,
    target: &Target,
) -> Result<ExitCode> {
    let mut attrs = parse_attrs(attrs)?;
    check.add_to(&mut attrs);
    let reg = register(&target.options(), service, attrs)
        .await
        .context("cannot register")?;
    if let Some(c) = reg.catalogue() {
        eprintln!("registered {service} at {c}; stop with Ctrl-C to deregister");
    }
    let mut at = reg.watch_catalogue();
    let mut held = at.borrow_and_update().clone();
    loop {
        tokio::select! {
            _ = wait_for_signal() => break,
            r = at.changed() => {
                if r.is_err() {
                    eprintln!("rarangi: cannot re-register {service}; giving up");
                    return Ok(ExitCode::from(1));
                }
                let now = at.borrow_and_update().clone();
                match (&held, &now) {
                    (Some(c), None) => eprintln!("rarangi: lost catalogue {c}; re-registering {service}"),
                    (_, Some(c)) => eprintln!("rarangi: registered {service} again at {c}"),
                    (None, None) => {}
                }
                held = now;
            }
        }
    }
    drop(reg);
    Ok(ExitCode::SUCCESS)
}

async fn force_leave(uri: &str, target: &Target) -> Result<ExitCode> {
    let catalogue = CatalogueUri::parse(uri)
        .or_else(|_| CatalogueUri::from_addr(uri))
        .with_context(|| format!("{uri:?} is not a catalogue URI (x-tvnetcs://HOST:PORT/) or HOST:PORT"))?;
    let mut conn = Connection::connect(&target.options()).await?;
    conn.send(&Message::ForceLeave {
        catalogue: catalogue.clone(),
    })
    .await?;
    loop {
        match conn.recv().await? {
            Some(Message::ForceLeave { catalogue: done }) if done == catalogue => {
                eprintln!("{catalogue} removed; the other catalogues drop it as the removal floods");
                return Ok(ExitCode::SUCCESS);
            }
            Some(Message::Error { code, text }) => bail!("{code}: {text}"),
            Some(_) => {}
            None => bail!("the catalogue closed the connection"),
        }
    }
}
