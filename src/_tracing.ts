/**
 * Traces through the OpenTelemetry API (`@opentelemetry/api`) only, never an SDK: a span for
 * each message a node sends (`send`, PRODUCER), for each message it receives over a link or a
 * datagram (`receive`, CONSUMER) and for each worker's handling of a message (`process`,
 * CONSUMER), with the messaging semantic conventions' attributes. The W3C trace context goes
 * along in the MapMessage itself, as a `traceparent` field (and `tracestate` when the context
 * has one), so a message, the worker's handling of it and the answer the worker sends form one
 * trace across nodes.
 *
 * A node traces only when it is given a tracer provider, or when the application registered one
 * with the API before creating the node (Deno's built-in OpenTelemetry registers one when
 * `OTEL_DENO=true`). Without one the node holds no {@link NodeTracing} at all: no span is made,
 * no field is added, and each call site costs one check.
 *
 * With a tracer whose spans record nothing and name no trace (the API's no-op), a message costs
 * two bare span objects (its send and its receive) and nothing more: no context is made, nothing
 * goes into the message, and its handling gets no span.
 *
 * Spans of a simulated node are timed by its clock, so they carry virtual time; on real runtimes
 * the SDK times them itself, from the same monotonic source.
 *
 * @module
 */
import {
  type Attributes,
  type Context,
  context as contextApi,
  createTraceState,
  type HrTime,
  INVALID_TRACEID,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import type { MapMessage } from "./message.ts";
import type { Address, Clock } from "./platform.ts";

export type { TracerProvider };

/**
 * The message field carrying the W3C `traceparent` of the span that sent the message.
 *
 * @example
 * ```ts
 * import { parseTraceparent, TRACEPARENT_FIELD } from "./_tracing.ts";
 * import type { MapMessage } from "./message.ts";
 * // The trace a received message belongs to, if its sender traced it.
 * export const traceOf = (message: MapMessage): string | undefined =>
 *   parseTraceparent(message.message[TRACEPARENT_FIELD] ?? "")?.traceId;
 * ```
 */
export const TRACEPARENT_FIELD = "traceparent";
/**
 * The message field carrying the W3C `tracestate`, when the sending span's context has one.
 *
 * @example
 * ```ts
 * import { parseTraceparent, TRACEPARENT_FIELD, TRACESTATE_FIELD } from "./_tracing.ts";
 * const fields: Record<string, string> = {
 *   [TRACEPARENT_FIELD]: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
 *   [TRACESTATE_FIELD]: "vendor=1",
 * };
 * const parent = parseTraceparent(fields[TRACEPARENT_FIELD], fields[TRACESTATE_FIELD]);
 * if (parent?.traceState?.get("vendor") !== "1") throw new Error("unexpected");
 * ```
 */
export const TRACESTATE_FIELD = "tracestate";
/**
 * The name of the tracer (the instrumentation scope) the nodes' spans come from.
 *
 * @example
 * ```ts
 * import { TRACER_NAME } from "./_tracing.ts";
 * // A collector or a sampler can tell the toolkit's spans by their scope name.
 * if (TRACER_NAME !== "automp") throw new Error(TRACER_NAME);
 * ```
 */
export const TRACER_NAME = "automp";

// Version 00: exactly 55 characters. Later versions may append fields after a dash.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The span context a `traceparent` (and `tracestate`) names, marked remote; `undefined` when it
 * is not a valid W3C trace context.
 *
 * @example
 * ```ts
 * import { parseTraceparent } from "./_tracing.ts";
 * const parent = parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
 * if (parent?.spanId !== "b7ad6b7169203331" || parent.traceFlags !== 1) throw new Error("unexpected");
 * if (parseTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01")) {
 *   throw new Error("an all-zero trace id is invalid");
 * }
 * ```
 */
export function parseTraceparent(
  traceparent: string,
  tracestate?: string,
): SpanContext | undefined {
  const match = TRACEPARENT.exec(traceparent);
  if (match === null) return undefined;
  const version = match[1];
  if (version === "ff" || (version === "00" && match[5] !== undefined)) return undefined;
  const context: SpanContext = {
    traceId: match[2],
    spanId: match[3],
    traceFlags: parseInt(match[4], 16),
    isRemote: true,
    ...(tracestate === undefined ? {} : { traceState: createTraceState(tracestate) }),
  };
  return isSpanContextValid(context) ? context : undefined;
}

/**
 * The W3C `traceparent` of a span context (version 00).
 *
 * @example
 * ```ts
 * import { formatTraceparent } from "./_tracing.ts";
 * const text = formatTraceparent({
 *   traceId: "0af7651916cd43dd8448eb211c80319c",
 *   spanId: "b7ad6b7169203331",
 *   traceFlags: 1,
 * });
 * if (text !== "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") throw new Error(text);
 * ```
 */
export function formatTraceparent(context: SpanContext): string {
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, "0");
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}

