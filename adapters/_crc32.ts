/**
 * CRC-32 (the IEEE 802.3 polynomial, reflected, as zlib and PNG use it): the checksum that frames
 * each record of the file storage's log, so recovery can tell a whole record from a torn or
 * corrupt one.
 *
 * @module
 */

// One entry per byte value: the CRC of that byte alone, for a byte-at-a-time update.
const TABLE = makeTable();

function makeTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
    table[byte] = crc >>> 0;
  }
  return table;
}

/**
 * The CRC-32 of `bytes[start, end)`, continuing from `previous` (the CRC of what came before,
 * 0 to start afresh); an unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * import { crc32 } from "./_crc32.ts";
 * const digits = new TextEncoder().encode("123456789");
 * console.assert(crc32(digits) === 0xcbf43926);
 * console.assert(crc32(digits, crc32(digits, 0, 0, 4), 4) === 0xcbf43926);
 * ```
 */
export function crc32(bytes: Uint8Array, previous = 0, start = 0, end = bytes.length): number {
  let crc = ~previous;
  for (let i = start; i < end; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}
