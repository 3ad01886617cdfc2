//! Upgraded connections (websockets and the like): once both sides have switched protocols,
//! the proxy only copies bytes between them.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::client::OpenConnection;

/// Waits for the client and the instance to finish switching, then copies bytes both ways
/// until either side closes; counted in its event loop's open connections meanwhile.
pub(crate) async fn tunnel(
    client: OnUpgrade,
    instance: OnUpgrade,
    funko: String,
    _open: OpenConnection,
) {
    let (client, instance) = match tokio::try_join!(client, instance) {
        Ok(both) => both,
        Err(err) => {
            debug!(%funko, ?err, "An upgraded connection could not be set up.");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut instance = TokioIo::new(instance);
    match tokio::io::copy_bidirectional(&mut client, &mut instance).await {
        Ok((to_instance, to_client)) => {
            debug!(%funko, to_instance, to_client, "An upgraded connection closed.");
        }
        Err(err) => debug!(%funko, ?err, "An upgraded connection ended with an error."),
    }
}
