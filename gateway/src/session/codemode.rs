//! The tools of the context modes (see [`crate::context`]): `portal_query_tools` and
//! `portal_execute` (`?optimize_context=…`), `portal_codemode_search` and
//! `portal_codemode_execute` (`?codemode=search_and_execute`), and the bridge that turns
//! `codemode.<name>(input)` inside the sandbox into a call of the portal.
//!
//! Every call from code mode is a call of [`PortalSession::call_exposed_tool`], the same path
//! as a client's own `tools/call`: the caller's view, the session's toggles, Cedar, the upstream
//! and one audit event, linked to the execution by its id. The execution itself is one more
//! audit event, for the `portal_codemode_*` call, holding the code and how it ended.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use portico_codemode::normalize::{MAX_CODE_BYTES, normalize};
use portico_codemode::output::result_text;
use portico_codemode::sandbox::{self, Bridge, ExecutionError, Run};
use portico_codemode::typescript::{self, ToolDeclaration};
use portico_core::domain::call::{AuditedMethod, CallStatus, CodeExecution};
use portico_core::domain::ids::ServerId;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock as Content, ErrorData, JsonObject, Tool,
};
use rmcp::service::RequestContext as McpContext;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::audit::Audit;
use super::{
    BUILTIN_CODEMODE_EXECUTE, BUILTIN_CODEMODE_SEARCH, BUILTIN_EXECUTE, BUILTIN_QUERY_TOOLS,
    PortalCaller, PortalSession, truncate,
};
use crate::context::ContextMode;
use crate::exposed::Exposed;

/// Tools one `portal_query_tools` answer holds by default, and at most.
const DEFAULT_QUERY_LIMIT: u64 = 20;
const MAX_QUERY_LIMIT: u64 = 50;
/// The longest `portal_query_tools` pattern, in characters.
const MAX_PATTERN_CHARS: usize = 1_000;
/// The largest compiled pattern.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// The input schema of an upstream tool in `minimize_tools`: the least MCP allows.
static OBJECT_SCHEMA: LazyLock<Arc<JsonObject>> = LazyLock::new(|| {
    let mut schema = JsonObject::new();
    schema.insert("type".to_owned(), json!("object"));
    Arc::new(schema)
});

/// An upstream tool as `minimize_tools` lists it: its name and the least input schema.
pub(super) fn name_only(tool: &Tool) -> Tool {
    let mut named = Tool::default();
    named.name = tool.name.clone();
    named.input_schema = Arc::clone(&OBJECT_SCHEMA);
    named
}

/// The built-in tools `mode` adds.
pub(super) fn mode_tools(
    mode: ContextMode,
    exposed: &Exposed,
    off: &HashSet<ServerId>,
) -> Vec<Tool> {
    let tools = match mode {
        ContextMode::Full => vec![],
        ContextMode::MinimizeTools => vec![query_tools_tool()],
        ContextMode::SearchAndExecute => vec![query_tools_tool(), execute_tool()],
        ContextMode::CodeMode => {
            let first = enabled_tools(exposed, off).next();
            vec![codemode_search_tool(), codemode_execute_tool(first)]
        }
    };
    tools.into_iter().filter_map(|tool| serde_json::from_value(tool).ok()).collect()
}

fn query_tools_tool() -> Value {
    json!({
        "name": BUILTIN_QUERY_TOOLS,
        "description": "Search this portal's tools with a regular expression (case-insensitive) over their names, descriptions and input schemas, and get their full definitions.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "A regular expression, e.g. `issue|pull` or `^github_`"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_QUERY_LIMIT, "description": format!("At most this many tools (default {DEFAULT_QUERY_LIMIT})")}
            },
            "required": ["pattern"]
        },
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
    })
}

fn execute_tool() -> Value {
    json!({
        "name": BUILTIN_EXECUTE,
        "description": format!("Call one of this portal's tools by its name, as {BUILTIN_QUERY_TOOLS} shows it, with its arguments."),
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name"},
                "arguments": {"type": "object", "description": "The tool's arguments, as its inputSchema describes them"}
            },
            "required": ["name"]
        },
        "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}
    })
}

