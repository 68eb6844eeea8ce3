// Portico code mode: what every execution runs before the model's code, in every engine.
//
// A function of the host's two functions, `call(name, inputJson)` (a promise of the answer's
// JSON text, `{"result": ...}` or `{"error": "..."}`) and `sleep(ms)` (a promise; `null` where
// the engine has timers of its own). It installs `console` (captured), the `codemode` proxy and
// `setTimeout`, refuses code generation from strings, and returns `{ run, logs }`: `run(fn)`
// awaits `fn()` and settles with the JSON text of `{"result": ...}`, `{"error": "..."}` or
// `{"unserializable": "..."}`; `logs` is the captured console output.
(function (call, sleep) {
  "use strict";
  const MAX_LOG_CHARS = 65536;
  const logs = [];
  let logged = 0;
  const text = (value) => {
    try {
      return String(value);
    } catch (e) {
      return "[unprintable]";
    }
  };
  const writer = (prefix) => (...args) => {
    if (logged > MAX_LOG_CHARS) return;
    const line = prefix + args.map(text).join(" ");
    logged += line.length;
    logs.push(line);
  };
  const console = Object.freeze({
    log: writer(""),
    info: writer(""),
    debug: writer(""),
    warn: writer("[warn] "),
    error: writer("[error] "),
  });
  Object.defineProperty(globalThis, "console", { value: console, writable: false, configurable: false });

  const codemode = new Proxy(Object.freeze({}), {
    get(_, name) {
      // `then` keeps `await codemode` from treating the proxy as a promise.
      if (typeof name !== "string" || name === "then") return undefined;
      return async (input) => {
        const json = JSON.stringify(input === undefined ? {} : input);
        if (typeof json !== "string") {
          throw new TypeError(`the input of codemode.${name} must be a JSON value`);
        }
        const answer = JSON.parse(await call(name, json));
        if (Object.prototype.hasOwnProperty.call(answer, "error")) throw new Error(answer.error);
        return answer.result;
      };
    },
    set() {
      return false;
    },
    defineProperty() {
      return false;
    },
  });
  Object.defineProperty(globalThis, "codemode", { value: codemode, writable: false, configurable: false });

  if (sleep !== null && typeof globalThis.setTimeout === "undefined") {
    let next = 1;
    const cleared = new Set();
    const setTimeout = (fn, ms, ...args) => {
      const id = next++;
      sleep(Math.max(0, Number(ms) || 0)).then(() => {
        if (cleared.delete(id)) return;
        if (typeof fn === "function") fn(...args);
      });
      return id;
    };
    const clearTimeout = (id) => {
      cleared.add(id);
    };
    Object.defineProperty(globalThis, "setTimeout", { value: setTimeout, writable: false, configurable: false });
    Object.defineProperty(globalThis, "clearTimeout", { value: clearTimeout, writable: false, configurable: false });
  }

  // No code from strings: `eval`, `Function` and the constructors reachable from any function.
  const refuse = function () {
    throw new EvalError("code generation from strings is not allowed in code mode");
  };
  const functions = [function () {}, async function () {}, function* () {}, async function* () {}];
  for (const f of functions) {
    Object.defineProperty(Object.getPrototypeOf(f), "constructor", { value: refuse, writable: false, configurable: false });
  }
  Object.defineProperty(globalThis, "Function", { value: refuse, writable: false, configurable: false });
  Object.defineProperty(globalThis, "eval", { value: refuse, writable: false, configurable: false });

  const message = (e) => (e instanceof Error ? e.message : text(e));
  const run = async (fn) => {
    let result;
    try {
      result = await fn();
    } catch (e) {
      return JSON.stringify({ error: message(e) });
    }
    try {
      return JSON.stringify({ result: result === undefined ? null : result });
    } catch (e) {
      return JSON.stringify({ unserializable: message(e) });
    }
  };
  return { run, logs };
})
