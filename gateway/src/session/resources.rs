//! Resources through a portal: live lists from every enabled server, URIs mapped to
//! `portico://<server id>/<upstream URI>` so that a read reaches the right server.

use portico_core::domain::ids::ServerId;
use serde_json::Value;

use super::{PortalSession, RESOURCE_PREFIX};
use crate::exposed::Exposed;

/// Maps an upstream resource URI to the portal's.
pub fn portal_uri(server: &ServerId, uri: &str) -> String {
    format!("{RESOURCE_PREFIX}{server}/{uri}")
}

/// Splits a portal resource URI into server id and upstream URI.
pub fn upstream_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix(RESOURCE_PREFIX)?.split_once('/')
}

pub(super) fn remap_uris(value: &mut Value, server: &ServerId, key: &str) {
    if let Some(items) = value.as_array_mut() {
        for item in items {
            if let Some(uri) = item.get(key).and_then(Value::as_str) {
                let mapped = portal_uri(server, uri);
                item[key] = Value::String(mapped);
            }
        }
    }
}

impl PortalSession {
    /// The items of a live list (`method`) from every enabled visible server, their `uri_key`
    /// mapped to the portal's URIs.
    pub(super) async fn live_list(
        &self,
        exposed: &Exposed,
        method: &'static str,
        uri_key: &str,
    ) -> Vec<Value> {
        let mut all = Vec::new();
        for (server, mut items) in self.gather(exposed, method).await {
            remap_uris(&mut items, &server, uri_key);
            if let Value::Array(items) = items {
                all.extend(items);
            }
        }
        all
    }

    /// Asks every enabled visible server for a live list (`resources/list` or
    /// `resources/templates/list`), in parallel, each within the call timeout. A server that
    /// fails is left out (and logged): one dead upstream does not empty the list.
    pub(super) async fn gather(
        &self,
        exposed: &Exposed,
        method: &'static str,
    ) -> Vec<(ServerId, Value)> {
        let off = self.toggled_off(exposed);
        let timeout = self.gateway.upstreams.config().call_timeout;
        let tasks = exposed.servers.iter().filter(|s| !off.contains(&s.id)).map(|server| {
            let id = server.id.clone();
            async move {
                let connection = self.connection(&id).await.ok()?;
                let supports = connection
                    .peer()
                    .peer_info()
                    .is_some_and(|info| info.capabilities.resources.is_some());
                if !supports {
                    return None;
                }
                let peer = connection.peer();
                let answer = if method == "resources/list" {
                    tokio::time::timeout(timeout, peer.list_all_resources())
                        .await
                        .ok()?
                        .map(|items| serde_json::to_value(items).unwrap_or(Value::Null))
                } else {
                    tokio::time::timeout(timeout, peer.list_all_resource_templates())
                        .await
                        .ok()?
                        .map(|items| serde_json::to_value(items).unwrap_or(Value::Null))
                };
                match answer {
                    Ok(items) => Some((id, items)),
                    Err(error) => {
                        tracing::warn!(server = %id, %error, method, "upstream list failed");
                        None
                    }
                }
            }
        });
        futures::future::join_all(tasks).await.into_iter().flatten().collect()
    }
}
