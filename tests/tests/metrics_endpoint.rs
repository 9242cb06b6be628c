//! Hostile clients against netpost's `--prometheus` endpoint, run by the real binary in a
//! namespace of its own: hundreds of idle connections and slowloris connections (a request
//! line sent, the head never finished, a byte trickled now and then), reconnected as soon as
//! netpost closes them, never keep a normal scrape out; and connections that wait too long
//! for their request head are closed at the deadline (docs/metrics.md, "What a client can
//! cost netpost").
use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use netpost_tests::{
    netns::{NetNs, VethPair},
    netpost::Netpost,
    require_root,
};

/// docs/metrics.md: the time a request head may take, also the idle keep-alive limit.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
const IDLE: usize = 150;
const SLOW: usize = 150;
/// As Prometheus asks.
const SCRAPE: &[u8] =
    b"GET /metrics HTTP/1.1\r\nHost: netpost\r\nUser-Agent: Prometheus/2.42.0\r\n\
    Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\
    Connection: close\r\n\r\n";

/// A port nothing listens on in `ns`.
fn free_port(ns: &NetNs) -> u16 {
    ns.run(|| {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port()
    })
}

fn connect(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to netpost")
}

/// One scrape on a new connection: the whole answer, and how long it took from connect.
fn scrape(port: u16) -> (String, Duration) {
    let started = Instant::now();
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(SCRAPE).expect("send the scrape");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// True once netpost has closed `s` (EOF or reset) or answered on it, which it does only to
/// close it (a 408) on connections that never finish a request; never blocks.
fn closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let gone = match s.peek(&mut byte) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    gone
}

/// Reads one whole response (its body by Content-Length) and returns its status line.
fn read_response(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("a response body");
    head.lines().next().unwrap().to_string()
}

/// The value of an unlabelled sample in a text scrape.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// netpost serving /metrics in a fresh namespace, its first snapshot taken.
fn start() -> (VethPair, Netpost, u16) {
    let pair = VethPair::new();
    let port = free_port(&pair.ns_b);
    let netpost = Netpost::start(
        &pair.ns_b.name,
        &[&pair.b.ifname],
        &["--prometheus", &format!("127.0.0.1:{port}")],
    );
    let ready = pair.ns_b.run(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if scrape(port)
                .0
                .contains("netpost_snapshot_timestamp_seconds")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    assert!(ready, "no snapshot served: {}", netpost.stderr());
    (pair, netpost, port)
}

/// Holds `IDLE` connections that never send anything and `SLOW` ones that sent a request
/// line and trickle a header byte every 100 ms, and reopens each one netpost closes, until
/// `stop`, counting every connection it opens in `opened`.
fn hostile_client(port: u16, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>) {
    let open = |slow: bool| {
        let mut s = connect(port);
        if slow {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: netpost\r\nX-Slow: ");
        }
        opened.fetch_add(1, Ordering::Relaxed);
        (s, slow)
    };
    let mut conns: Vec<(TcpStream, bool)> = (0..IDLE + SLOW).map(|i| open(i >= IDLE)).collect();
    while !stop.load(Ordering::Relaxed) {
        for conn in conns.iter_mut() {
            let alive = !closed(&conn.0) && (!conn.1 || conn.0.write_all(b"a").is_ok());
            if !alive {
                *conn = open(conn.1);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hundreds_of_idle_and_slow_connections_never_keep_a_scrape_out() {
    require_root();
    let (pair, netpost, port) = start();
    let (scrapes, opened) = pair.ns_b.run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        // Threads started here live in the namespace too.
        let attacker = {
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            std::thread::spawn(move || hostile_client(port, stop, opened))
        };
        while opened.load(Ordering::Relaxed) < IDLE + SLOW {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Longer than the head deadline: the hostile connections' deadlines pass, and they
        // come back, while a scraper keeps asking.
        let mut scrapes = Vec::new();
        let until = Instant::now() + netpost_tests::slack(HEAD_DEADLINE + Duration::from_secs(2));
        while Instant::now() < until {
            scrapes.push(scrape(port));
            std::thread::sleep(Duration::from_millis(250));
        }
        stop.store(true, Ordering::Relaxed);
        attacker.join().expect("hostile client");
        (scrapes, opened.load(Ordering::Relaxed))
    });
    assert!(scrapes.len() >= 20, "{} scrapes", scrapes.len());
    for (text, took) in &scrapes {
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("# EOF\n"),
            "a scrape failed: {text}"
        );
        assert!(*took < Duration::from_secs(1), "a scrape took {took:?}");
    }
    let slowest = scrapes.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!(
        "{} scrapes, slowest {slowest:?}; the hostile client opened {opened} connections",
        scrapes.len(),
    );
    // netpost made room by closing hostile connections, never by refusing the scraper.
    let last = &scrapes.last().unwrap().0;
    let evicted = sample(last, "netpost_exporter_connections_evicted_total");
    assert!(evicted >= (IDLE + SLOW - 64) as f64, "{evicted} evicted");
    assert_eq!(
        sample(last, "netpost_exporter_connections_rejected_total"),
        0.0
    );
    drop(netpost);
}

#[test]
fn connections_waiting_for_a_request_head_are_closed_at_the_deadline() {
    require_root();
    let (pair, netpost, port) = start();
    let closed_after = pair.ns_b.run(move || {
        let started = Instant::now();
        let idle = connect(port);
        let mut slow = connect(port);
        slow.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            .unwrap();
        // A keep-alive connection after one answer waits for its next request head.
        let mut kept = connect(port);
        kept.write_all(b"GET /nothing HTTP/1.1\r\n\r\n").unwrap();
        kept.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(read_response(&mut kept), "HTTP/1.1 404 Not Found");
        let mut when = [None; 3];
        let mut slow_answer = String::new();
        while when.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(15) {
            // Trickling does not extend the deadline.
            if when[1].is_none() && slow.write_all(b"a").is_err() {
                when[1] = Some(started.elapsed());
            }
            for (i, s) in [&idle, &slow, &kept].into_iter().enumerate() {
                if when[i].is_none() && closed(s) {
                    when[i] = Some(started.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = slow.read_to_string(&mut slow_answer);
        (when, slow_answer)
    });
    let (when, slow_answer) = closed_after;
    for (what, at) in ["idle", "slow", "kept alive"].iter().zip(when) {
        let at = at.unwrap_or_else(|| panic!("the {what} connection was never closed"));
        assert!(
            at >= HEAD_DEADLINE - Duration::from_millis(200)
                && at < HEAD_DEADLINE + Duration::from_secs(2),
            "the {what} connection was closed after {at:?}"
        );
    }
    assert!(
        slow_answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{slow_answer}"
    );
    drop(netpost);
}
