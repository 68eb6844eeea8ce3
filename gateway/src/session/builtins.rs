//! The built-in tools every portal lists first: `portal_list_servers`,
//! `portal_toggle_single_server` and `portal_toggle_servers`, then those of the session's
//! context mode.

use std::collections::HashSet;

use portico_core::domain::ids::ServerId;
use portico_policies::{Hidden, NO_ALLOWED_SERVERS};
use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock as Content, ErrorData, Tool};
use rmcp::service::Peer;
use serde_json::{Value, json};

use super::codemode;
use super::{
    BUILTIN_LIST_SERVERS, BUILTIN_TOGGLE_SERVER, BUILTIN_TOGGLE_SERVERS, PortalCaller,
    PortalSession, truncate,
};
use crate::context::ContextMode;
use crate::exposed::Exposed;

/// The built-in tools of a session in `mode`: the three every portal has, then the mode's.
pub fn builtin_tools(mode: ContextMode, exposed: &Exposed, off: &HashSet<ServerId>) -> Vec<Tool> {
    let list = json!({
        "name": BUILTIN_LIST_SERVERS,
        "description": "List the servers of this portal you may use, with their id, name and whether they are enabled in this session.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
    });
    let toggle = json!({
        "name": BUILTIN_TOGGLE_SERVER,
        "description": "Enable (`toggle`) or disable (`untoggle`) one server's tools and prompts for the rest of this session.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "server_id": {"type": "string", "description": "The server's id, as portal_list_servers shows it"},
                "action": {"type": "string", "enum": ["toggle", "untoggle"]}
            },
            "required": ["server_id", "action"]
        },
        "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
    });
    let select = json!({
        "name": BUILTIN_TOGGLE_SERVERS,
        "description": "Get a link to this portal's server-selection page, where you choose which servers this session uses and authorize the ones that need your own sign-in.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}
    });
    let mut tools: Vec<Tool> =
        [list, toggle, select].into_iter().filter_map(|t| serde_json::from_value(t).ok()).collect();
    tools.extend(codemode::mode_tools(mode, exposed, off));
    tools
}

impl PortalSession {
    pub(super) async fn list_servers(&self, exposed: &Exposed) -> CallToolResult {
        let off = self.toggled_off(exposed);
        let mut servers: Vec<Value> = Vec::with_capacity(exposed.servers.len());
        for s in &exposed.servers {
            let mut entry = json!({"id": s.id, "name": s.name, "enabled": !off.contains(&s.id)});
            if s.per_user_oauth {
                entry["authorized"] = json!(self.authorized(&s.id).await);
            } else if let Some(why) = self.admin_authorization_problem(&s.id) {
                entry["unavailable"] = json!(why);
            }
            servers.push(entry);
        }
        let mut body = json!({"servers": servers});
        if let Some(Hidden::NoAllowedServers { .. }) = &exposed.hidden {
            body["message"] = json!(NO_ALLOWED_SERVERS);
        }
        let mut result = CallToolResult::success(vec![Content::text(body.to_string())]);
        result.structured_content = Some(body);
        result
    }

    pub(super) async fn toggle_server(
        &self,
        exposed: &Exposed,
        arguments: Option<&serde_json::Map<String, Value>>,
        peer: &Peer<RoleServer>,
        caller: &PortalCaller,
    ) -> Result<CallToolResult, ErrorData> {
        let arg = |key: &str| arguments.and_then(|a| a.get(key)).and_then(Value::as_str);
        let (Some(server_id), Some(action)) = (arg("server_id"), arg("action")) else {
            return Err(ErrorData::invalid_params(
                "`portal_toggle_single_server` takes `server_id` (a string) and `action` (`toggle` or `untoggle`)",
                None,
            ));
        };
        let on = match action {
            "toggle" => true,
            "untoggle" => false,
            other => {
                return Err(ErrorData::invalid_params(
                    format!("`action` must be `toggle` or `untoggle`, not `{}`", truncate(other)),
                    None,
                ));
            }
        };
        let Some(server) = exposed.server(server_id) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "server `{}` is not one you may use in this portal; see portal_list_servers",
                    truncate(server_id)
                ),
                None,
            ));
        };
        if on && server.per_user_oauth && !self.authorized(&server.id).await {
            // Turning on a server the person has not authorized goes through the page.
            return self.select_servers(caller, peer).await;
        }
        let changed = {
            self.toggled_off(exposed);
            let mut slot = self.toggles().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let off = slot.get_or_insert_with(HashSet::new);
            if on { off.remove(&server.id) } else { off.insert(server.id.clone()) }
        };
        if changed {
            let _ = self.notify_changes(peer, caller).await;
        }
        let body = json!({"server_id": server.id, "enabled": on, "changed": changed});
        let mut result = CallToolResult::success(vec![Content::text(body.to_string())]);
        result.structured_content = Some(body);
        Ok(result)
    }
}
