//! Serving: one dedicated thread with its own single-threaded tokio runtime, so a scrape never
//! competes with collection for the collector's runtime. Each snapshot is read from the watch
//! channel at scrape time. A client can cost at most one connection slot (of
//! `max_connections`), `max_head_bytes` of buffer and `request_timeout` + `write_timeout` of
//! time per request: slow senders (slowloris), slow readers, idle keep-alives and garbage are
//! cut off, and over the cap new connections get a 503 without being read.
use std::{io, net::SocketAddr, sync::Arc, thread::JoinHandle, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, oneshot, watch},
    time::timeout,
};

use super::{
    exporter::Exporter,
    http::{self, Method, Parse, Status},
};
use crate::model::Snapshot;

/// What one client may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Longest request head (request line + headers).
    pub max_head_bytes: usize,
    /// Time for a complete request head to arrive, counted from the connection's start or
    /// the end of the previous response (so it also closes idle keep-alive connections).
    pub request_timeout: Duration,
    /// Time for the client to take a whole response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // Prometheus needs one per scraper (HA pairs: two); room for people with curl.
            max_connections: 16,
            max_head_bytes: 8 * 1024,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The running metrics endpoint; stops (and closes every connection) when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    /// The address actually bound (the port is chosen when asked for port 0).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds `addr` on the calling thread (in its network namespace, with errors reported
/// here), then serves from a new thread.
pub fn serve_with(
    addr: SocketAddr,
    latest: watch::Receiver<Arc<Snapshot>>,
    limits: Limits,
) -> io::Result<MetricsServer> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(std_listener)?
    };
    let exporter = Arc::new(Exporter::new(latest));
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("netpost-metrics".into())
        .spawn(move || {
            // Dropping the runtime at the end drops every connection task.
            runtime.block_on(accept_loop(listener, exporter, limits, shutdown_rx));
        })?;
    Ok(MetricsServer {
        addr,
        shutdown: Some(shutdown_tx),
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    limits: Limits,
    mut shutdown: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                let exporter = Arc::clone(&exporter);
                tokio::spawn(async move {
                    let _slot = slot;
                    connection(stream, &exporter, limits).await;
                });
            }
            Err(_) => {
                exporter.rejected();
                // Never wait on a client we refuse: one non-blocking write, then close.
                let _ = stream.try_write(&http::error_response(Status::ServiceUnavailable));
            }
        }
    }
}

/// Serves requests on one connection until the client closes, asks to close, errs, or
/// runs out of time.
async fn connection(mut stream: TcpStream, exporter: &Exporter, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    loop {
        let parsed = timeout(
            limits.request_timeout,
            read_head(&mut stream, &mut buf, limits.max_head_bytes),
        )
        .await;
        let (request, used) = match parsed {
            Ok(Ok(Some(Parse::Request(request, used)))) => (request, used),
            Ok(Ok(Some(Parse::Reject(status)))) => {
                return reject(&mut stream, exporter, status, limits).await;
            }
            // Timed out: a partial request gets a 408; an idle connection is just closed.
            Err(_) if !buf.is_empty() => {
                return reject(&mut stream, exporter, Status::RequestTimeout, limits).await;
            }
            // Closed by the client, an I/O error, or idle.
            _ => return,
        };
        buf.drain(..used);
        let (status, response) = answer(&request, exporter);
        exporter.answered(status.code());
        let written = timeout(limits.write_timeout, stream.write_all(&response)).await;
        let keep = request.keep_alive && status != Status::InternalError;
        if !matches!(written, Ok(Ok(()))) || !keep {
            return;
        }
    }
}

