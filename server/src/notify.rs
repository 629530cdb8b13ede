//! Ledger advances, fanned out to open streams. Within one process a
//! broadcast channel carries them; on PostgreSQL every instance also
//! listens for `NOTIFY annal_ledger`, so a stream on instance B hears of a
//! push taken by instance A.

use tokio::sync::broadcast;

use crate::db::postgres::NOTIFY_CHANNEL as CHANNEL;

/// Tells streams that a tenant's ledgers advanced.
#[derive(Debug, Clone)]
pub struct Notifier {
    sender: broadcast::Sender<String>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl Notifier {
    /// `tenant`'s ledgers advanced.
    pub fn advanced(&self, tenant: &str) {
        // No receivers is fine: nobody is streaming.
        let _ = self.sender.send(tenant.to_string());
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
                            while let Ok(n) = listener.recv().await {
                                notifier.advanced(n.payload());
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
