/**
 * The base of every error raised because bytes from a peer break the protocol.
 *
 * A link handler catches {@link ProtocolError} to tell "this peer sent garbage: close the
 * link, log, count it" from bugs in our own code, which must not be swallowed. Each cause has
 * its own subclass beside the code that detects it (`MessageDecodeError` in `codec.ts`,
 * `FrameTooLargeError` and `TruncatedFrameError` in `framing.ts`).
 *
 * @module
 */

/**
 * A peer sent bytes that do not follow the wire protocol. Never thrown directly: catch it to
 * handle every protocol violation at once.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * import { jsonCodec } from "./codec.ts";
 *
 * let rejected = false;
 * try {
 *   jsonCodec.decode(new TextEncoder().encode("not json"));
 * } catch (error) {
 *   if (!(error instanceof ProtocolError)) throw error;
 *   rejected = true; // close the link, log error.message, count it
 * }
 * if (!rejected) throw new Error("expected a ProtocolError");
 * ```
 */
export class ProtocolError extends Error {
  /** The class name, for logs: subclasses set their own. */
  override name: string = "ProtocolError";
}
