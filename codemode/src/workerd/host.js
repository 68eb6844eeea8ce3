// Portico code mode: the host worker of one workerd process.
//
// Portico is its only client, over loopback, with the process's token in `x-portico-token`:
//
// - `POST /run` `{execId, code, timeoutMs}` loads a fresh worker (a new V8 isolate, no network:
//   `globalOutbound: null`) whose only binding is `BRIDGE`, this worker's `Bridge` entrypoint
//   with the execution's id, and answers with NDJSON, streamed: `{"call": {id, name, input}}`
//   for each `codemode.<name>(input)` the code makes, then one
//   `{"done": {"settled": "<the runner's JSON text>", "logs": [...]}}`, or
//   `{"done": {"timeout": true, "logs": [...]}}` once `timeoutMs` has passed, or
//   `{"done": {"cancelled": true}}` after `/cancel`.
// - `POST /answer` `{execId, id, text}` settles the call `id` with the JSON text Portico's bridge
//   answered (`{"result": ...}` or `{"error": "..."}`).
// - `POST /cancel` `{execId}` ends the execution at once.
//
// The process has one JavaScript thread: code that never yields (`while (true) {}`) freezes
// every execution of the process, timers included. Portico keeps a deadline of its own and kills
// the process when it passes; nothing here can.
import { WorkerEntrypoint } from "cloudflare:workers";
import PRELUDE from "./prelude.js";

// The compatibility date of the loaded workers: no `nodejs_compat` (so no `node:*` modules).
const COMPATIBILITY_DATE = "2025-09-01";
// How long the logs of a timed-out execution are waited for.
const LOGS_WAIT_MS = 100;
// `setTimeout`'s longest delay.
const MAX_TIMER_MS = 2147483647;

const encoder = new TextEncoder();

// The executions in progress, by id.
const executions = new Map();

// One execution: the lines waiting to be written to its response, and its calls waiting for
// their answers.
//
// INVARIANT: only the `/run` request writes its response. Another request (a `Bridge` call, an
// answer) may not do I/O on that request's objects in workerd, so it queues the line and wakes
// the writer by resolving a promise, which workerd allows across requests.
class Execution {
  constructor(id, maxLineBytes) {
    this.id = id;
    this.maxLineBytes = maxLineBytes;
    this.lines = [];
    this.wake = null;
    this.calls = new Map();
    this.nextCall = 1;
    this.finished = false;
    let cancel;
    this.cancelled = new Promise((resolve) => {
      cancel = resolve;
    });
    this.cancel = () => cancel({ cancelled: true });
  }

  send(line) {
    this.lines.push(line);
    if (this.wake !== null) {
      const wake = this.wake;
      this.wake = null;
      wake();
    }
  }

  // Writes the lines as they come, until the `done` line.
  async pump(writer) {
    for (;;) {
      while (this.lines.length > 0) {
        const line = this.lines.shift();
        await writer.write(line);
        if (this.finished && this.lines.length === 0) {
          await writer.close();
          return;
        }
      }
      await new Promise((resolve) => {
        this.wake = resolve;
      });
    }
  }

  // A promise of the answer's JSON text to `codemode.<name>(input)`.
  call(name, input) {
    if (this.finished) return Promise.reject(new Error("the execution is over"));
    const id = this.nextCall++;
    const line = encode({ call: { id, name, input } });
    if (line.byteLength > this.maxLineBytes) {
      return Promise.reject(new Error(`the input of codemode.${name} is larger than ${this.maxLineBytes} bytes`));
    }
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.send(line);
    });
  }

  answer(id, text) {
    const call = this.calls.get(id);
    if (call === undefined) return false;
    this.calls.delete(id);
    call.resolve(text);
    return true;
  }

  finish(done) {
    if (this.finished) return;
    let line = encode({ done });
    if (line.byteLength > this.maxLineBytes) {
      const settled = JSON.stringify({ error: `the result is larger than ${this.maxLineBytes} bytes` });
      line = encode({ done: { settled, logs: done.logs || [] } });
      if (line.byteLength > this.maxLineBytes) line = encode({ done: { settled, logs: [] } });
    }
    this.finished = true;
    executions.delete(this.id);
    for (const call of this.calls.values()) call.reject(new Error("the execution is over"));
    this.calls.clear();
    this.send(line);
  }
}

const encode = (value) => encoder.encode(JSON.stringify(value) + "\n");

const wait = (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms));

// What the loaded worker answered, as the `done` line carries it. The prelude makes `settled` a
// string and `logs` strings, but code can rewrite its own module: nothing it sends is trusted.
const evaluated = (value) => {
  try {
    const settled = typeof value.settled === "string" ? value.settled : JSON.stringify({ error: "the code's answer was lost" });
    return { settled, logs: lines(value.logs) };
  } catch (e) {
    return { settled: JSON.stringify({ error: "the code's answer was lost" }), logs: [] };
  }
};

const lines = (logs) => {
  try {
    return Array.isArray(logs) ? logs.map((line) => (typeof line === "string" ? line : String(line))) : [];
  } catch (e) {
    return [];
  }
};

