//! The Debian package: `cargo deb` builds it, `dpkg -i` installs it, the
//! templated unit runs a catalogue (under systemd where it runs, else as
//! the unit says: its user, variables and directories), `rarangi members`
//! answers, and the package goes away cleanly.
//!
//! Opt-in (it needs root, `cargo deb` and changes the machine): set
//! RARANGI_TEST_DEB=1. It packages the binary this test was built with,
//! so it does not wait for a release build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rarangi_harness::{fresh_addr, Deadline};

/// An environment no real catalogue uses, so the test touches nothing else.
const INSTANCE: &str = "pkgtest-a";
const UNIT: &str = "/usr/lib/systemd/system/rarangi@.service";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "rarangi"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

/// Purges the package and the instance's files, however the test ends.
struct Cleanup {
    server: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("dpkg").args(["--purge", "rarangi"]).output();
        let _ = std::fs::remove_file(format!("/etc/rarangi/{INSTANCE}.env"));
        let _ = std::fs::remove_dir_all(format!("/var/lib/rarangi/{INSTANCE}"));
        let _ = std::fs::remove_file(format!("/run/rarangi/{INSTANCE}.sock"));
    }
}

/// What the unit file says, with `%i` replaced by the instance.
#[derive(Debug, Default)]
struct Unit {
    user: String,
    env: BTreeMap<String, String>,
    env_file: Option<PathBuf>,
    exec: Vec<String>,
    runtime_dir: Vec<String>,
    state_dir: Vec<String>,
}

fn read_unit(path: &str, instance: &str) -> Unit {
    let text = std::fs::read_to_string(path).expect("the packaged unit");
    let mut unit = Unit::default();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.replace("%i", instance);
        match key {
            "User" => unit.user = value,
            "Environment" => {
                let (k, v) = value.split_once('=').expect("Environment=K=V");
                unit.env.insert(k.to_owned(), v.to_owned());
            }
            "EnvironmentFile" => unit.env_file = Some(value.trim_start_matches('-').into()),
            "ExecStart" => unit.exec = value.split_whitespace().map(str::to_owned).collect(),
            "RuntimeDirectory" => unit.runtime_dir.push(format!("/run/{value}")),
            "StateDirectory" => unit.state_dir.push(format!("/var/lib/{value}")),
            _ => {}
        }
    }
    unit
}

/// `KEY=VALUE` lines of an environment file (comments and blanks skipped).
fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `rarangi members` (or `topology` where members is not there) against
/// the instance's socket, until it answers.
fn wait_for_members(socket: &str) -> String {
    let deadline = Deadline::default();
    let mut last = String::new();
    loop {
        for cmd in ["members", "topology"] {
            let out = Command::new("/usr/bin/rarangi")
                .args([cmd, "--env", "pkgtest", "--unix", socket])
                .env_remove("RARANGI_ENV")
                .output()
                .expect("run the packaged rarangi");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                return text;
            }
            // Only fall back to `topology` when `members` is unknown.
            let unknown = text.contains("unrecognized subcommand");
            last = format!("rarangi {cmd}: {text}");
            if !unknown {
                break;
            }
        }
        assert!(
            deadline.next_blocking(),
            "the packaged catalogue never answered: {last}"
        );
    }
}