/// The input of both code-mode tools.
fn code_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"code": {"type": "string", "description": "JavaScript async arrow function to execute"}},
        "required": ["code"]
    })
}

fn codemode_search_tool() -> Value {
    json!({
        "name": BUILTIN_CODEMODE_SEARCH,
        "description": format!("Find the tools you can call from {BUILTIN_CODEMODE_EXECUTE}.\n\nWrite an async arrow function in JavaScript that returns what you need. `await codemode.tools()` returns every tool available to you, each `{{name, description, inputSchema, types}}`: `name` is the method to call as `codemode.<name>(input)`, and `types` is its TypeScript declaration. Filter in code and return only what you need: the result is cut at 24,000 characters.\n\nExample: async () => (await codemode.tools()).filter((t) => /issue/i.test(t.name + \" \" + t.description)).map((t) => t.types).join(\"\\n\")"),
        "inputSchema": code_schema(),
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
    })
}

fn codemode_execute_tool(first: Option<&Tool>) -> Value {
    let example = match first {
        Some(tool) => {
            let schema = Value::Object((*tool.input_schema).clone());
            typescript::example(&ToolDeclaration {
                name: tool.name.as_ref(),
                description: tool.description.as_deref(),
                input_schema: &schema,
            })
        }
        None => "Example: async () => { const r = await codemode.some_tool({ query: \"...\" }); return r; }".to_owned(),
    };
    json!({
        "name": BUILTIN_CODEMODE_EXECUTE,
        "description": format!("Execute code to achieve a goal, calling this portal's tools.\n\nWrite an async arrow function in JavaScript that returns the result. Each tool is a method of `codemode`: `await codemode.<name>(input)` takes one object (the tool's arguments) and returns the tool's structured result, its text parsed as JSON, or its text; it throws when the tool fails. Find names and input types with {BUILTIN_CODEMODE_SEARCH}. Calls can run in parallel with Promise.all.\nDo NOT use TypeScript syntax — no type annotations, interfaces, or generics.\nThe code has no network and no filesystem; console output is not returned; the result comes back as text (JSON for anything but a string), cut at 24,000 characters.\n\n{example}"),
        "inputSchema": code_schema(),
        "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}
    })
}

/// The tools of the servers not toggled off, in the portal's order.
fn enabled_tools<'a>(
    exposed: &'a Exposed,
    off: &'a HashSet<ServerId>,
) -> impl Iterator<Item = &'a Tool> + 'a {
    exposed
        .servers
        .iter()
        .filter(move |s| !off.contains(&s.id))
        .flat_map(|s| s.tools.iter().map(|t| &t.item))
}

/// What the sandbox's `codemode` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `codemode.tools()`.
    Search,
    /// One method per enabled tool.
    Execute,
}

impl PortalSession {
    /// Answers a call of a context mode's built-in tool; `None` when `name` is none of them.
    pub(super) async fn mode_tool(
        &self,
        name: &str,
        caller: &PortalCaller,
        exposed: &Arc<Exposed>,
        request: &CallToolRequestParams,
        context: &McpContext<RoleServer>,
    ) -> Option<Result<CallToolResult, ErrorData>> {
        let arguments = request.arguments.as_ref();
        let mode = caller.mode;
        // The code-mode runs are boxed: their futures are large, and every `tools/call` awaits
        // this function (see `Upstreams::connect_slot`).
        let answer = match name {
            BUILTIN_QUERY_TOOLS
                if matches!(mode, ContextMode::MinimizeTools | ContextMode::SearchAndExecute) =>
            {
                self.query_tools(exposed, arguments)
            }
            BUILTIN_EXECUTE if mode == ContextMode::SearchAndExecute => {
                Box::pin(self.execute_named(caller, exposed, arguments, context)).await
            }
            BUILTIN_CODEMODE_SEARCH if mode == ContextMode::CodeMode => {
                Box::pin(self.run_code(Kind::Search, caller, exposed, arguments, context)).await
            }
            BUILTIN_CODEMODE_EXECUTE if mode == ContextMode::CodeMode => {
                Box::pin(self.run_code(Kind::Execute, caller, exposed, arguments, context)).await
            }
            BUILTIN_QUERY_TOOLS
            | BUILTIN_EXECUTE
            | BUILTIN_CODEMODE_SEARCH
            | BUILTIN_CODEMODE_EXECUTE => Err(ErrorData::invalid_params(
                format!(
                    "`{name}` is not a tool of this session; connect with `?{}`",
                    match name {
                        BUILTIN_QUERY_TOOLS => "optimize_context=minimize_tools",
                        BUILTIN_EXECUTE => "optimize_context=search_and_execute",
                        _ => "codemode=search_and_execute",
                    }
                ),
                None,
            )),
            _ => return None,
        };
        Some(answer)
    }

