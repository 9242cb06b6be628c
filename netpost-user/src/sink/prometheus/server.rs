//! Serving: one dedicated thread with its own single-threaded tokio runtime, so a scrape never
//! competes with collection for the collector's runtime; each snapshot is read from the watch
//! channel at scrape time. hyper speaks HTTP/1 on every connection and bounds the request
//! head (size, header count, and the time it may take, which also closes idle keep-alive
//! connections). This module adds what hyper leaves to its user: a bounded number of
//! connections where the one idle the longest makes room for a newcomer (`slots`), a deadline
//! for clients that do not take their response (`deadline`), a 408 for a request head cut off
//! at its deadline, and the count of every answer, hyper's own included.
use std::{
    convert::Infallible,
    future::ready,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{
    Request, StatusCode,
    body::{Body, Bytes, Frame, Incoming, SizeHint},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{oneshot, watch},
    time::timeout,
};

use super::{
    deadline::WriteDeadline,
    exporter::Exporter,
    http,
    slots::{Admission, SlotId, Slots},
};
use crate::model::Snapshot;

/// hyper refuses a smaller connection buffer.
const MIN_BUF: usize = 8192;
/// Connections the kernel queues before they are accepted: more than std's 128, so a burst
/// of hostile connections does not overflow it and make a scraper's SYN wait for a resend.
const BACKLOG: u32 = 1024;
/// At most this many header lines (beyond the byte limit, a cheap guard against a head of
/// thousands of tiny lines).
const MAX_HEADERS: usize = 64;

/// What one client may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once. A newcomer over the cap closes the connection idle the
    /// longest (waiting for a request head or for its client to take a response); it is
    /// answered 503 only when none is idle.
    pub max_connections: usize,
    /// Longest request head (request line + headers).
    pub max_head_bytes: usize,
    /// Time for a complete request head to arrive, counted from the connection's start or
    /// the end of the previous response (so it also closes idle keep-alive connections).
    pub request_timeout: Duration,
    /// Time a response may wait on a client that does not take it.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // Prometheus needs one per scraper (HA pairs: two). Since idle connections make
            // room for new ones, the cap bounds memory; a larger one only makes a flood of
            // new connections need more of them to push out a scraper before its request.
            max_connections: 64,
            max_head_bytes: 8 * 1024,
            // Prometheus sends its request at once; anything slower is broken or hostile.
            request_timeout: Duration::from_secs(5),
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _context = runtime.enter();
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)?
    };
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(Exporter::new(latest), limits));
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("netpost-metrics".into())
        .spawn(move || {
            // Dropping the runtime at the end drops every connection task.
            runtime.block_on(accept_loop(listener, shared, shutdown_rx));
        })?;
    Ok(MetricsServer {
        addr,
        shutdown: Some(shutdown_tx),
        thread: Some(thread),
    })
}

/// What the accept loop and every connection share.
#[derive(Debug)]
struct Shared {
    exporter: Exporter,
    /// Each slot holds the sender whose drop closes its connection.
    slots: Mutex<Slots<oneshot::Sender<()>>>,
    http: http1::Builder,
    limits: Limits,
}

impl Shared {
    fn new(exporter: Exporter, limits: Limits) -> Shared {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.request_timeout)
            .max_header_size(limits.max_head_bytes)
            .max_buf_size(limits.max_head_bytes.max(MIN_BUF))
            .max_headers(MAX_HEADERS)
            // As the endpoint always wrote them (`Content-Type`, not `content-type`).
            .title_case_headers(true);
        Shared {
            exporter,
            slots: Mutex::new(Slots::new(limits.max_connections)),
            http,
            limits,
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots<oneshot::Sender<()>>> {
        // Nothing panics while holding the lock; a poisoned table is still consistent.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
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
        let (close, closed) = oneshot::channel();
        let admission = shared.slots().admit(Instant::now(), close);
        let id = match admission {
            Admission::Admitted(id) => id,
            Admission::Evicted { id, evicted } => {
                // Dropping the sender ends that connection's task, which closes it.
                drop(evicted);
                shared.exporter.evicted();
                id
            }
            Admission::Refused(_) => {
                shared.exporter.rejected();
                // Never wait on a client we refuse: one non-blocking write, then close.
                let _ = stream.try_write(&http::raw_error(StatusCode::SERVICE_UNAVAILABLE));
                continue;
            }
        };
        let for_task = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = SlotGuard(&for_task, id);
            tokio::select! {
                _ = connection(stream, id, &for_task) => {}
                _ = closed => {}
            }
        });
        // Let the new connection read the request it may already hold before the next
        // accept: a burst of connections behind it must not evict it before it had a look.
        tokio::task::yield_now().await;
    }
}

/// Frees the connection's slot however its task ends.
struct SlotGuard<'a>(&'a Shared, SlotId);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.slots().release(self.1);
    }
}

