//! Ledger advances, fanned out to open streams. Within one process a
//! broadcast channel carries them; on PostgreSQL every instance also
//! listens for `NOTIFY annal_ledger`, so a stream on instance B hears of a
//! push taken by instance A.

use tokio::sync::{broadcast, watch};

/// The tenant name that wakes every stream (after a lost connection).
pub const EVERYONE: &str = "*";

use crate::db::postgres::NOTIFY_CHANNEL as CHANNEL;

/// Tells streams that a tenant's ledgers advanced.
#[derive(Debug, Clone)]
pub struct Notifier {
    sender: broadcast::Sender<String>,
    closing: watch::Sender<bool>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            sender: broadcast::channel(1024).0,
            closing: watch::channel(false).0,
        }
    }
}

impl Notifier {
    /// `tenant`'s ledgers advanced.
    pub fn advanced(&self, tenant: &str) {
        // No receivers is fine: nobody is streaming.
        let _ = self.sender.send(tenant.to_string());
    }

    /// The server is shutting down: streams end, so clients reconnect to
    /// another instance with `Last-Event-ID`.
    pub fn shut_down(&self) {
        let _ = self.closing.send(true);
    }

    /// Becomes `true` when the server shuts down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Receives advances from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.sender.subscribe()
    }

    /// Forwards PostgreSQL notifications on [`CHANNEL`] to local streams,
    /// reconnecting if the connection drops.
    pub fn listen_postgres(&self, url: String) {
        let notifier = self.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut listener) => {
                        if listener.listen(CHANNEL).await.is_ok() {
                            // Anything may have been pushed while not listening.
                            notifier.advanced(EVERYONE);
                            loop {
                                match listener.try_recv().await {
                                    Ok(Some(n)) => notifier.advanced(n.payload()),
                                    // The connection dropped and was re-established:
                                    // notifications in between are lost, so wake all.
                                    Ok(None) => notifier.advanced(EVERYONE),
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    Err(e) => eprintln!("annal-server: LISTEN {CHANNEL}: {e}"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}
