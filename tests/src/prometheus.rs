//! A real Prometheus server in a namespace, scraping netpost's `--prometheus` endpoint every
//! second, and plain HTTP requests made from inside a namespace (netpost enters `--netns`, so
//! its listening socket lives there).
use std::{
    fs,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::netns::{NetNs, unique_name};

/// A port nothing listens on in `ns` (the namespace is the test's own).
pub fn free_port(ns: &NetNs) -> u16 {
    ns.run(|| {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port()
    })
}

/// `GET path` on 127.0.0.1:`port` of `ns`: (status, body), or None when nothing answers.
pub fn http_get(ns: &NetNs, port: u16, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{}\r\n",
        accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default()
    );
    ns.run(move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(request.as_bytes()).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    })
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server in a namespace, scraping one target every second. Killed (by pid)
/// and its storage removed on drop.
pub struct Prometheus<'ns> {
    child: Child,
    dir: PathBuf,
    ns: &'ns NetNs,
    port: u16,
}

impl<'ns> Prometheus<'ns> {
    pub fn start(ns: &'ns NetNs, target: u16) -> Prometheus<'ns> {
        let dir = std::env::temp_dir().join(unique_name("npprom"));
        fs::create_dir_all(&dir).expect("create prometheus dir");
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: netpost\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = fs::File::create(dir.join("prometheus.log")).expect("log file");
        let port = free_port(ns);
        // `ip netns exec` execs the program in place: the child's pid is Prometheus's.
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect(
                "spawn prometheus (`cargo xtask test` installs it from Debian's prometheus package)",
            );
        let mut prom = Prometheus {
            child,
            dir,
            ns,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(prom.ns, port, "/-/ready", None).map(|(s, _)| s) != Some(200) {
            if let Ok(Some(status)) = prom.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prom.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                prom.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prom
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The series an instant query returns; panics when Prometheus refuses the query.
    pub fn result(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let (status, body) = http_get(self.ns, self.port, &path, None).expect("prometheus answers");
        assert_eq!(status, 200, "{promql}: {body}");
        let v: Value = serde_json::from_str(&body).expect("prometheus JSON");
        assert_eq!(v["status"], "success", "{promql}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of an instant query returning at most one series, None while it has none.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let result = self.result(promql);
        assert!(
            result.len() <= 1,
            "{promql} matched several series: {result:?}"
        );
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `promql` until it equals `want`; panics with the last value after 30 s.
    pub fn wait_for(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.query(promql);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} = {got:?}, expected {want}; prometheus log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
