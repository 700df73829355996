/**
 * Length-prefixed framing for byte streams, as in the original AutoMPI: each frame is a 4-byte
 * little-endian payload length followed by the payload.
 *
 * Unlike the original, the length is not trusted: {@link FrameDecoder} refuses a frame longer
 * than its limit as soon as the 4 length bytes arrive, and only ever holds bytes that have
 * actually been received.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/**
 * Bytes in the length prefix of every frame.
 *
 * @example
 * ```ts
 * import { encodeFrame, FRAME_HEADER_BYTES } from "./framing.ts";
 *
 * const payload = new Uint8Array(10);
 * const frameBytes = encodeFrame(payload).length; // 14
 * if (frameBytes !== FRAME_HEADER_BYTES + payload.length) throw new Error("unexpected");
 * ```
 */
export const FRAME_HEADER_BYTES = 4;

/**
 * The default limit on one frame's payload: 16 MiB.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder } from "./framing.ts";
 *
 * const roomy = new FrameDecoder({ maxFrameBytes: 4 * DEFAULT_MAX_FRAME_BYTES });
 * ```
 */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** The largest length a 4-byte prefix can hold. */
const MAX_UINT32 = 0xffff_ffff;

/**
 * A frame is longer than the limit. Thrown by {@link FrameDecoder.push} as soon as the length
 * prefix arrives, and by {@link encodeFrame} before sending a frame the peer would refuse.
 *
 * @example
 * ```ts
 * import { FrameDecoder, FrameTooLargeError } from "./framing.ts";
 *
 * const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
 * try {
 *   decoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
 * } catch (error) {
 *   if (!(error instanceof FrameTooLargeError)) throw error;
 *   // error.lengthBytes === 4294967295, error.maxFrameBytes === 1024
 * }
 * ```
 */
export class FrameTooLargeError extends ProtocolError {
  /** Always `"FrameTooLargeError"`. */
  override name: string = "FrameTooLargeError";
  /** The payload length that was claimed (or asked for). */
  readonly lengthBytes: number;
  /** The limit it exceeds. */
  readonly maxFrameBytes: number;
  /**
   * Complete frames that {@link FrameDecoder.push} found in the same chunk before the oversized
   * header, in order. Deliver them to see the same frames however the stream was chunked.
   * Always empty when the decoder was already poisoned, or when thrown by {@link encodeFrame}.
   */
  readonly precedingFrames: readonly Uint8Array[];

  /**
   * Describes one oversized frame.
   *
   * @param lengthBytes The payload length claimed.
   * @param maxFrameBytes The limit.
   * @param precedingFrames Frames completed before the error in the same `push`.
   */
  constructor(
    lengthBytes: number,
    maxFrameBytes: number,
    precedingFrames: readonly Uint8Array[] = [],
  ) {
    super(
      `Cannot decode frame: length ${lengthBytes} exceeds the limit of ${maxFrameBytes} bytes`,
    );
    this.lengthBytes = lengthBytes;
    this.maxFrameBytes = maxFrameBytes;
    this.precedingFrames = precedingFrames;
  }
}

/**
 * The stream ended in the middle of a frame. Thrown by {@link FrameDecoder.end}.
 *
 * @example
 * ```ts
 * import { FrameDecoder, TruncatedFrameError } from "./framing.ts";
 *
 * const decoder = new FrameDecoder();
 * decoder.push(new Uint8Array([10, 0, 0, 0, 1, 2, 3]));
 * try {
 *   decoder.end();
 * } catch (error) {
 *   if (!(error instanceof TruncatedFrameError)) throw error;
 *   // error.message: "Cannot decode frame: stream ended after 3 of 10 payload bytes"
 * }
 * ```
 */
export class TruncatedFrameError extends ProtocolError {
  /** Always `"TruncatedFrameError"`. */
  override name: string = "TruncatedFrameError";
  /** The payload length of the unfinished frame, or `undefined` if its header was unfinished. */
  readonly expectedBytes: number | undefined;
  /** Bytes of the unfinished header (if `expectedBytes` is undefined) or payload received. */
  readonly receivedBytes: number;

