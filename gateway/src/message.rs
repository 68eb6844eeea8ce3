//! Reading the JSON-RPC messages of a tool call, the data plane's most frequent exchange, without
//! rmcp's trial and error.
//!
//! rmcp reads a message in two passes over a buffered copy of it: its shape (which of `method`,
//! `id`, `result` and `error` it has), then each request type of the union in turn (or each
//! result type of [`ServerResult`]) until one matches, each miss building a serde error with a
//! formatted message. A `tools/call` is the fourteenth request type it tries. Here the shape is
//! read first, with the method's name, from the message as it is; a call (or, when the request
//! was a call, its answer) is then read as its own type. A message of any other shape or method,
//! or one that does not read as its type, is read by rmcp as before, so what is accepted, and
//! every error, stays rmcp's. One difference: an answer to a call that would also read as a
//! result type rmcp tries before a call's (it has a `completion` or `messages` member besides
//! the call result's) is read as the call's result, which it is.

use rmcp::model::{
    CallToolRequest, CallToolResult, ClientJsonRpcMessage, JsonRpcRequest, JsonRpcResponse,
    ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// Which of the members that set a JSON-RPC message's kind it has, and its method.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    id: Present,
    #[serde(default)]
    result: Present,
    #[serde(default)]
    error: Present,
}

impl Shape<'_> {
    /// A request (rmcp's shape check: a method and an id, no result and no error) of `method`.
    fn is_request(&self, method: &str) -> bool {
        self.method.as_deref() == Some(method) && self.id.0 && !self.result.0 && !self.error.0
    }

    /// A response (rmcp's shape check: a result, no method and no error).
    fn is_response(&self) -> bool {
        self.method.is_none() && self.result.0 && !self.error.0
    }
}

/// Whether a member is there, whatever its value (`null` included, as rmcp counts it).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// A message a client sent, as rmcp's `serde_json::from_slice` reads it; a `tools/call`
/// request without trying the other request types first.
pub fn read_client_message(body: &[u8]) -> serde_json::Result<ClientJsonRpcMessage> {
    read(
        body,
        |shape| shape.is_request("tools/call"),
        |JsonRpcRequest::<CallToolRequest> { jsonrpc, id, request }| {
            ClientJsonRpcMessage::Request(JsonRpcRequest { jsonrpc, id, request: request.into() })
        },
    )
}

/// A message of an upstream's answer to a `tools/call` (a JSON body, or an event's data), as
/// rmcp reads it; a response read as a call result without trying the other result types first.
pub(crate) fn read_call_answer(data: &[u8]) -> serde_json::Result<ServerJsonRpcMessage> {
    read(
        data,
        |shape| shape.is_response(),
        |JsonRpcResponse::<CallToolResult> { jsonrpc, id, result }| {
            ServerJsonRpcMessage::Response(JsonRpcResponse {
                jsonrpc,
                id,
                result: ServerResult::CallToolResult(result),
            })
        },
    )
}

/// `text` read as `Typed` and made a `Message` by `wrap` if its shape `fits`; otherwise, or if
/// it does not read as `Typed`, read as a `Message` the way rmcp reads it.
fn read<Typed: DeserializeOwned, Message: DeserializeOwned>(
    text: &[u8],
    fits: impl FnOnce(&Shape<'_>) -> bool,
    wrap: impl FnOnce(Typed) -> Message,
) -> serde_json::Result<Message> {
    if let Ok(shape) = serde_json::from_slice::<Shape<'_>>(text)
        && fits(&shape)
        && let Ok(typed) = serde_json::from_slice::<Typed>(text)
    {
        return Ok(wrap(typed));
    }
    serde_json::from_slice(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn client_both(message: &serde_json::Value) -> (String, String) {
        let body = serde_json::to_vec(message).unwrap();
        let ours = read_client_message(&body).map(|m| serde_json::to_string(&m).unwrap());
        let rmcp = serde_json::from_slice::<ClientJsonRpcMessage>(&body)
            .map(|m| serde_json::to_string(&m).unwrap());
        (format!("{ours:?}"), format!("{rmcp:?}"))
    }

    fn answer_both(message: &serde_json::Value) -> (String, String) {
        let data = message.to_string();
        let ours = read_call_answer(data.as_bytes()).map(|m| serde_json::to_string(&m).unwrap());
        let rmcp = serde_json::from_str::<ServerJsonRpcMessage>(&data)
            .map(|m| serde_json::to_string(&m).unwrap());
        (format!("{ours:?}"), format!("{rmcp:?}"))
    }

    #[test]
    fn a_call_reads_as_rmcp_reads_it() {
        let call = json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"},
                       "_meta": {"progressToken": "p1", "other": 1}}
        });
        let (ours, rmcp) = client_both(&call);
        assert!(ours.starts_with("Ok("), "{ours}");
        assert_eq!(ours, rmcp);
        let read = read_client_message(call.to_string().as_bytes()).unwrap();
        let ClientJsonRpcMessage::Request(request) = read else { panic!("{read:?}") };
        assert!(matches!(request.request, rmcp::model::ClientRequest::CallToolRequest(_)));
    }

    #[test]
    fn other_messages_and_broken_calls_read_as_rmcp_reads_them() {
        for message in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            // A call with a stray `result`, without an id, without a name, of another JSON-RPC
            // version, in a batch: each reads as rmcp reads it (an error or another kind).
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"},
                   "result": {}}),
            json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "x"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}),
            json!({"jsonrpc": "1.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}),
            json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}]),
        ] {
            let (ours, rmcp) = client_both(&message);
            assert_eq!(ours, rmcp, "{message}");
        }
        // The method's name with an escaped slash, as JSON allows.
        let escaped =
            r#"{"jsonrpc": "2.0", "id": 1, "method": "tools\/call", "params": {"name": "x"}}"#;
        let read =
            read_client_message(escaped.as_bytes()).map(|m| serde_json::to_string(&m).unwrap());
        let rmcp = serde_json::from_str::<ClientJsonRpcMessage>(escaped)
            .map(|m| serde_json::to_string(&m).unwrap());
        assert!(read.is_ok());
        assert_eq!(format!("{read:?}"), format!("{rmcp:?}"));
        let garbage =
            read_client_message(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/");
        assert!(garbage.is_err());
    }

    #[test]
    fn a_call_answer_reads_as_rmcp_reads_it() {
        for message in [
            json!({"jsonrpc": "2.0", "id": "portico-1", "result": {
                "content": [{"type": "text", "text": "hi"}], "isError": false,
                "structuredContent": {"a": 1}, "_meta": {"k": "v"}}}),
            json!({"jsonrpc": "2.0", "id": 2, "result": {"content": []}}),
            // Not a call result: each reads as rmcp reads it.
            json!({"jsonrpc": "2.0", "id": 2, "result": {}}),
            json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "no"}}),
            json!({"jsonrpc": "2.0", "id": 2, "result": {"content": []}, "error": {}}),
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
        ] {
            let (ours, rmcp) = answer_both(&message);
            assert_eq!(ours, rmcp, "{message}");
        }
    }
}