    /// `portal_query_tools`: the full definitions of the enabled tools the pattern matches.
    fn query_tools(
        &self,
        exposed: &Exposed,
        arguments: Option<&JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let invalid = |message: String| ErrorData::invalid_params(message, None);
        let pattern =
            arguments.and_then(|a| a.get("pattern")).and_then(Value::as_str).ok_or_else(|| {
                invalid(format!("`{BUILTIN_QUERY_TOOLS}` takes `pattern`, a regular expression"))
            })?;
        if pattern.chars().count() > MAX_PATTERN_CHARS {
            return Err(invalid(format!(
                "`pattern` is longer than {MAX_PATTERN_CHARS} characters"
            )));
        }
        let limit = match arguments.and_then(|a| a.get("limit")) {
            None | Some(Value::Null) => DEFAULT_QUERY_LIMIT,
            Some(value) => {
                value.as_u64().filter(|n| (1..=MAX_QUERY_LIMIT).contains(n)).ok_or_else(|| {
                    invalid(format!("`limit` is an integer from 1 to {MAX_QUERY_LIMIT}"))
                })?
            }
        };
        let regex = regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(MAX_REGEX_BYTES)
            .build()
            .map_err(|e| invalid(format!("`pattern` is not a regular expression: {e}")))?;
        let off = self.toggled_off(exposed);
        let mut found = Vec::new();
        let mut matched = 0usize;
        for tool in enabled_tools(exposed, &off) {
            let hit = regex.is_match(&tool.name)
                || tool.description.as_deref().is_some_and(|d| regex.is_match(d))
                || serde_json::to_string(&*tool.input_schema).is_ok_and(|s| regex.is_match(&s));
            if hit {
                matched += 1;
                if (found.len() as u64) < limit {
                    found.push(serde_json::to_value(tool).unwrap_or(Value::Null));
                }
            }
        }
        let body = json!({"tools": found, "matched": matched});
        let mut result = CallToolResult::success(vec![Content::text(result_text(&body))]);
        result.structured_content = Some(body);
        Ok(result)
    }

