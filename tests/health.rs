//! Watchdog health checks on real processes: a catalogue probes the
//! services registered at it (TCP connect, HTTP GET) and withdraws a
//! critical instance from every linked catalogue while its connection
//! stays open; it returns when healthy, without re-registering. The
//! services are small `python3` processes (installed by .ci/run).

#[allow(unused_imports)] // the shared re-exports this file does not use
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::http::put;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP service that registers itself at `cat` over one line-protocol
/// connection it keeps, and accepts (then closes) every connection to it.
/// Its accept queue is one deep, so while it is stopped the kernel soon
/// stops completing connections to it, as with a hung process.
const TCP_SERVICE: &str = r#"
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
port = s.getsockname()[1]
host, cport = sys.argv[1].rsplit(":", 1)
c = socket.create_connection((host, int(cport)))
c.sendall(("7 tcp://127.0.0.1:%d/orders check=tcp&check-interval=200ms&check-timeout=100ms\n" % port).encode())
print(port, flush=True)
while True:
    a, _ = s.accept(); a.close()
"#;

/// An HTTP service answering GET /health with the status last set by
/// GET /set/CODE (it starts with 200).
const HTTP_SERVICE: &str = r#"
import http.server
state = {"code": 200}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/set/"):
            state["code"] = int(self.path[5:]); code = 200
        else:
            code = state["code"]
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A python3 process running `script` with `args`, and the port it printed.
struct Service {
    child: Child,
    port: u16,
    _out: BufReader<ChildStdout>,
}

impl Service {
    fn start(script: &str, args: &[&str]) -> Service {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is installed (.ci/run)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line.trim().parse().expect("the service prints its port");
        Service {
            child,
            port,
            _out: out,
        }
    }

    fn signal(&self, sig: &str) {
        // kill(1) on our own unreaped child's PID.
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Makes the HTTP service answer /health with `code`.
    async fn set(&self, code: u16) {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        s.write_all(format!("GET /set/{code} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.0 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Only a child not yet reaped still owns its PID.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_is_withdrawn_everywhere_and_returns_when_resumed() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let c = cat("development", "c2", &[&b.addr]);
    let watchers = [
        watch(&a, "orders").await,
        watch(&b, "orders").await,
        watch(&c, "orders").await,
    ];
    let service = Service::start(TCP_SERVICE, &[&a.addr]);
    let uri = format!("tcp://127.0.0.1:{}/orders", service.port);
    for w in &watchers {
        eventually("every catalogue shows the service", || w.uris().contains(&uri)).await;
    }

    service.signal("STOP"); // hung: its connection to the catalogue stays open
    for w in &watchers {
        eventually("every catalogue withdraws the hung service", || {
            w.uris().is_empty()
        })
        .await;
    }
    for cat in [&a, &b, &c] {
        eventually_lookup(cat, "orders", &[]).await;
    }
    assert!(a.log().contains("instance critical"), "{}", a.log());

    service.signal("CONT"); // it never registers again
    for w in &watchers {
        eventually("every catalogue shows it again", || w.uris().contains(&uri)).await;
    }
    eventually_lookup(&c, "orders", &[&uri]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_check_answering_500_withdraws_and_200_restores() {
    let a = Cat::options("development").bin(BIN).start().unwrap();
    let b = cat("development", "c1", &[&a.addr]);
    let service = Service::start(HTTP_SERVICE, &[]);
    let watcher = watch(&b, "web").await;
    let check = json!({"http": format!("http://127.0.0.1:{}/health", service.port), "interval": "200ms", "timeout": "100ms"});
    let body = json!({"endpoints": ["http://127.0.0.1/"], "ttl": 600, "check": check});
    assert_eq!(put(&a.http, "/srv/web/host1", body).await, 201);
    let uri = "nesoi://host1/web";
    eventually("the instance is shown", || watcher.uris().contains(uri)).await;

    service.set(500).await;
    eventually("a 500 withdraws it", || watcher.uris().is_empty()).await;
    eventually_lookup(&a, "web", &[]).await;

    service.set(200).await;
    eventually("a 200 brings it back", || watcher.uris().contains(uri)).await;
    eventually_lookup(&a, "web", &[uri]).await;

    let bad = json!({"endpoints": [], "check": {"http": "ftp://x/"}});
    assert_eq!(put(&a.http, "/srv/web/host2", bad).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_instance_is_held_down() {
    let a = Cat::options("development")
        .bin(BIN)
        .args(["--check-flap-limit", "1", "--check-hold-down-ms", "600000"])
        .start()
        .unwrap();
    let service = Service::start(HTTP_SERVICE, &[]);
    let watcher = watch(&a, "web").await;
    let check = json!({"http": format!("http://127.0.0.1:{}/health", service.port), "interval": "200ms", "timeout": "100ms", "fails": 1, "passes": 1});
    let body = json!({"endpoints": [], "ttl": 600, "check": check});
    assert_eq!(put(&a.http, "/srv/web/host1", body).await, 201);
    eventually("the instance is shown", || watcher.uris().len() == 1).await;

    service.set(500).await;
    eventually("withdrawn", || watcher.uris().is_empty()).await;
    service.set(200).await;
    // Its recovery would be the second change within the window: held
    // critical instead, which the catalogue logs when it decides.
    eventually("the recovery is held down", || {
        a.log().matches("instance critical").count() >= 2
    })
    .await;
    eventually_lookup(&a, "web", &[]).await;
    assert!(watcher.uris().is_empty(), "never shown again while held down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rarangi_register_declares_a_check() {
    let a = cat("development", "c1", &[]);
    let watcher = watch(&a, "cli").await;
    let mut service = Service::start(HTTP_SERVICE, &[]);
    let uri = format!("tcp://127.0.0.1:{}/cli", service.port);
    let mut register = Command::new(BIN)
        .args(["register", &uri, "--catalogue", &a.addr, "--check", "tcp"])
        .args(["--check-interval", "200ms", "--check-timeout", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("registered", || watcher.uris().contains(&uri)).await;
    assert!(lookup(&a.opts(), "cli").await.unwrap().contains(&uri));
    // The service goes away but `rarangi register` holds on: the check
    // withdraws it.
    service.child.kill().unwrap();
    service.child.wait().unwrap();
    eventually("withdrawn by its check", || watcher.uris().is_empty()).await;
    assert!(
        register.try_wait().unwrap().is_none(),
        "the registration is still held"
    );
    register.kill().unwrap();
    register.wait().unwrap();
}
