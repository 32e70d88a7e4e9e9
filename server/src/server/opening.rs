//! The opening of a connection, bounded: until a client has sent enough to say what it speaks — the
//! HTTP/2 preface (24 bytes) or an HTTP/1 request line — its reads fail once the deadline has
//! passed, so that a client which connects (or finishes a TLS handshake) and then trickles or says
//! nothing is let go. After the opening, hyper's own timers (header reads, HTTP/2 keep-alive) apply.
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of the HTTP/2 connection preface.
const PREFACE: usize = 24;

/// An I/O whose opening must be complete by a deadline.
pub struct Opening<IO> {
    inner: IO,
    /// `None` once the opening is complete.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    seen: usize,
}

impl<IO> Opening<IO> {
    /// `inner`, whose opening must be complete within `limit`.
    pub fn new(inner: IO, limit: std::time::Duration) -> Opening<IO> {
        Opening { inner, deadline: Some(Box::pin(tokio::time::sleep(limit))), seen: 0 }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Opening<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not open its connection in time",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.deadline.is_some() {
            let new = &buf.filled()[before..];
            let line = new.contains(&b'\n');
            self.seen += new.len();
            if line || self.seen >= PREFACE {
                self.deadline = None;
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Opening<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_client_that_stops_inside_the_preface_is_let_go_and_one_that_opens_is_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut opening = Opening::new(server, std::time::Duration::from_millis(200));
        let mut client = client;
        client.write_all(b"P").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(opening.read(&mut buf).await.unwrap(), 1);
        let e = opening.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut opening = Opening::new(server, std::time::Duration::from_millis(200));
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(opening.read(&mut buf).await.unwrap(), 16);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        assert_eq!(opening.read(&mut buf).await.unwrap(), 11, "past the opening, hyper's timers apply");
    }
}