    /// `portal_execute`: a call of the named tool, exactly as if the client had called it.
    async fn execute_named(
        &self,
        caller: &PortalCaller,
        exposed: &Exposed,
        arguments: Option<&JsonObject>,
        context: &McpContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let invalid = |message: &str| ErrorData::invalid_params(message.to_owned(), None);
        let name = arguments
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("`portal_execute` takes `name`, the tool to call"))?;
        let mut request = CallToolRequestParams::new(name.to_owned());
        match arguments.and_then(|a| a.get("arguments")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => request = request.with_arguments(map.clone()),
            Some(_) => return Err(invalid("`arguments` is an object")),
        }
        self.call_exposed_tool(caller, exposed, request, context, None).await
    }

    /// Runs the caller's code in the sandbox, and audits the execution.
    async fn run_code(
        &self,
        kind: Kind,
        caller: &PortalCaller,
        exposed: &Arc<Exposed>,
        arguments: Option<&JsonObject>,
        context: &McpContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let tool = match kind {
            Kind::Search => BUILTIN_CODEMODE_SEARCH,
            Kind::Execute => BUILTIN_CODEMODE_EXECUTE,
        };
        let mut audit = Audit::new(
            caller,
            AuditedMethod::ToolsCall,
            Self::session_id(&context.extensions),
            tool.to_owned(),
        );
        let code = match arguments.and_then(|a| a.get("code")).and_then(Value::as_str) {
            Some(code) if code.len() <= MAX_CODE_BYTES => code,
            Some(_) => {
                let message = format!("`code` is longer than {MAX_CODE_BYTES} bytes");
                audit
                    .record(&self.gateway, CallStatus::Invalid, Some(message.clone()), None)
                    .await?;
                return Err(ErrorData::invalid_params(message, None));
            }
            None => {
                let message = format!("`{tool}` takes `code`, a JavaScript async arrow function");
                audit
                    .record(&self.gateway, CallStatus::Invalid, Some(message.clone()), None)
                    .await?;
                return Err(ErrorData::invalid_params(message, None));
            }
        };
        let id = uuid::Uuid::now_v7().to_string();
        let off = self.toggled_off(exposed);
        let methods = methods(exposed, &off);
        let mut inner = context.clone();
        inner.meta = Default::default();
        let bridge = ToolBridge {
            kind,
            session: self.clone(),
            caller: caller.clone(),
            exposed: Arc::clone(exposed),
            context: inner,
            execution_id: id.clone(),
            catalog: match kind {
                Kind::Search => catalog(exposed, &off, &methods),
                Kind::Execute => Value::Null,
            },
            methods,
        };
        let settings = &self.gateway.codemode;
        let run = Run {
            code: normalize(code),
            bridge: Arc::new(bridge),
            limits: settings.limits,
            cancel: context.ct.clone(),
        };
        let execution = sandbox::execute(settings.sandbox.as_ref(), run).await;
        let (status, outcome) = match &execution.outcome {
            Ok(_) => (CallStatus::Ok, "ok"),
            Err(ExecutionError::Thrown(_)) => (CallStatus::ToolError, "error"),
            Err(ExecutionError::Unserializable(_)) => (CallStatus::ToolError, "unserializable"),
            Err(ExecutionError::OutOfMemory { .. }) => (CallStatus::ToolError, "out_of_memory"),
            Err(ExecutionError::Timeout) => (CallStatus::Timeout, "timeout"),
            Err(ExecutionError::Cancelled) => (CallStatus::Cancelled, "cancelled"),
            Err(ExecutionError::Engine(_)) => (CallStatus::Unavailable, "engine_error"),
        };
        if let Err(ExecutionError::Engine(cause)) = &execution.outcome {
            tracing::warn!(portal = %caller.portal_id, execution = %id, %cause, "a code-mode execution failed in its engine");
        }
        audit.code_execution = Some(CodeExecution {
            id,
            engine: settings.sandbox.engine().to_string(),
            code: code.to_owned(),
            code_sha256: hex::encode(Sha256::digest(code.as_bytes())),
            calls: execution.calls,
            outcome: outcome.to_owned(),
        });
        let error = execution.outcome.as_ref().err().map(ToString::to_string);
        audit.record(&self.gateway, status, error, None).await?;
        Ok(match execution.outcome {
            Ok(value) => CallToolResult::success(vec![Content::text(result_text(&value))]),
            Err(error) => CallToolResult::error(vec![Content::text(format!("Error: {error}"))]),
        })
    }
}

/// The methods of `codemode` in an execution: each enabled tool under its exposed name and, when
/// no other tool takes it first, its sanitised name (`codemode.github_list_issues`).
fn methods(exposed: &Exposed, off: &HashSet<ServerId>) -> HashMap<String, String> {
    let mut methods = HashMap::new();
    for tool in enabled_tools(exposed, off) {
        methods.insert(tool.name.to_string(), tool.name.to_string());
    }
    for tool in enabled_tools(exposed, off) {
        methods
            .entry(typescript::sanitize_tool_name(&tool.name))
            .or_insert_with(|| tool.name.to_string());
    }
    methods
}

/// What `codemode.tools()` returns in a search: every enabled tool with the name to call it by
/// (from the execution's `methods`) and its TypeScript declaration.
fn catalog(exposed: &Exposed, off: &HashSet<ServerId>, methods: &HashMap<String, String>) -> Value {
    let tools: Vec<Value> = enabled_tools(exposed, off)
        .map(|tool| {
            let safe = typescript::sanitize_tool_name(&tool.name);
            // A name whose sanitised form another tool took is called by its own name.
            let name = if methods.get(&safe).map(String::as_str) == Some(tool.name.as_ref()) {
                safe
            } else {
                tool.name.to_string()
            };
            let schema = Value::Object((*tool.input_schema).clone());
            let declaration = ToolDeclaration {
                name: &name,
                description: tool.description.as_deref(),
                input_schema: &schema,
            };
            json!({
                "name": name,
                "description": tool.description,
                "inputSchema": schema,
                "types": typescript::declarations(&[declaration]).unwrap_or_default(),
            })
        })
        .collect();
    Value::Array(tools)
}