  /**
   * Describes the unfinished frame.
   *
   * @param expectedBytes The unfinished frame's payload length; `undefined` for an
   *   unfinished header.
   * @param receivedBytes Bytes of that header or payload received.
   */
  constructor(expectedBytes: number | undefined, receivedBytes: number) {
    super(
      expectedBytes === undefined
        ? `Cannot decode frame: stream ended after ${receivedBytes} of ${FRAME_HEADER_BYTES} header bytes`
        : `Cannot decode frame: stream ended after ${receivedBytes} of ${expectedBytes} payload bytes`,
    );
    this.expectedBytes = expectedBytes;
    this.receivedBytes = receivedBytes;
  }
}

/**
 * Options of {@link encodeFrame}.
 *
 * @example
 * ```ts
 * import { encodeFrame, type EncodeFrameOptions } from "./framing.ts";
 *
 * const options: EncodeFrameOptions = { maxFrameBytes: 1024 };
 * const frame = encodeFrame(new Uint8Array(100), options);
 * ```
 */
export interface EncodeFrameOptions {
  /** Refuse payloads longer than this; defaults to {@link DEFAULT_MAX_FRAME_BYTES}. */
  maxFrameBytes?: number;
}

/**
 * Builds the 4-byte little-endian length prefix for a payload of `lengthBytes`. Writing the
 * header and then the payload (two writes, or one vectored write) sends a frame without
 * copying the payload.
 *
 * @param lengthBytes The payload length, an integer in [0, 2³² − 1].
 * @returns A new 4-byte array.
 * @throws {TypeError} If `lengthBytes` is not a number.
 * @throws {RangeError} If it is not an integer a 4-byte prefix can hold.
 *
 * @example
 * ```ts
 * import { encodeFrameHeader } from "./framing.ts";
 *
 * const header = encodeFrameHeader(258); // Uint8Array [2, 1, 0, 0]
 * if (header[0] !== 2 || header[1] !== 1) throw new Error("not little-endian");
 * ```
 */
export function encodeFrameHeader(lengthBytes: number): Uint8Array {
  checkLength(lengthBytes, "Cannot encode frame header", "lengthBytes");
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  writeHeader(header, lengthBytes);
  return header;
}

/**
 * Builds one frame: the 4-byte little-endian length of `payload`, then a copy of `payload`.
 * (Use {@link encodeFrameHeader} to avoid the copy.)
 *
 * @param payload The frame's payload.
 * @param options The limit the peer applies.
 * @returns A new array of `payload.length + 4` bytes.
 * @throws {TypeError} If `payload` is not a Uint8Array.
 * @throws {FrameTooLargeError} If the payload is longer than `maxFrameBytes`.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./framing.ts";
 *
 * const frame = encodeFrame(new Uint8Array([7, 8])); // Uint8Array [2, 0, 0, 0, 7, 8]
 * if (frame.length !== 6) throw new Error("unexpected");
 * ```
 */
