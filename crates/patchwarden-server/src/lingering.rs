//! How a connection ends: a lingering close below TLS. When the server is done with a connection
//! (an answer with `Connection: close`, a refused over-limit body, a timeout, an error), the client
//! may still be sending — a 200 MB upload answered 413 at once is the common case. Closing a socket
//! with unread bytes makes the kernel send a reset, and the client's kernel then throws away the
//! answer before the client reads it. So the socket is not closed when hyper lets go of it: its
//! write side is shut (FIN, after TLS's close_notify when hyper got that far), then what the client
//! still sends is read as raw TCP bytes into one small buffer and dropped — never decrypted, never
//! kept — until the client closes, falls silent for [`LINGER_IDLE`] or [`LINGER_TOTAL`] has
//! passed. The connection keeps its permit (`--max-connections`) while it lingers, so lingering
//! connections count toward the cap and cannot pile up.
//!
//! What this module does not do: decide when a connection ends (hyper and `body_guard` do) or
//! anything at the HTTP level.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// Longest a closing connection is read and dropped (nginx's `lingering_time` is 30 s too).
pub const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// Longest a closing connection may stay silent before it is closed (nginx: 5 s).
pub const LINGER_IDLE: Duration = Duration::from_secs(5);
/// The buffer a lingering connection reads into (reused for every read, the only memory it holds).
const LINGER_BUFFER: usize = 16 << 10;

/// A client's TCP stream, with its connection permit: read and written as the stream itself; when
/// dropped it lingers (see the module head) before it closes and gives the permit back.
pub struct LingeringStream {
    tcp: Option<TcpStream>,
    permit: Option<OwnedSemaphorePermit>,
}

impl LingeringStream {
    pub fn new(tcp: TcpStream, permit: OwnedSemaphorePermit) -> LingeringStream {
        LingeringStream {
            tcp: Some(tcp),
            permit: Some(permit),
        }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.tcp
                .as_mut()
                .expect("the stream is taken only when dropped"),
        )
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let (Some(tcp), permit) = (self.tcp.take(), self.permit.take()) else {
            return;
        };
        // Outside a runtime (the server is stopping) the socket simply closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(tcp, permit, LINGER_TOTAL, LINGER_IDLE));
        }
    }
}

/// Shuts the write side, then reads and drops what the client still sends until it closes, stays
/// silent for `idle`, or `total` has passed; the socket closes (and `permit` is given back) after.
async fn linger(
    mut tcp: TcpStream,
    permit: Option<OwnedSemaphorePermit>,
    total: Duration,
    idle: Duration,
) {
    let _permit = permit;
    // Already shut when hyper closed the connection cleanly; an error here changes nothing.
    let _ = tcp.shutdown().await;
    let deadline = tokio::time::Instant::now() + total;
    let mut buffer = vec![0u8; LINGER_BUFFER];
    loop {
        let until = deadline.min(tokio::time::Instant::now() + idle);
        match tokio::time::timeout_at(until, tcp.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => continue,
            // Closed by the client, an error (a reset), silence or the end of the lingering time.
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::net::TcpListener;
    use tokio::sync::Semaphore;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    /// A client still sending when the server drops its side reads the whole answer and then the
    /// end of the stream — not a reset — and the permit comes back only once the client closed.
    #[tokio::test]
    async fn a_client_still_sending_reads_the_answer_then_the_end() {
        let (mut client, server) = pair().await;
        let permits = Arc::new(Semaphore::new(1));
        let mut stream = LingeringStream::new(server, permits.clone().try_acquire_owned().unwrap());
        // 8 MiB unread on the server's side: more than both sockets' buffers hold.
        let sender = tokio::spawn(async move {
            let chunk = vec![b'a'; 1 << 20];
            for _ in 0..8 {
                client.write_all(&chunk).await?;
            }
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await?;
            Ok::<_, io::Error>(answer)
        });
        stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
            .await
            .unwrap();
        drop(stream);
        let answer = sender.await.unwrap().expect("no reset");
        assert_eq!(answer, b"HTTP/1.1 413 Payload Too Large\r\n\r\n");
        // The client has closed: the lingering task ends and gives the permit back.
        let permit = tokio::time::timeout(Duration::from_secs(30), permits.acquire()).await;
        assert!(permit.is_ok(), "the permit was not given back");
    }

    /// A client that keeps the connection open silently is closed at the idle time, and one that
    /// keeps sending (a byte a second) at the lingering time. The clock is paused: tokio advances
    /// it whenever every task waits on a timer.
    #[tokio::test]
    async fn lingering_ends_at_its_limits() {
        tokio::time::pause();
        let (client, server) = pair().await;
        let start = tokio::time::Instant::now();
        linger(server, None, LINGER_TOTAL, LINGER_IDLE).await;
        // tokio's timers round up to the next millisecond.
        let near = |d: Duration, want: Duration| d >= want && d <= want + Duration::from_millis(5);
        assert!(
            near(start.elapsed(), LINGER_IDLE),
            "a silent client: {:?}",
            start.elapsed()
        );
        drop(client);

        let (mut client, server) = pair().await;
        let trickle = tokio::spawn(async move {
            while client.write_all(b"a").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let start = tokio::time::Instant::now();
        linger(server, None, LINGER_TOTAL, LINGER_IDLE).await;
        assert!(
            near(start.elapsed(), LINGER_TOTAL),
            "a client that keeps sending: {:?}",
            start.elapsed()
        );
        trickle.abort();
    }
}