/// The host side of one execution's `codemode`.
struct ToolBridge {
    kind: Kind,
    session: PortalSession,
    caller: PortalCaller,
    exposed: Arc<Exposed>,
    /// The `portal_codemode_*` request's context, without its progress token: inner calls are
    /// cancelled with it.
    context: McpContext<RoleServer>,
    execution_id: String,
    methods: HashMap<String, String>,
    catalog: Value,
}

#[async_trait]
impl Bridge for ToolBridge {
    async fn call(&self, name: &str, input: Value) -> Result<Value, String> {
        let not_found = || format!("Tool \"{}\" not found", truncate(name));
        if self.kind == Kind::Search {
            return if name == "tools" { Ok(self.catalog.clone()) } else { Err(not_found()) };
        }
        let Some(tool) = self.methods.get(name) else { return Err(not_found()) };
        let mut request = CallToolRequestParams::new(tool.clone());
        match input {
            Value::Object(arguments) => request = request.with_arguments(arguments),
            Value::Null => {}
            _ => return Err(format!("the input of codemode.{} is an object", truncate(name))),
        }
        let answer = self
            .session
            .call_exposed_tool(
                &self.caller,
                &self.exposed,
                request,
                &self.context,
                Some(&self.execution_id),
            )
            .await;
        match answer {
            Ok(result) => unwrap(result),
            Err(error) => Err(error.message.to_string()),
        }
    }
}

/// What a tool's result becomes inside the sandbox: an error's text is thrown; otherwise the
/// structured content, else the text (parsed as JSON when it is JSON), else the whole result.
fn unwrap(result: CallToolResult) -> Result<Value, String> {
    let whole = serde_json::to_value(&result).unwrap_or(Value::Null);
    let content = whole.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let text = |item: &Value| -> Option<String> {
        (item.get("type")?.as_str()? == "text")
            .then(|| item.get("text")?.as_str().map(str::to_owned))?
    };
    if result.is_error == Some(true) {
        let message: Vec<String> = content.iter().filter_map(text).collect();
        let message = message.join("\n");
        return Err(if message.is_empty() { "Tool call failed".to_owned() } else { message });
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    let texts: Option<Vec<String>> = content.iter().map(text).collect();
    match texts {
        Some(texts) if !texts.is_empty() => {
            let joined = texts.join("\n");
            Ok(serde_json::from_str(&joined).unwrap_or(Value::String(joined)))
        }
        _ => Ok(whole),
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolResult, ContentBlock as Content};
    use serde_json::json;

    use super::unwrap;

    #[test]
    fn results_are_unwrapped_as_the_sandbox_sees_them() {
        let failed = CallToolResult::error(vec![Content::text("bad"), Content::text("input")]);
        assert_eq!(unwrap(failed), Err("bad\ninput".to_owned()));
        assert_eq!(unwrap(CallToolResult::error(vec![])), Err("Tool call failed".to_owned()));
        let mut structured = CallToolResult::success(vec![Content::text("{\"sum\": 3}")]);
        structured.structured_content = Some(json!({"sum": 3, "from": "structured"}));
        assert_eq!(unwrap(structured), Ok(json!({"sum": 3, "from": "structured"})));
        let parts = CallToolResult::success(vec![Content::text("[1,"), Content::text("2]")]);
        assert_eq!(unwrap(parts), Ok(json!([1, 2])));
        let plain = CallToolResult::success(vec![Content::text("Echo: hi")]);
        assert_eq!(unwrap(plain), Ok(json!("Echo: hi")));
        let image = CallToolResult::success(vec![Content::image("aGk=", "image/png")]);
        let whole = unwrap(image).unwrap_or_default();
        assert_eq!(whole["content"][0]["type"], "image");
    }
}
