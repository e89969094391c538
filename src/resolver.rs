//! Host-name entries of the network lists (a trunk provider's `sip.provider.example`):
//! resolved now and then, their addresses stored for the enforcer and the ACLs. A name
//! that does not resolve keeps its last addresses.

use std::time::Duration;

use crate::clock::Clock;
use crate::store::{self, Store};

/// Resolves every host-name entry now; `poke` tells the enforcer afterwards.
pub async fn resolve_all(store: &Store, clock: &dyn Clock, poke: &tokio::sync::Notify) {
    let Ok(mut conn) = store.acquire().await else { return };
    let Ok(hosts) = store::networks::hosts(&mut conn).await else { return };
    drop(conn);
    for (id, host) in hosts {
        let lookup = tokio::net::lookup_host((host.as_str(), 0));
        let addresses: Vec<String> = match tokio::time::timeout(Duration::from_secs(5), lookup).await {
            Ok(Ok(found)) => {
                let mut a: Vec<String> =
                    found.map(|s| crate::domain::network::canonical_ip(s.ip()).to_string()).collect();
                a.sort();
                a.dedup();
                a
            }
            _ => {
                tracing::warn!(%host, "host name did not resolve; keeping its last addresses");
                continue;
            }
        };
        if let Ok(mut conn) = store.acquire().await {
            let _ = store::networks::set_resolution(&mut conn, id, &addresses, clock.now()).await;
        }
    }
    poke.notify_one();
}
