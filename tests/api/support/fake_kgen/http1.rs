//! HTTP/1.1 by hand: reading requests and carrying out the [`Action`] chosen for each, byte by byte, so that
//! answers can break where a real server never would.

use std::{sync::atomic::Ordering, sync::Arc, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;

use super::{
    faults::{decide, head_of, Action},
    lock, HeldRequest, InFlight, Received, Shared,
};

/// Longest request head or body the stand-in reads (the gateway's are far smaller).
const MAX_REQUEST: usize = 4 * 1024 * 1024;
/// Most a `fault:endless` answer writes, whatever the gateway does.
const MAX_ENDLESS: usize = 64 * 1024 * 1024;

pub(super) async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    while let Ok((socket, _)) = listener.accept().await {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_plain(socket, &shared).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(socket).await {
                        serve(stream, &shared).await;
                    }
                }
            }
        });
    }
}

/// Serves one plain connection, which can send real TCP resets (SO_LINGER 0, then close).
async fn serve_plain(socket: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(socket);
    while let Some((action, keep_alive, in_flight)) = next_action(&mut reader, shared).await {
        let socket = reader.get_mut();
        if let Action::ResetAfter(bytes) = action {
            let _ = socket.write_all(&bytes).await;
            drop(in_flight);
            let _ = socket2::SockRef::from(&*socket).set_linger(Some(Duration::ZERO));
            return;
        }
        if !perform(&mut reader, action, shared, in_flight).await || !keep_alive {
            return;
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, shared: &Shared) {
    let mut reader = BufReader::new(stream);
    while let Some((action, keep_alive, in_flight)) = next_action(&mut reader, shared).await {
        if !perform(&mut reader, action, shared, in_flight).await || !keep_alive {
            return;
        }
    }
}

/// Reads the next request, records it, counts it as in flight and decides what to do with it (and whether the
/// connection stays open). Bytes that are not HTTP/1.1 (a TLS hello, say) get a 400 and a close, as from a real
/// server, and are neither recorded nor counted.
async fn next_action<'a, S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    shared: &'a Shared,
) -> Option<(Action, bool, Option<InFlight<'a>>)> {
    let first = reader.fill_buf().await.ok()?;
    if !first.first()?.is_ascii_uppercase() {
        let refusal = head_of(
            400,
            Some(0),
            &[("connection".to_owned(), "close".to_owned())],
        );
        return Some((Action::CloseAfter(refusal), false, None));
    }
    let request = read_request(reader).await?;
    let keep_alive = !request
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    lock(&shared.received).push(request.clone());
    let in_flight = InFlight::start(shared);
    Some((decide(&request, shared), keep_alive, Some(in_flight)))
}

/// Carries out `action` for the request counted by `in_flight`, which ends when the answer is handed to the socket
/// or, failing that, when this returns; false when the connection is done.
async fn perform<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    mut action: Action,
    shared: &Shared,
    in_flight: Option<InFlight<'_>>,
) -> bool {
    while let Action::Delay(delay, then) = action {
        if closed_within(reader, delay).await {
            return false;
        }
        action = *then;
    }
    let socket = reader.get_mut();
    match action {
        Action::Respond(bytes) => {
            drop(in_flight);
            socket.write_all(&bytes).await.is_ok()
        }
        Action::ResetAfter(bytes) | Action::CloseAfter(bytes) => {
            let _ = socket.write_all(&bytes).await;
            let _ = socket.shutdown().await;
            false
        }
        Action::Trickle(head) => {
            if socket.write_all(&head).await.is_ok() {
                for _ in 0..1000 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if socket.write_all(b" ").await.is_err() || socket.flush().await.is_err() {
                        break;
                    }
                }
            }
            false
        }
        Action::Chunked(head, body) => {
            if socket.write_all(&head).await.is_err() {
                return false;
            }
            for piece in body.chunks(64) {
                if socket.write_all(&chunk(piece)).await.is_err() || socket.flush().await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            socket.write_all(b"0\r\n\r\n").await.is_ok()
        }
        Action::Endless => {
            let head = head_of(
                200,
                None,
                &[
                    ("content-type".to_owned(), "application/json".to_owned()),
                    ("transfer-encoding".to_owned(), "chunked".to_owned()),
                ],
            );
            let mut written = 0;
            if socket.write_all(&head).await.is_ok() {
                let framed = chunk(&[b' '; 64 * 1024]);
                while written < MAX_ENDLESS && socket.write_all(&framed).await.is_ok() {
                    written += 64 * 1024;
                }
            }
            let _ = shared.endless.send(written);
            false
        }
        Action::Delay(..) => unreachable!("waited out above"),
        Action::Hold => {
            let _ = shared.held.send(HeldRequest::Arrived);
            let mut buf = [0u8; 1024];
            // Read until the peer closes (0) or resets (an error).
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            let _ = shared.held.send(HeldRequest::Closed);
            false
        }
    }
}

/// Whether the peer closes the connection (or it fails) within `delay`. Bytes it sends meanwhile (a pipelined
/// request) are left for the next read.
async fn closed_within<S: AsyncRead + Unpin>(reader: &mut BufReader<S>, delay: Duration) -> bool {
    let closed = async {
        match reader.fill_buf().await {
            Ok(bytes) if !bytes.is_empty() => std::future::pending().await,
            _ => (),
        }
    };
    tokio::time::timeout(delay, closed).await.is_ok()
}

/// One chunk of a chunked body.
fn chunk(piece: &[u8]) -> Vec<u8> {
    [
        format!("{:x}\r\n", piece.len()).into_bytes(),
        piece.to_vec(),
        b"\r\n".to_vec(),
    ]
    .concat()
}

/// Reads one request; `None` once the peer is gone or sends something that is not a request.
async fn read_request<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<Received> {
    let request_line = read_line(reader).await?;
    let request_line = String::from_utf8(request_line).ok()?;
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut headers = HeaderMap::new();
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(line[..colon].trim_ascii()).ok()?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        headers.append(name, value);
    }
    let chunked = headers
        .get("transfer-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader).await?
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .map_or(Some(0), |v| v.trim().parse().ok())?;
        if length > MAX_REQUEST {
            return None;
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await.ok()?;
        body
    };
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

/// A line without its CRLF; `None` at the end of the stream or past [`MAX_REQUEST`].
async fn read_line<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', &mut line)
        .await
        .ok()?;
    if n == 0 || line.last() != Some(&b'\n') {
        return None;
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(line)
}

async fn read_chunked<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = String::from_utf8(read_line(reader).await?).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // Trailers, up to the blank line.
            while !read_line(reader).await?.is_empty() {}
            return Some(body);
        }
        if body.len() + size > MAX_REQUEST {
            return None;
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await.ok()?;
        read_line(reader).await?;
    }
}