/// Reads until `buf` holds a complete head, a rejection, or the client closes (None).
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max_head: usize,
) -> io::Result<Option<Parse>> {
    loop {
        match http::parse(buf, max_head) {
            Parse::Incomplete => {}
            done => return Ok(Some(done)),
        }
        // Never buffer more than the limit, whatever the client sends.
        let mut chunk = [0u8; 1024];
        let room = (max_head - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn reject(stream: &mut TcpStream, exporter: &Exporter, status: Status, limits: Limits) {
    exporter.answered(status.code());
    let response = http::error_response(status);
    if timeout(limits.write_timeout, stream.write_all(&response))
        .await
        .is_ok()
    {
        // Let the answer reach the client before the close (unread input would turn the
        // close into a reset that can discard it).
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let _ = timeout(Duration::from_millis(200), async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

fn answer(request: &http::Request, exporter: &Exporter) -> (Status, Vec<u8>) {
    let with_body = request.method == Method::Get;
    if request.path != "/metrics" {
        let body = b"404 Not Found: metrics are at /metrics\n";
        let response = http::response(
            Status::NotFound,
            "text/plain; charset=utf-8",
            body,
            with_body,
            request.keep_alive,
        );
        return (Status::NotFound, response);
    }
    match exporter.render(request.format) {
        Ok(text) => (
            Status::Ok,
            http::response(
                Status::Ok,
                request.format.content_type(),
                text.as_bytes(),
                with_body,
                request.keep_alive,
            ),
        ),
        Err(_) => (
            Status::InternalError,
            http::error_response(Status::InternalError),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpStream as StdStream,
        time::Instant,
    };

    use super::*;
    use crate::sink::prometheus::families::tests::sample_snapshot;

    fn start(limits: Limits) -> (MetricsServer, watch::Sender<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(sample_snapshot()));
        let server = serve_with(SocketAddr::from(([127, 0, 0, 1], 0)), rx, limits).unwrap();
        (server, tx)
    }

    fn fast() -> Limits {
        Limits {
            max_connections: 4,
            max_head_bytes: 1024,
            request_timeout: Duration::from_millis(500),
            write_timeout: Duration::from_millis(500),
        }
    }

    fn connect(server: &MetricsServer) -> StdStream {
        let s = StdStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Reads one response: (status line and headers, body per Content-Length).
    fn read_response(s: &mut StdStream) -> (String, Vec<u8>) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        (head, body)
    }

    /// Sends `request` on a new connection and reads everything until the server closes.
    fn exchange(server: &MetricsServer, request: &[u8]) -> String {
        let mut s = connect(server);
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// True when the server closed the connection (EOF or reset) within `within`.
    fn closed_within(s: &mut StdStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut sink = [0u8; 4096];
        loop {
            match s.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    #[test]
    fn serves_metrics_in_both_formats_404_and_head() {
        let (server, _tx) = start(Limits::default());
        let text = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(text.contains(
            "\nnetpost_packets_total{interface=\"veth0\",hook=\"xdp\",proto=\"udp\"} 7\n"
        ));
        let om = exchange(
            &server,
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n",
        );
        assert!(om.contains("Content-Type: application/openmetrics-text; version=1.0.0"));
        assert!(om.ends_with("# EOF\n"), "{om}");
        let missing = exchange(&server, b"GET /favicon.ico HTTP/1.0\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let head = exchange(&server, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    }

    #[test]
    fn keep_alive_serves_requests_one_after_another_and_pipelined() {
        let (server, _tx) = start(Limits::default());
        let mut s = connect(&server);
        for _ in 0..3 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (head, body) = read_response(&mut s);
            assert!(head.contains("Connection: keep-alive"), "{head}");
            assert!(
                String::from_utf8(body)
                    .unwrap()
                    .contains("netpost_build_info")
            );
        }
        s.write_all(b"GET /a HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut s).0.starts_with("HTTP/1.1 404"));
        assert!(read_response(&mut s).0.starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn garbage_methods_and_huge_heads_get_an_error_and_a_close() {
        let (server, _tx) = start(fast());
        let bad = exchange(
            &server,
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        );
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
        assert!(bad.contains("Connection: close"));
        let post = exchange(
            &server,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        // Headers past the limit, never terminated: refused once the limit is reached.
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        huge.resize(64 * 1024, b'a');
        let big = exchange(&server, &huge);
        assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
        // Still serving.
        assert!(exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn a_slow_client_does_not_stop_another_and_is_cut_off_at_the_deadline() {
        let (server, _tx) = start(fast());
        let mut slow = connect(&server);
        slow.write_all(b"GET /met").unwrap();
        let started = Instant::now();
        let other = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(other.starts_with("HTTP/1.1 200"), "{other}");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "served at once"
        );
        // Trickling bytes (slowloris) does not extend the deadline.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(100));
            let _ = slow.write_all(b"r");
        }
        let mut answer = Vec::new();
        let _ = slow.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "cut off after {took:?}");
    }

    #[test]
    fn idle_connections_are_closed() {
        let (server, _tx) = start(fast());
        let mut idle = connect(&server);
        assert!(closed_within(&mut idle, Duration::from_secs(3)));
    }

    #[test]
    fn a_client_that_never_reads_is_cut_off_and_frees_its_slot() {
        // A request deadline longer than the test waits: only the write deadline can free
        // the slot.
        let (server, _tx) = start(Limits {
            max_connections: 1,
            request_timeout: Duration::from_secs(30),
            ..fast()
        });
        let mut reader = connect(&server);
        // 50 MB of responses the client never reads: more than any socket buffer holds.
        reader
            .write_all(&b"GET /metrics HTTP/1.1\r\n\r\n".repeat(2000))
            .unwrap();
        let started = Instant::now();
        loop {
            let mut s = connect(&server);
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            if out.starts_with(b"HTTP/1.1 200") {
                break;
            }
            assert!(out.starts_with(b"HTTP/1.1 503") || out.is_empty());
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "slot never freed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(reader);
    }

    #[test]
    fn connections_over_the_cap_get_503_and_the_cap_recovers() {
        let (server, _tx) = start(Limits {
            max_connections: 2,
            request_timeout: Duration::from_secs(5),
            ..fast()
        });
        let a = connect(&server);
        let mut b = connect(&server);
        // Both are accepted (b gets an answer, so a was accepted before it).
        b.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_response(&mut b).0.starts_with("HTTP/1.1 404"));
        let mut c = connect(&server);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 503 Service Unavailable"), "{out}");
        drop(a);
        let started = Instant::now();
        let served = loop {
            let text = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
            if text.starts_with("HTTP/1.1 200") || started.elapsed() > Duration::from_secs(3) {
                break text;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            served.contains("\nnetpost_exporter_connections_rejected_total "),
            "{served}"
        );
        assert!(!served.contains("\nnetpost_exporter_connections_rejected_total 0\n"));
        drop(b);
    }

    #[test]
    fn the_latest_snapshot_is_served_and_drop_stops_the_server() {
        let (server, tx) = start(Limits::default());
        let mut snap = sample_snapshot();
        snap.interfaces
            .get_mut("veth0")
            .unwrap()
            .xdp
            .by_proto
            .udp
            .packets = 4242;
        tx.send_replace(Arc::new(snap));
        let text = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(
            text.contains("hook=\"xdp\",proto=\"udp\"} 4242\n"),
            "{text}"
        );
        let addr = server.addr;
        drop(server);
        assert!(StdStream::connect(addr).is_err(), "still listening");
    }

    #[test]
    fn a_taken_port_is_an_error_at_serve_time() {
        let (server, _tx) = start(Limits::default());
        let (_tx2, rx) = watch::channel(Arc::new(Snapshot::default()));
        assert!(serve_with(server.addr, rx, Limits::default()).is_err());
    }
}