// The message of an error as the code would see it. A module that does not compile comes back
// as "Failed to start Worker:\nUncaught SyntaxError: ...\n  at main.js:L:C"; the position is in
// the generated module, not in the code, so it is dropped.
const message = (error) => {
  let text = error instanceof Error ? error.message : String(error);
  const failed = "Failed to start Worker:";
  if (text.startsWith(failed)) {
    text = text
      .slice(failed.length)
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.startsWith("  at "))
      .join("\n")
      .replace(/^Uncaught /, "");
  }
  return text;
};

// The module of the loaded worker: the prelude, then the code as the runner's argument.
//
// The timer keeps the request alive while the code waits on a promise nothing will settle:
// workerd would otherwise cancel it as hung at once, where every engine waits for the deadline.
const mainModule = (code, timeoutMs) => `import { WorkerEntrypoint } from "cloudflare:workers";
const prelude = ${PRELUDE};
let installed = null;
export default class extends WorkerEntrypoint {
  async evaluate() {
    const alive = setTimeout(() => {}, ${Math.min(timeoutMs + 1000, MAX_TIMER_MS)});
    try {
      installed = prelude((name, json) => this.env.BRIDGE.callTool(name, json), null);
      let settled;
      try {
        settled = await installed.run(
${code}
);
      } catch (e) {
        settled = JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
      }
      return { settled, logs: installed.logs };
    } finally {
      clearTimeout(alive);
    }
  }
  logs() {
    return installed === null ? [] : installed.logs;
  }
}
`;

async function run(request, env, ctx) {
  const { execId, code, timeoutMs } = await request.json();
  if (typeof code !== "string" || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || executions.has(execId)) {
    return new Response("bad run", { status: 400 });
  }
  const execution = new Execution(execId, env.MAX_LINE_BYTES);
  executions.set(execId, execution);
  const { readable, writable } = new TransformStream();
  const pumped = execution.pump(writable.getWriter());
  ctx.waitUntil(pumped);
  ctx.waitUntil(evaluate(execution, code, timeoutMs, env, ctx));
  return new Response(readable, { headers: { "content-type": "application/x-ndjson" } });
}

async function evaluate(execution, code, timeoutMs, env, ctx) {
  let entrypoint = null;
  try {
    const worker = env.LOADER.load({
      compatibilityDate: COMPATIBILITY_DATE,
      mainModule: "main.js",
      modules: { "main.js": mainModule(code, timeoutMs) },
      env: { BRIDGE: ctx.exports.Bridge({ props: { execId: execution.id } }) },
      globalOutbound: null,
    });
    entrypoint = worker.getEntrypoint();
    const answered = entrypoint.evaluate().then(evaluated, (error) => ({
      settled: JSON.stringify({ error: message(error) }),
      logs: [],
    }));
    const done = await Promise.race([answered, wait(timeoutMs, { timeout: true }), execution.cancelled]);
    if (done.timeout) {
      const logs = await Promise.race([entrypoint.logs().then(lines, () => []), wait(LOGS_WAIT_MS, [])]);
      execution.finish({ timeout: true, logs });
    } else {
      execution.finish(done);
    }
  } catch (error) {
    execution.finish({ settled: JSON.stringify({ error: message(error) }), logs: [] });
  }
}

async function answer(request) {
  const { execId, id, text } = await request.json();
  const execution = executions.get(execId);
  if (execution === undefined || typeof text !== "string" || !execution.answer(id, text)) {
    return new Response("no such call", { status: 404 });
  }
  return new Response(null, { status: 204 });
}

async function cancel(request) {
  const { execId } = await request.json();
  const execution = executions.get(execId);
  if (execution === undefined) return new Response("no such execution", { status: 404 });
  execution.cancel();
  return new Response(null, { status: 204 });
}

const authorized = (request, env) => {
  const given = encoder.encode(request.headers.get("x-portico-token") || "");
  const expected = encoder.encode(env.TOKEN);
  return given.byteLength === expected.byteLength && crypto.subtle.timingSafeEqual(given, expected);
};

// The way back from a loaded worker: `this.env.BRIDGE.callTool(name, inputJson)`.
export class Bridge extends WorkerEntrypoint {
  async callTool(name, input) {
    const execution = executions.get(this.ctx.props.execId);
    if (execution === undefined) throw new Error("the execution is over");
    // As in the loaded worker, a pending timer keeps workerd from cancelling this call as hung
    // while Portico's answer is on its way; the execution's end rejects the call before it fires.
    let timer;
    const alive = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("the execution is over")), 24 * 60 * 60 * 1000);
    });
    try {
      return await Promise.race([execution.call(String(name), String(input)), alive]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export default {
  async fetch(request, env, ctx) {
    if (!authorized(request, env)) return new Response("forbidden", { status: 403 });
    if (request.method !== "POST") return new Response("method not allowed", { status: 405 });
    switch (new URL(request.url).pathname) {
      case "/run":
        return run(request, env, ctx);
      case "/answer":
        return answer(request);
      case "/cancel":
        return cancel(request);
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
