//! The little HTTP/1.1 the endpoint speaks: parse a request head from a bounded buffer, build
//! a response. Pure (no I/O) so every malformed input is a unit test. Request bodies are
//! never read: a request that announces one is answered and the connection closed.
use super::exporter::Format;

/// At most this many header lines (beyond the byte limit, a cheap guard against a head of
/// thousands of tiny lines).
const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    pub format: Format,
    /// The client wants the connection kept for another request (HTTP/1.1 default).
    pub keep_alive: bool,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// No end of head yet, and still under the limit.
    Incomplete,
    /// A complete head, `usize` bytes long (pipelined bytes after it stay in the buffer).
    Request(Request, usize),
    /// An answer to send before closing: 400, 405, 413, 431, 505.
    Reject(Status),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    HeadersTooLarge,
    ServiceUnavailable,
    InternalError,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Ok => "200",
            Status::BadRequest => "400",
            Status::NotFound => "404",
            Status::MethodNotAllowed => "405",
            Status::RequestTimeout => "408",
            Status::PayloadTooLarge => "413",
            Status::HeadersTooLarge => "431",
            Status::ServiceUnavailable => "503",
            Status::InternalError => "500",
            Status::VersionNotSupported => "505",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::PayloadTooLarge => "Payload Too Large",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::InternalError => "Internal Server Error",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// Parses the head at the start of `buf`, which holds at most `max_head` bytes.
pub fn parse(buf: &[u8], max_head: usize) -> Parse {
    let Some(end) = find_head_end(buf) else {
        return if buf.len() >= max_head {
            Parse::Reject(Status::HeadersTooLarge)
        } else {
            Parse::Incomplete
        };
    };
    if end > max_head {
        return Parse::Reject(Status::HeadersTooLarge);
    }
    match parse_head(&buf[..end]) {
        Ok(req) => Parse::Request(req, end),
        Err(status) => Parse::Reject(status),
    }
}

/// Index just past the blank line ending the head (CRLF CRLF, or bare LF LF as RFC 9112
/// allows recipients to accept).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_head(head: &[u8]) -> Result<Request, Status> {
    let head = std::str::from_utf8(head).map_err(|_| Status::BadRequest)?;
    let mut lines = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty());
    let request_line = lines.next().ok_or(Status::BadRequest)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if !is_token(method) || !target.starts_with('/') || target.bytes().any(|b| b <= b' ') {
        return Err(Status::BadRequest);
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err(Status::VersionNotSupported),
        _ => return Err(Status::BadRequest),
    };
    let mut format = Format::Text;
    let mut has_body = false;
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err(Status::HeadersTooLarge);
        }
        let (name, value) = line.split_once(':').ok_or(Status::BadRequest)?;
        if !is_token(name) {
            return Err(Status::BadRequest);
        }
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "connection" => {
                for option in value.split(',').map(str::trim) {
                    if option.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if option.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            "content-length" => {
                let len: u64 = value.parse().map_err(|_| Status::BadRequest)?;
                has_body |= len > 0;
            }
            "transfer-encoding" => has_body = true,
            "accept" if wants_openmetrics(value) => format = Format::OpenMetrics,
            _ => {}
        }
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Err(Status::MethodNotAllowed),
    };
    if has_body {
        return Err(Status::PayloadTooLarge);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Request {
        method,
        path: path.to_string(),
        format,
        keep_alive,
    })
}

/// Whether an Accept header lists OpenMetrics with a non-zero weight.
fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        media.eq_ignore_ascii_case("application/openmetrics-text")
            && params
                .filter_map(|p| p.strip_prefix("q="))
                .all(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
    })
}

/// A complete response; `body` is left out (but its length announced) for HEAD.
pub fn response(
    status: Status,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}Connection: {}\r\n\r\n",
        status.code(),
        status.reason(),
        body.len(),
        if status == Status::MethodNotAllowed {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        },
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

/// A short plain-text answer for an error status, closing the connection.
pub fn error_response(status: Status) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        true,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    fn request(head: &str) -> Request {
        match parse(head.as_bytes(), MAX) {
            Parse::Request(r, n) => {
                assert_eq!(n, head.len());
                r
            }
            other => panic!("{head:?}: {other:?}"),
        }
    }

    fn reject(head: &[u8]) -> Status {
        match parse(head, MAX) {
            Parse::Reject(s) => s,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn a_prometheus_scrape_parses() {
        let r = request(
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nUser-Agent: Prometheus/2.42.0\r\n\
             Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\
             Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 1\r\n\r\n",
        );
        assert_eq!(
            r,
            Request {
                method: Method::Get,
                path: "/metrics".into(),
                format: Format::OpenMetrics,
                keep_alive: true,
            }
        );
    }

    #[test]
    fn plain_clients_get_text_and_http10_closes() {
        let r = request("GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(r.path, "/metrics");
        assert_eq!(r.format, Format::Text);
        assert!(!r.keep_alive);
        let r = request("HEAD /metrics HTTP/1.1\nConnection: close\n\n");
        assert_eq!(r.method, Method::Head);
        assert!(!r.keep_alive);
        let r = request("GET / HTTP/1.1\r\nAccept: application/openmetrics-text;q=0\r\n\r\n");
        assert_eq!(r.format, Format::Text);
    }

    #[test]
    fn incomplete_until_the_blank_line() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", MAX),
            Parse::Incomplete
        );
        assert_eq!(parse(b"", MAX), Parse::Incomplete);
    }

    #[test]
    fn pipelined_bytes_are_not_consumed() {
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let Parse::Request(r, n) = parse(two, MAX) else {
            panic!()
        };
        assert_eq!((r.path.as_str(), n), ("/a", 19));
    }

    #[test]
    fn garbage_is_a_bad_request() {
        for head in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"hello\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET /metrics FTP/1.0\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(reject(head), Status::BadRequest, "{head:?}");
        }
    }

    #[test]
    fn other_methods_versions_and_bodies_are_refused() {
        assert_eq!(
            reject(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Status::MethodNotAllowed
        );
        assert_eq!(
            reject(b"DELETE / HTTP/1.1\r\n\r\n"),
            Status::MethodNotAllowed
        );
        assert_eq!(
            reject(b"GET / HTTP/2.0\r\n\r\n"),
            Status::VersionNotSupported
        );
        assert_eq!(
            reject(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Status::PayloadTooLarge
        );
        assert_eq!(
            reject(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status::PayloadTooLarge
        );
    }

    #[test]
    fn huge_heads_are_refused_at_the_limit() {
        let mut big = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(MAX, b'a');
        assert_eq!(parse(&big, MAX), Parse::Reject(Status::HeadersTooLarge));
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(reject(&many), Status::HeadersTooLarge);
    }

    #[test]
    fn responses_announce_length_and_connection() {
        let r = String::from_utf8(response(Status::Ok, "text/plain", b"abc", true, true)).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
        );
        let head = response(Status::Ok, "text/plain", b"abc", false, false);
        assert!(
            String::from_utf8(head)
                .unwrap()
                .ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n")
        );
        let e = String::from_utf8(error_response(Status::MethodNotAllowed)).unwrap();
        assert!(e.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{e}");
        assert!(e.contains("Allow: GET, HEAD\r\n"));
    }
}