/// Serves requests on one connection until the client closes, asks to close, errs, or
/// runs out of time.
async fn connection(stream: TcpStream, id: SlotId, shared: &Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteDeadline::new(stream, shared.limits.write_timeout));
    let for_requests = Arc::clone(shared);
    let service = service_fn(move |request: Request<Incoming>| {
        for_requests.slots().busy(id);
        let response = http::answer(&request, &for_requests.exporter);
        for_requests.exporter.answered(code(response.status()));
        let handover = Some((Arc::clone(&for_requests), id));
        ready(Ok::<_, Infallible>(
            response.map(|body| Handover { body, handover }),
        ))
    });
    let mut conn = shared.http.serve_connection(io, service);
    let Err(error) = (&mut conn).await else {
        return;
    };
    // hyper answered a malformed head itself (400, 431) and closes; or the head's deadline
    // passed, where a partial request gets a 408 and an idle connection just a close.
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    if error.is_timeout() {
        if parts.read_buf.is_empty() {
            return;
        }
        shared.exporter.answered("408");
        let response = http::raw_error(StatusCode::REQUEST_TIMEOUT);
        if io.write_all(&response).await.is_err() {
            return;
        }
    } else if error.is_parse_too_large() {
        shared.exporter.answered("431");
    } else if error.is_parse() && !error.is_parse_version_h2() {
        shared.exporter.answered("400");
    } else {
        return;
    }
    // Let the answer reach the client before the close (unread input would turn the close
    // into a reset that can discard it).
    let _ = io.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = timeout(Duration::from_millis(200), async {
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The `code` label of a status the endpoint sends.
fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        404 => "404",
        405 => "405",
        413 => "413",
        _ => "500",
    }
}

/// A response body that marks its connection idle once hyper has taken it: from then on
/// the connection waits on its client (to take the response, or to send another request).
struct Handover {
    body: Full<Bytes>,
    handover: Option<(Arc<Shared>, SlotId)>,
}

impl Handover {
    fn handed_over(&mut self) {
        if let Some((shared, id)) = self.handover.take() {
            shared.slots().idle(id, Instant::now());
        }
    }
}

impl Body for Handover {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if this.body.is_end_stream() {
            this.handed_over();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Handover {
    // HEAD responses are dropped without being polled.
    fn drop(&mut self) {
        self.handed_over();
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
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
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
        assert!(missing.starts_with("HTTP/1.0 404 "), "{missing}");
        let head = exchange(&server, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
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
        assert!(exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 200"));
    }

    #[test]
    fn a_slow_client_does_not_stop_another_and_is_cut_off_at_the_deadline() {
        let (server, _tx) = start(fast());
        let mut slow = connect(&server);
        slow.write_all(b"GET /met").unwrap();
        let started = Instant::now();
        let other = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(other.starts_with("HTTP/1.0 200"), "{other}");
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
            if out.starts_with(b"HTTP/1.0 200") {
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

    /// The value of an unlabelled sample in a scrape of `server`.
    fn sample(server: &MetricsServer, name: &str) -> f64 {
        let text = exchange(server, b"GET /metrics HTTP/1.0\r\n\r\n");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn over_the_cap_a_newcomer_closes_the_connection_idle_the_longest() {
        let (server, _tx) = start(Limits {
            max_connections: 2,
            request_timeout: Duration::from_secs(5),
            ..fast()
        });
        let mut a = connect(&server);
        let mut b = connect(&server);
        // Both are accepted (b gets an answer, so a was accepted before it). a has waited
        // for its request since it connected, b only since its answer.
        b.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_response(&mut b).0.starts_with("HTTP/1.1 404"));
        let mut c = connect(&server);
        assert!(
            closed_within(&mut a, Duration::from_secs(2)),
            "a not evicted"
        );
        c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let (head, body) = read_response(&mut c);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains("\nnetpost_exporter_connections_evicted_total 1\n"),
            "{body}"
        );
        assert!(body.contains("\nnetpost_exporter_connections_rejected_total 0\n"));
        // Now b has been idle the longest: the scrape below takes its slot.
        assert_eq!(
            sample(&server, "netpost_exporter_connections_evicted_total"),
            2.0
        );
        assert!(
            closed_within(&mut b, Duration::from_secs(2)),
            "b not evicted"
        );
        // c, served last, still is.
        c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_response(&mut c).0.starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn hundreds_of_idle_and_slow_connections_do_not_keep_a_scrape_out() {
        let (server, _tx) = start(Limits {
            max_connections: 8,
            request_timeout: Duration::from_secs(30),
            ..fast()
        });
        let mut hostile = Vec::new();
        for i in 0..300 {
            let mut s = connect(&server);
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
            }
            hostile.push(s);
        }
        for s in hostile.iter_mut().step_by(2) {
            let _ = s.write_all(b"a");
        }
        let started = Instant::now();
        let text = exchange(
            &server,
            b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(sample(&server, "netpost_exporter_connections_evicted_total") >= 292.0);
    }

    #[test]
    fn every_status_is_counted_hypers_own_answers_included() {
        let (server, _tx) = start(fast());
        exchange(&server, b"hello\r\n\r\n");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        huge.resize(4096, b'a');
        exchange(&server, &huge);
        exchange(&server, b"GET /metrics HTTP/1.1\r\nX-Slow: ");
        exchange(&server, b"DELETE /metrics HTTP/1.1\r\n\r\n");
        exchange(
            &server,
            b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        exchange(&server, b"GET /nothing HTTP/1.0\r\n\r\n");
        let text = exchange(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
        for code in ["400", "404", "405", "408", "413", "431"] {
            assert!(
                text.contains(&format!(
                    "\nnetpost_exporter_requests_total{{code=\"{code}\"}} 1\n"
                )),
                "{code}: {text}"
            );
        }
    }

    #[test]
    fn malformed_heads_get_400_and_a_close() {
        let (server, _tx) = start(fast());
        for head in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"hello\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET /metrics FTP/1.0\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
        ] {
            let answer = exchange(&server, head);
            assert!(
                answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{head:?}: {answer}"
            );
            assert!(answer.contains("Connection: close"), "{answer}");
        }
        // More header lines than allowed, in fewer bytes than allowed.
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(many.len() < fast().max_head_bytes);
        let answer = exchange(&server, &many);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        // HTTP/2's connection preface: no HTTP/1 answer, a close.
        let h2 = exchange(&server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(h2, "");
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