/** A provider as the API's global proxy is: it says whether anything stands behind it. */
interface Delegating {
  getDelegateTracer?(name: string): Tracer | undefined;
}

/**
 * The tracer a node uses: `provider`'s, or with none given the globally registered provider's;
 * `undefined` when nothing is registered (the API's global is then an empty proxy), or when
 * `provider` is `false`.
 *
 * @example
 * ```ts
 * import { tracerOf } from "./_tracing.ts";
 * // No provider registered: no tracer, so a node would trace nothing.
 * if (tracerOf(undefined) !== undefined) throw new Error("a provider is registered");
 * const tracer = tracerOf({ getTracer: (name) => ({ name }) as never });
 * if (tracer === undefined) throw new Error("an explicit provider is used");
 * ```
 */
export function tracerOf(provider: TracerProvider | false | undefined): Tracer | undefined {
  if (provider === false) return undefined;
  if (provider !== undefined) return provider.getTracer(TRACER_NAME);
  const global = trace.getTracerProvider() as TracerProvider & Delegating;
  // The API hands out its proxy whether or not a provider was registered behind it; a provider
  // put there some other way (a runtime's own) has no delegate to ask for and is used as it is.
  return typeof global.getDelegateTracer === "function"
    ? global.getDelegateTracer(TRACER_NAME)
    : global.getTracer(TRACER_NAME);
}

/** Options of {@link NodeTracing}. */
export interface NodeTracingOptions {
  readonly tracer: Tracer;
  /** The node's GUID (`messaging.client.id`). */
  readonly nodeGuid: string;
  /** The node's clock. */
  readonly clock: Clock;
  /** Time spans by `clock` (a simulated node's virtual time); else the tracer times them. */
  readonly virtualTime?: boolean;
  /**
   * Whether sent messages carry the trace context. Not on nodes speaking the original protocol:
   * original nodes and their workers would take the fields for part of the command.
   */
  readonly inject: boolean;
  /** Messages with this field are left untraced (a node service's own traffic). */
  readonly skipField?: string;
}

/**
 * One node's tracing. The node calls it at three places: around routing a message it sends,
 * around delivering a message it received, and (through {@link NodeTracing.handling}, given to
 * each worker) around a worker's handling of a message.
 *
 * @example
 * ```ts
 * import { NodeTracing } from "./_tracing.ts";
 * import { createMessage } from "./message.ts";
 * import { ProxyTracerProvider } from "@opentelemetry/api";
 *
 * // A tracer whose spans record nothing (the API's no-op): nothing to inject either.
 * const tracing = new NodeTracing({
 *   tracer: new ProxyTracerProvider().getTracer("example"),
 *   nodeGuid: "A",
 *   clock: { now: () => 0, wallNow: () => 0, schedule: () => ({ cancel() {} }), defer() {} },
 *   inject: true,
 * });
 * let routed = "";
 * tracing.send(createMessage("B", { command: "ping" }), (message) => {
 *   routed = Object.keys(message.message).join();
 *   return true;
 * });
 * if (routed !== "command") throw new Error(routed);
 * ```
 */