#[test]
fn the_package_installs_runs_and_goes_away() {
    if std::env::var("RARANGI_TEST_DEB").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set RARANGI_TEST_DEB=1 to build, install and run the .deb (needs root and cargo-deb)"
        );
        return;
    }
    assert_eq!(euid(), 0, "RARANGI_TEST_DEB=1 needs root (dpkg -i)");
    assert!(found("dpkg"), "RARANGI_TEST_DEB=1 needs dpkg");
    assert!(
        !installed(),
        "a rarangi package is already installed here; this test would remove it"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = Path::new(env!("CARGO_BIN_EXE_rarangi"));
    // cargo-deb maps target/release/ in the assets to the profile's
    // directory: the binary under test and its man pages beside it.
    let profile_dir = bin.parent().expect("the binary's directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("unexpected binary path {}", bin.display()),
    };
    run(Command::new(bin).arg("man").arg(profile_dir.join("man")));
    let out_dir = profile_dir.join("../debian-test");
    let _ = std::fs::remove_dir_all(&out_dir);
    let built = run(Command::new("cargo")
        .current_dir(&root)
        .args([
            "deb",
            "-p",
            "rarangi",
            "--no-build",
            "--fast",
            "--profile",
            profile,
            "-o",
        ])
        .arg(&out_dir));
    let deb = String::from_utf8_lossy(&built.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb prints the package's path");

    let mut cleanup = Cleanup { server: None };
    run(Command::new("dpkg").arg("-i").arg(&deb));
    for file in [
        "/usr/bin/rarangi",
        UNIT,
        "/usr/lib/sysusers.d/rarangi.conf",
        "/etc/rarangi/example.env",
        "/usr/share/doc/rarangi/OPERATIONS.md",
    ] {
        assert!(Path::new(file).exists(), "{file} not installed");
    }
    run(Command::new("getent").args(["passwd", "rarangi"]));
    check_man_page();
    if found("systemd-analyze") {
        let out = Command::new("systemd-analyze")
            .args(["verify", UNIT])
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.trim().is_empty(), "unit: {text}");
    }

    // The instance's settings: the packaged example, plus a loopback
    // address (pkgtest has no well-known ports).
    let example = std::fs::read_to_string("/etc/rarangi/example.env").unwrap();
    let listen = fresh_addr();
    std::fs::write(
        format!("/etc/rarangi/{INSTANCE}.env"),
        format!("{example}\nRARANGI_LISTEN={listen}\n"),
    )
    .unwrap();
    let socket = format!("/run/rarangi/{INSTANCE}.sock");
    let systemd = Command::new("systemctl")
        .arg("is-system-running")
        .output()
        .is_ok_and(|o| {
            let state = String::from_utf8_lossy(&o.stdout);
            ["running", "degraded"].contains(&state.trim())
        });
    let unit = format!("rarangi@{INSTANCE}.service");
    if systemd {
        run(Command::new("systemctl").args(["start", &unit]));
        let members = wait_for_members(&socket);
        assert!(members.contains(&listen), "{members}");
        run(Command::new("systemctl").args(["stop", &unit]));
    } else {
        eprintln!("systemd is not running here: running the unit's command as the unit says");
        cleanup.server = Some(start_like_systemd(&read_unit(UNIT, INSTANCE)));
        let members = wait_for_members(&socket);
        assert!(members.contains(&listen), "{members}");
        let mut child = cleanup.server.take().unwrap();
        // ExecReload=kill -HUP: nothing to reload here, and it must not
        // die of it (a death by SIGHUP fails the exit check below).
        run(Command::new("kill").args(["-HUP", &child.id().to_string()]));
        wait_for_members(&socket);
        // KillSignal=SIGTERM: the catalogue leaves gracefully, exiting 0.
        run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "the catalogue did not stop cleanly on SIGTERM: {status}"
        );
    }
    std::fs::remove_file(format!("/etc/rarangi/{INSTANCE}.env")).unwrap();
    run(Command::new("dpkg").args(["--purge", "rarangi"]));
    assert!(!installed() && !Path::new("/usr/bin/rarangi").exists());
    drop(cleanup);
}

/// What systemd would do for the unit: its directories owned by its user,
/// its variables (unit first, then the environment file), its command as
/// its user.
fn start_like_systemd(unit: &Unit) -> std::process::Child {
    assert!(!unit.user.is_empty() && !unit.exec.is_empty(), "{unit:?}");
    for dir in unit.runtime_dir.iter().chain(&unit.state_dir) {
        run(Command::new("install").args(["-d", "-o", &unit.user, "-g", &unit.user, dir]));
    }
    let mut env = unit.env.clone();
    if let Some(file) = &unit.env_file {
        env.extend(read_env_file(file));
    }
    // The unit's paths are the ones root's defaults would be.
    assert_eq!(env["RARANGI_UNIX"], format!("/run/rarangi/{INSTANCE}.sock"));
    assert_eq!(env["RARANGI_DATA_DIR"], format!("/var/lib/rarangi/{INSTANCE}"));
    let user = format!("--reuid={}", unit.user);
    let group = format!("--regid={}", unit.user);
    Command::new("setpriv")
        .args([user.as_str(), group.as_str(), "--init-groups", "--"])
        .args(&unit.exec)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the packaged rarangi")
}

/// The installed page where dpkg installed it (minimal images exclude
/// /usr/share/man), else the generated file.
fn check_man_page() {
    let page = [
        "/usr/share/man/man1/rarangi.1",
        "/usr/share/man/man1/rarangi.1.gz",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let Some(page) = page else {
        eprintln!("the man pages were not installed (excluded by dpkg's configuration?)");
        return;
    };
    if !found("man") {
        eprintln!("no man(1) here: not rendering {page}");
        return;
    }
    let out = run(Command::new("man")
        .args(["-l", page])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rarangi") && text.contains("serve"), "{text}");
}

fn euid() -> u32 {
    // The tests have no rustix: ask id(1).
    let out = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("id -u")
}
