/**
 * IPv4 helpers for the simulated network: parsing, formatting and subnets.
 *
 * @module
 */

const parsed = new Map<string, number | undefined>();

/**
 * Parses dotted IPv4 text into an unsigned 32-bit integer; `undefined` when it is not one.
 * Results are memoised: the simulator parses the same few addresses millions of times.
 */
export function parseIpv4(text: string): number | undefined {
  let value = parsed.get(text);
  if (value === undefined && !parsed.has(text)) {
    value = parseIpv4Uncached(text);
    if (parsed.size > 65536) parsed.clear();
    parsed.set(text, value);
  }
  return value;
}

function parseIpv4Uncached(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** Formats an unsigned 32-bit integer as dotted IPv4 text. */
export function formatIpv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** An IPv4 subnet. */
export interface Subnet {
  /** The CIDR text it was parsed from, normalised. */
  readonly cidr: string;
  readonly network: number;
  readonly prefixLength: number;
  readonly broadcast: number;
}

/**
 * Parses `a.b.c.d/len` into a {@link Subnet}; throws a `TypeError` when it is not one.
 *
 * @example
 * ```ts
 * import { formatIpv4, parseSubnet } from "./_ipv4.ts";
 * console.assert(formatIpv4(parseSubnet("10.0.0.0/16").broadcast) === "10.0.255.255");
 * ```
 */
export function parseSubnet(cidr: string): Subnet {
  const [addressText, lengthText, extra] = cidr.split("/");
  const address = parseIpv4(addressText ?? "");
  const prefixLength = Number(lengthText);
  if (
    address === undefined || extra !== undefined || !/^\d{1,2}$/.test(lengthText ?? "") ||
    prefixLength < 8 || prefixLength > 30
  ) {
    throw new TypeError(`Cannot parse subnet "${cidr}": expected a.b.c.d/8..30`);
  }
  const hostBits = 32 - prefixLength;
  const size = 2 ** hostBits;
  const network = Math.floor(address / size) * size;
  return {
    cidr: `${formatIpv4(network)}/${prefixLength}`,
    network,
    prefixLength,
    broadcast: network + size - 1,
  };
}

/** Whether the unsigned address lies in the subnet. */
export function inSubnet(subnet: Subnet, address: number): boolean {
  return address >= subnet.network && address <= subnet.broadcast;
}