export class NodeTracing {
  readonly #tracer: Tracer;
  readonly #nodeGuid: string;
  readonly #clock: Clock;
  /** Wall-clock ms at the clock's origin, when spans take virtual time; else undefined. */
  readonly #wallOriginMs: number | undefined;
  readonly #inject: boolean;
  readonly #skipField: string | undefined;
  /** The context of the receive or handling running now: the parent of the sends made there. */
  #current: Context | undefined;
  /**
   * Messages queued to workers within a traced send or receive → its context, and how many
   * handlings of it are due (a broadcast is queued to every worker). A Map whose entries the
   * handlings take out, not a WeakMap: one WeakMap key per message costs the garbage collector
   * more than the spans themselves.
   */
  readonly #queued = new Map<MapMessage, { readonly context: Context; handlings: number }>();
  /** Span options of sends and receives by destination: the same for every message to it. */
  readonly #sendOptions = new Map<string, SpanOptions>();
  readonly #receiveOptions = new Map<string, SpanOptions>();

  constructor(options: NodeTracingOptions) {
    this.#tracer = options.tracer;
    this.#nodeGuid = options.nodeGuid;
    this.#clock = options.clock;
    this.#wallOriginMs = options.virtualTime
      ? options.clock.wallNow() - options.clock.now()
      : undefined;
    this.#inject = options.inject;
    this.#skipField = options.skipField;
  }

  /**
   * The tracing of a node given `provider` (see {@link tracerOf}), or `undefined` when it has
   * no tracer: then the node traces nothing. Throws a `TypeError` for a provider that is not one.
   */
  static create(
    provider: TracerProvider | false | undefined,
    options: Omit<NodeTracingOptions, "tracer">,
  ): NodeTracing | undefined {
    if (
      provider !== undefined && provider !== false &&
      (provider === null || typeof provider !== "object" ||
        typeof provider.getTracer !== "function")
    ) {
      throw new TypeError("Cannot create node: tracerProvider must be a TracerProvider or false");
    }
    const tracer = tracerOf(provider);
    return tracer === undefined ? undefined : new NodeTracing({ ...options, tracer });
  }