export function encodeFrame(payload: Uint8Array, options?: EncodeFrameOptions): Uint8Array {
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError(`Cannot encode frame: payload is ${typeof payload}, expected a Uint8Array`);
  }
  const maxFrameBytes = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  checkLength(maxFrameBytes, "Cannot encode frame", "maxFrameBytes");
  if (payload.length > maxFrameBytes) throw new FrameTooLargeError(payload.length, maxFrameBytes);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeHeader(frame, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Options of {@link FrameDecoder}.
 *
 * @example
 * ```ts
 * import { FrameDecoder, type FrameDecoderOptions } from "./framing.ts";
 *
 * const options: FrameDecoderOptions = { maxFrameBytes: 64 * 1024 };
 * const decoder = new FrameDecoder(options);
 * ```
 */
export interface FrameDecoderOptions {
  /**
   * The longest payload accepted, in bytes; defaults to {@link DEFAULT_MAX_FRAME_BYTES}.
   * An integer in [0, 2³² − 1].
   */
  maxFrameBytes?: number;
}

/** Pieces smaller than this are copied into a staging buffer instead of being kept as views. */
const SMALL_PIECE_BYTES = 1024;
/** Size of one staging buffer for small pieces. */
const STAGING_BYTES = 16 * 1024;

/**
 * Splits a byte stream, received in chunks of any size, back into frame payloads.
 *
 * Memory follows what has arrived, never what a peer claims: a frame's bytes are kept as
 * they come (views of large chunks, small pieces gathered into 16 KiB staging buffers so that
 * a peer trickling one byte at a time cannot make us hold one object per byte) and joined
 * only when the frame is complete. A frame that lies within one chunk is returned as a view
 * of it, without copying; so do not modify a chunk after pushing it.
 *
 * Errors poison the decoder: after a {@link FrameTooLargeError} or
 * {@link TruncatedFrameError}, every later `push` and `end` throws a new error of the same
 * class with the same fields (and no `precedingFrames`). Close the link.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./framing.ts";
 *
 * const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 });
 * const stream = encodeFrame(new Uint8Array([1, 2, 3]));
 * const first = decoder.push(stream.subarray(0, 5)); // []: the frame is not complete yet
 * const rest = decoder.push(stream.subarray(5)); // [Uint8Array [1, 2, 3]]
 * decoder.end(); // the stream ended between frames: fine
 * if (first.length !== 0 || rest.length !== 1) throw new Error("unexpected");
 * ```
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  /** Header bytes of the current frame received so far (0..3 while waiting for the rest). */
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFill = 0;
  /** Payload length of the current frame, or -1 while its header is incomplete. */
  #expectedBytes = -1;
  /** Received parts of the current frame's payload, in order. */
  #pieces: Uint8Array[] = [];
  #piecesBytes = 0;
  /** Where small pieces are gathered; its bytes from #stagingStart on are not in #pieces yet. */
  #staging: Uint8Array | null = null;
  #stagingStart = 0;
  #stagingFill = 0;
  #poison: FrameTooLargeError | TruncatedFrameError | null = null;

  /**
   * Creates a decoder for one stream.
   *
   * @param options The frame size limit.
   * @throws {TypeError} If `maxFrameBytes` is not a number.
   * @throws {RangeError} If `maxFrameBytes` is not an integer in [0, 2³² − 1].
   */
  constructor(options?: FrameDecoderOptions) {
    const maxFrameBytes = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    checkLength(maxFrameBytes, "Cannot create frame decoder", "maxFrameBytes");
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** The limit on one frame's payload, in bytes. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** Bytes received and held for the frame in progress (header bytes included). */
  get bufferedBytes(): number {
    return this.#expectedBytes < 0
      ? this.#headerFill
      : FRAME_HEADER_BYTES + this.#piecesBytes + this.#stagingFill - this.#stagingStart;
  }

  /**
   * Feeds the next chunk of the stream.
   *
   * @param chunk The bytes received, in stream order; may be empty.
   * @returns The payloads of the frames completed by this chunk, in order (possibly none).
   *   A payload may be a view of `chunk`.
   * @throws {TypeError} If `chunk` is not a Uint8Array.
   * @throws {FrameTooLargeError} If a frame's length exceeds the limit; frames completed
   *   earlier in the same chunk are on its `precedingFrames`.
   * @throws {TruncatedFrameError} If the decoder was poisoned by one in `end`.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#poison !== null) throw this.#repeatPoison();
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`Cannot push: chunk is ${typeof chunk}, expected a Uint8Array`);
    }
    const frames: Uint8Array[] = [];
    const end = chunk.length;
    let pos = 0;
    for (;;) {
      if (this.#expectedBytes < 0) {
        let length: number;
        if (this.#headerFill === 0 && end - pos >= FRAME_HEADER_BYTES) {
          length = readHeader(chunk, pos);
          pos += FRAME_HEADER_BYTES;
        } else {
          const take = Math.min(FRAME_HEADER_BYTES - this.#headerFill, end - pos);
          this.#header.set(chunk.subarray(pos, pos + take), this.#headerFill);
          this.#headerFill += take;
          pos += take;
          if (this.#headerFill < FRAME_HEADER_BYTES) return frames;
          length = readHeader(this.#header, 0);
        }
        if (length > this.#maxFrameBytes) {
          this.#clear();
          this.#poison = new FrameTooLargeError(length, this.#maxFrameBytes, frames);
          throw this.#poison;
        }
        this.#headerFill = FRAME_HEADER_BYTES;
        this.#expectedBytes = length;
      }

      const heldBytes = this.#piecesBytes + this.#stagingFill - this.#stagingStart;
      const needBytes = this.#expectedBytes - heldBytes;
      const available = end - pos;
      if (heldBytes === 0 && available >= needBytes) {
        frames.push(chunk.subarray(pos, pos + needBytes));
        pos += needBytes;
      } else if (available >= needBytes) {
        frames.push(this.#join(chunk.subarray(pos, pos + needBytes)));
        pos += needBytes;
      } else {
        if (available > 0) this.#keep(chunk.subarray(pos, end));
        return frames;
      }
      this.#headerFill = 0;
      this.#expectedBytes = -1;
      if (pos === end) return frames;
    }
  }

  /**
   * Declares the end of the stream. Ending between frames is fine; ending inside a frame is
   * a protocol error.
   *
   * @throws {TruncatedFrameError} If part of a frame was received but not all of it.
   * @throws {FrameTooLargeError} If the decoder was poisoned by one.
   */
  end(): void {
    if (this.#poison !== null) throw this.#repeatPoison();
    if (this.#headerFill === 0) return;
    this.#poison = this.#expectedBytes < 0
      ? new TruncatedFrameError(undefined, this.#headerFill)
      : new TruncatedFrameError(this.#expectedBytes, this.bufferedBytes - FRAME_HEADER_BYTES);
    this.#clear();
    throw this.#poison;
  }

  #repeatPoison(): FrameTooLargeError | TruncatedFrameError {
    const p = this.#poison!;
    return p instanceof FrameTooLargeError
      ? new FrameTooLargeError(p.lengthBytes, p.maxFrameBytes)
      : new TruncatedFrameError(p.expectedBytes, p.receivedBytes);
  }

  /** Holds part of the current frame's payload until the rest arrives. */
  #keep(piece: Uint8Array): void {
    const n = piece.length;
    if (n >= SMALL_PIECE_BYTES) {
      this.#flushStaging();
      this.#pieces.push(piece);
      this.#piecesBytes += n;
      return;
    }
    if (this.#staging === null || this.#stagingFill + n > this.#staging.length) {
      this.#flushStaging();
      // Pieces may still refer to the old buffer, so start a new one. Its fixed size is a
      // bounded cost, and lets one buffer serve every small frame split across chunks.
      this.#staging = new Uint8Array(STAGING_BYTES);
      this.#stagingStart = 0;
      this.#stagingFill = 0;
    }
    this.#staging.set(piece, this.#stagingFill);
    this.#stagingFill += n;
  }

  /** Moves the staged bytes not yet in #pieces into #pieces, as a view. */
  #flushStaging(): void {
    if (this.#staging === null || this.#stagingFill === this.#stagingStart) return;
    this.#pieces.push(this.#staging.subarray(this.#stagingStart, this.#stagingFill));
    this.#piecesBytes += this.#stagingFill - this.#stagingStart;
    this.#stagingStart = this.#stagingFill;
  }

  /** Joins the held pieces and the frame's last piece into one new array. */
  #join(last: Uint8Array): Uint8Array {
    this.#flushStaging();
    const frame = new Uint8Array(this.#expectedBytes);
    let offset = 0;
    for (const piece of this.#pieces) {
      frame.set(piece, offset);
      offset += piece.length;
    }
    frame.set(last, offset);
    this.#clearPayload();
    return frame;
  }

  #clearPayload(): void {
    this.#pieces = [];
    this.#piecesBytes = 0;
    // The staging buffer's bytes were all copied out, so it can be filled again from the start.
    this.#stagingStart = 0;
    this.#stagingFill = 0;
  }

  #clear(): void {
    this.#clearPayload();
    this.#staging = null;
    this.#headerFill = 0;
    this.#expectedBytes = -1;
  }
}

function checkLength(value: number, what: string, name: string): void {
  if (typeof value !== "number") {
    throw new TypeError(`${what}: ${name} is ${typeof value}, expected a number`);
  }
  if (!Number.isInteger(value) || value < 0 || value > MAX_UINT32) {
    throw new RangeError(`${what}: ${name} is ${value}, expected an integer in [0, ${MAX_UINT32}]`);
  }
}

function readHeader(bytes: Uint8Array, pos: number): number {
  return (bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24)) >>>
    0;
}

function writeHeader(bytes: Uint8Array, lengthBytes: number): void {
  bytes[0] = lengthBytes;
  bytes[1] = lengthBytes >>> 8;
  bytes[2] = lengthBytes >>> 16;
  bytes[3] = lengthBytes >>> 24;
}
