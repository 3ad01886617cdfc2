//! The readiness probe: `GET <path>` on an instance, as faaso does it itself (images need no curl).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Sends one `GET path` to `addr` and says whether it answered 2xx within `timeout`.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, probe_once(addr, path))
        .await
        .is_ok_and(|ok| ok)
}

async fn probe_once(addr: SocketAddr, path: &str) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header("user-agent", "faaso-probe")
        .body(Empty::new());
    match request {
        Ok(request) => sender
            .send_request(request)
            .await
            .is_ok_and(|response| response.status().is_success()),
        Err(_) => false,
    }
}