  /**
   * Sends `message` within a `send` span: `route` gets the message to route, a copy carrying the
   * span's context when there is one to carry. Returns what `route` returned; `false` marks the
   * span as an error (undeliverable).
   */
  send(message: MapMessage, route: (message: MapMessage) => boolean): boolean {
    if (this.#skipped(message)) return route(message);
    const parent = this.#parent();
    const span = this.#tracer.startSpan(
      "send",
      this.#options(this.#sendOptions, SpanKind.PRODUCER, "send", message.destination),
      parent,
    );
    if (inert(span)) {
      const sent = route(message);
      span.end();
      return sent;
    }
    const context = trace.setSpan(parent, span);
    const traced = this.#inject ? withTraceContext(message, span.spanContext()) : message;
    return this.#run(context, span, () => {
      const sent = route(traced);
      if (!sent) span.setStatus({ code: SpanStatusCode.ERROR, message: "undeliverable" });
      return sent;
    });
  }

  /**
   * Delivers a received `message` within a `receive` span, a child of the sending span its
   * `traceparent` names (a new trace without one): calls `deliver(message, via)`. `from` is the
   * link's remote address.
   */
  receive<T>(
    message: MapMessage,
    from: Address | undefined,
    deliver: (message: MapMessage, via: T) => void,
    via: T,
  ): void {
    if (this.#skipped(message)) return deliver(message, via);
    const fields = message.message;
    const traceparent = fields[TRACEPARENT_FIELD];
    const remote = traceparent === undefined
      ? undefined
      : parseTraceparent(traceparent, fields[TRACESTATE_FIELD]);
    const parent = remote === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, remote);
    const span = this.#tracer.startSpan(
      "receive",
      this.#options(this.#receiveOptions, SpanKind.CONSUMER, "receive", message.destination),
      parent,
    );
    if (inert(span)) {
      deliver(message, via);
      span.end();
      return;
    }
    if (from !== undefined && span.isRecording()) {
      span.setAttribute("network.peer.address", from.host);
      span.setAttribute("network.peer.port", from.port);
    }
    this.#run(trace.setSpan(parent, span), span, () => deliver(message, via));
  }

  /**
   * The node queued `message` to a worker: its handling will be a child of the send or receive
   * running now (if that made a span to carry; a no-op tracer's did not).
   */
  queued(message: MapMessage): void {
    const context = this.#current;
    if (context === undefined) return;
    const entry = this.#queued.get(message);
    if (entry !== undefined && entry.context === context) {
      entry.handlings++;
      return;
    }
    // Messages that are never handled (their worker was closed) must not pile up.
    if (this.#queued.size >= MAX_QUEUED) this.#queued.clear();
    this.#queued.set(message, { context, handlings: 1 });
  }

  /**
   * What the node gives worker `worker` as `WorkerContext.traceHandling`: runs a handler on a
   * message within a `process` span, a child of the send or receive that queued it. A message
   * queued outside one (a no-op tracer's) gets no span either.
   */
  handling(worker: string): (message: MapMessage, handle: (message: MapMessage) => void) => void {
    // The same for every message this worker handles: made once.
    const options = new Map<string, SpanOptions>();
    return (message, handle) => {
      const entry = this.#queued.get(message);
      if (entry === undefined) return handle(message);
      if (--entry.handlings === 0) this.#queued.delete(message);
      const parent = entry.context;
      const span = this.#tracer.startSpan(
        "process",
        this.#options(options, SpanKind.CONSUMER, "process", worker),
        parent,
      );
      if (inert(span)) {
        handle(message);
        span.end();
        return;
      }
      this.#run(trace.setSpan(parent, span), span, () => handle(message));
    };
  }

  /** The parent of a new send: the application's active span, else the handling running now. */
  #parent(): Context {
    const active = contextApi.active();
    if (this.#current === undefined || trace.getSpan(active) !== undefined) return active;
    return this.#current;
  }

  /** Runs `fn` with `context` current (and active, where a context manager is registered). */
  #run<T>(context: Context, span: Span, fn: () => T): T {
    const previous = this.#current;
    this.#current = context;
    try {
      return contextApi.with(context, fn);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      throw error;
    } finally {
      this.#current = previous;
      span.end(this.#wallOriginMs === undefined ? undefined : this.#time());
    }
  }

  #skipped(message: MapMessage): boolean {
    return this.#skipField !== undefined && message.message[this.#skipField] !== undefined;
  }

  /**
   * The options of a span of `operation` to `destination`: made once per destination (the cache
   * is emptied when it holds a thousand), with the start time of now when spans take virtual time.
   */
  #options(
    cache: Map<string, SpanOptions>,
    kind: SpanKind,
    operation: "send" | "receive" | "process",
    destination: string,
  ): SpanOptions {
    let options = cache.get(destination);
    if (options === undefined) {
      if (cache.size >= 1000) cache.clear();
      const attributes: Attributes = Object.freeze({
        "messaging.system": TRACER_NAME,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "messaging.client.id": this.#nodeGuid,
      });
      options = Object.freeze({ kind, attributes });
      cache.set(destination, options);
    }
    return this.#wallOriginMs === undefined ? options : { ...options, startTime: this.#time() };
  }

  /** Now, as the node's clock tells it, in the API's [seconds, nanoseconds]. */
  #time(): HrTime {
    const ms = this.#wallOriginMs! + this.#clock.now();
    const seconds = Math.floor(ms / 1000);
    return [seconds, Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6))];
  }
}

/** Most messages waiting for their handling's span at once (see {@link NodeTracing.queued}). */
const MAX_QUEUED = 1 << 16;

/**
 * Whether a span is what a no-op tracer makes: recording nothing and naming no trace, so that
 * there is no context to carry (a sampled-out span of an SDK still names its trace).
 */
function inert(span: Span): boolean {
  return !span.isRecording() && span.spanContext().traceId === INVALID_TRACEID;
}

/** `message` with the trace context of `span` in its fields, or as it is without a valid one. */
function withTraceContext(message: MapMessage, span: SpanContext): MapMessage {
  if (!isSpanContextValid(span)) return message;
  // A null-prototype copy, as every MapMessage built by this package has.
  const fields: Record<string, string> = Object.assign(Object.create(null), message.message);
  fields[TRACEPARENT_FIELD] = formatTraceparent(span);
  const state = span.traceState?.serialize();
  if (state) fields[TRACESTATE_FIELD] = state;
  else delete fields[TRACESTATE_FIELD];
  return { ...message, message: fields };
}
