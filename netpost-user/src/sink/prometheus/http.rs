//! The answer to one request hyper has parsed: `/metrics` in the format the client's
//! `Accept` asks for, 404 for other paths, 405 for other methods, 413 for a request body
//! (never read). Pure: a request head in, a response out.
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Bytes},
    header::{self, HeaderMap, HeaderValue},
};

use super::exporter::{Exporter, Format};

pub type Answer = Response<Full<Bytes>>;

/// The response to `request`.
pub fn answer<B: Body>(request: &Request<B>, exporter: &Exporter) -> Answer {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = closing(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if !request.body().is_end_stream() {
        return closing(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let keep_alive = wants_keep_alive(request);
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"404 Not Found: metrics are at /metrics\n"),
            keep_alive,
        );
    }
    let format = format_for(request.headers());
    match exporter.render(format) {
        Ok(body) => text(
            StatusCode::OK,
            format.content_type(),
            Bytes::from(body),
            keep_alive,
        ),
        Err(_) => closing(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The exposition format the client's `Accept` headers ask for.
pub fn format_for(headers: &HeaderMap) -> Format {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(wants_openmetrics);
    if openmetrics {
        Format::OpenMetrics
    } else {
        Format::Text
    }
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

/// HTTP/1.1 keeps the connection unless asked to close; HTTP/1.0 closes unless asked to keep
/// it. hyper decides the same way; this only lets a kept connection say so in the response.
fn wants_keep_alive<B>(request: &Request<B>) -> bool {
    let mut keep = request.version() == hyper::Version::HTTP_11;
    for value in request.headers().get_all(header::CONNECTION) {
        for option in value.to_str().unwrap_or("").split(',').map(str::trim) {
            if option.eq_ignore_ascii_case("close") {
                return false;
            }
            keep |= option.eq_ignore_ascii_case("keep-alive");
        }
    }
    keep
}

fn text(status: StatusCode, content_type: &'static str, body: Bytes, keep_alive: bool) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONNECTION,
        HeaderValue::from_static(if keep_alive { "keep-alive" } else { "close" }),
    );
    response
}

/// A short plain-text answer for an error status; the connection closes after it.
fn closing(status: StatusCode) -> Answer {
    text(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(error_text(status)),
        false,
    )
}

fn error_text(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    format!("{} {reason}\n", status.as_str())
}

/// The same answer as raw bytes, for a connection hyper does not (or no longer) serve: 503
/// to a connection refused at the cap, 408 after the request head's deadline.
pub fn raw_error(status: StatusCode) -> Vec<u8> {
    let body = error_text(status);
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.as_str(),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::{BodyExt as _, Empty};
    use tokio::sync::watch;

    use super::*;
    use crate::sink::prometheus::families::tests::sample_snapshot;

    fn exporter() -> Exporter {
        let (_tx, rx) = watch::channel(Arc::new(sample_snapshot()));
        Exporter::new(rx)
    }

    fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Empty::new()).unwrap()
    }

    fn body(a: Answer) -> String {
        let bytes = futures::executor::block_on(a.into_body().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_prometheus_scrape_gets_openmetrics() {
        let r = get(
            "/metrics",
            &[
                ("Host", "127.0.0.1:9464"),
                ("User-Agent", "Prometheus/2.42.0"),
                (
                    "Accept",
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                ("Accept-Encoding", "gzip"),
            ],
        );
        assert_eq!(format_for(r.headers()), Format::OpenMetrics);
        let a = answer(&r, &exporter());
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(
            a.headers()[header::CONTENT_TYPE],
            Format::OpenMetrics.content_type()
        );
        assert_eq!(a.headers()[header::CONNECTION], "keep-alive");
        assert!(body(a).ends_with("# EOF\n"));
    }

    #[test]
    fn plain_clients_get_text() {
        let r = get("/metrics?x=1", &[]);
        assert_eq!(format_for(r.headers()), Format::Text);
        let a = answer(&r, &exporter());
        assert_eq!(a.status(), StatusCode::OK);
        assert!(body(a).contains("# TYPE netpost_packets_total counter\n"));
        let zero = get("/", &[("Accept", "application/openmetrics-text;q=0")]);
        assert_eq!(format_for(zero.headers()), Format::Text);
        let second = get(
            "/",
            &[
                ("Accept", "text/plain"),
                ("Accept", "application/openmetrics-text"),
            ],
        );
        assert_eq!(format_for(second.headers()), Format::OpenMetrics);
    }

    #[test]
    fn other_paths_methods_and_bodies_are_refused() {
        let e = exporter();
        let a = answer(&get("/favicon.ico", &[]), &e);
        assert_eq!(a.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(a), "404 Not Found: metrics are at /metrics\n");
        let post = Request::post("/metrics")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let a = answer(&post, &e);
        assert_eq!(a.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(a.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(a.headers()[header::CONNECTION], "close");
        let with_body = Request::get("/metrics")
            .body(Full::new(Bytes::from_static(b"abc")))
            .unwrap();
        let a = answer(&with_body, &e);
        assert_eq!(a.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body(a), "413 Payload Too Large\n");
    }

    #[test]
    fn raw_errors_announce_length_and_close() {
        let r = String::from_utf8(raw_error(StatusCode::SERVICE_UNAVAILABLE)).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\nConnection: close\r\n\r\n503 Service Unavailable\n"
        );
    }

    #[test]
    fn connection_options_decide_keep_alive() {
        let mut r = get("/metrics", &[]);
        assert!(wants_keep_alive(&r));
        *r.version_mut() = hyper::Version::HTTP_10;
        assert!(!wants_keep_alive(&r));
        let mut r = get("/metrics", &[("Connection", "Keep-Alive")]);
        *r.version_mut() = hyper::Version::HTTP_10;
        assert!(wants_keep_alive(&r));
        let r = get("/metrics", &[("Connection", "keep-alive, close")]);
        assert!(!wants_keep_alive(&r));
    }
}
