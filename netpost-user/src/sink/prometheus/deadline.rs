//! A deadline for clients that do not take their response. hyper bounds the wait for a
//! request head, not a write that waits on the client, so a client that never reads would
//! hold its connection (and the response queued for it) forever. The clock starts at the
//! first write that has to wait and stops only when everything queued has reached the kernel
//! (hyper's flush): a client reading a byte at a time does not extend it.
use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Sleep, sleep},
};

#[derive(Debug)]
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits on the client.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            limit,
            timer: None,
        }
    }

    /// Called when the inner write is pending: arms the timer, fails once it has run out.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not take its response in time",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.waiting(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.waiting(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // hyper flushes the stream once its own buffer is empty: nothing waits any more.
        this.timer = None;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, duplex};

    use super::*;

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_write_at_the_deadline() {
        let (ours, mut theirs) = duplex(64);
        let mut io = WriteDeadline::new(ours, Duration::from_millis(200));
        let started = Instant::now();
        // 64 bytes fit; the rest waits on a reader that never comes.
        let err = io.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2));
        let mut got = [0u8; 64];
        theirs.read_exact(&mut got).await.unwrap();
    }

    #[tokio::test]
    async fn a_reader_that_takes_everything_is_never_cut_off() {
        let (ours, mut theirs) = duplex(64);
        // The whole exchange (8 x 150 ms) takes longer than the deadline; each wait is far
        // shorter (a loaded machine must not turn a scheduling delay into a cut-off).
        let mut io = WriteDeadline::new(ours, Duration::from_millis(700));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut chunk = [0u8; 64];
            for _ in 0..8 {
                // Each wait is shorter than the deadline, and each write is flushed.
                tokio::time::sleep(Duration::from_millis(150)).await;
                theirs.read_exact(&mut chunk).await.unwrap();
                all.extend_from_slice(&chunk);
            }
            all
        });
        for _ in 0..8 {
            io.write_all(&[1u8; 64]).await.unwrap();
            io.flush().await.unwrap();
        }
        assert_eq!(reader.await.unwrap().len(), 512);
    }

    #[tokio::test]
    async fn trickle_reading_does_not_extend_the_deadline() {
        let (ours, mut theirs) = duplex(16);
        let mut io = WriteDeadline::new(ours, Duration::from_millis(300));
        tokio::spawn(async move {
            let mut byte = [0u8; 1];
            while theirs.read_exact(&mut byte).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let started = Instant::now();
        let err = io.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
