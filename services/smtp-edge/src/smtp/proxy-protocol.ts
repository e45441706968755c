import type { Socket } from 'node:net';
import {
  Command,
  IPv4ProxyAddress,
  IPv6ProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';

// HAProxy's PROXY protocol (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt): v1 is one text line of
// at most 107 octets; v2 a 16-octet header with the length of the addresses (and TLVs) that follow.
const V1_MAX = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_HEADER = 16;
const V2_MAX = V2_HEADER + 2048;

/** The client a load balancer speaks for; `local` for its own connections (v2 LOCAL, v1 UNKNOWN: health checks). */
export type ProxiedClient = { address: string; port: number } | { local: true };

export class ProxyHeaderError extends Error {}

/** Parses one complete header (v1 or v2). */
export function parseProxyHeader(header: Buffer): ProxiedClient {
  if (header.subarray(0, V2_SIGNATURE.length).equals(V2_SIGNATURE)) {
    let p: V2ProxyProtocol;
    try {
      p = V2ProxyProtocol.parse(new Uint8Array(header));
    } catch (err) {
      throw new ProxyHeaderError(`invalid PROXY v2 header: ${(err as Error).message}`);
    }
    if (p.command === Command.LOCAL) return { local: true };
    const a = p.proxyAddress;
    if (a instanceof IPv4ProxyAddress)
      return { address: a.sourceAddress.address.join('.'), port: a.sourcePort };
    if (a instanceof IPv6ProxyAddress) {
      const bytes = a.sourceAddress.address;
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2)
        groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
      // The usual compressed spelling (2001:db8::7), as sockets report addresses.
      return { address: new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1), port: a.sourcePort };
    }
    throw new ProxyHeaderError('PROXY v2 header without an IPv4 or IPv6 source address');
  }
  const text = header.toString('latin1');
  if (/^PROXY UNKNOWN[ \r]/.test(text)) return { local: true };
  try {
    const p = V1ProxyProtocol.parse(text);
    return { address: p.source.ipAddress, port: p.source.port };
  } catch (err) {
    throw new ProxyHeaderError(`invalid PROXY v1 header: ${(err as Error).message}`);
  }
}

/**
 * Reads the PROXY header a trusted load balancer sends first, within timeoutMs, and leaves whatever follows it on
 * the socket. Rejects with ProxyHeaderError when the first bytes are not a valid header.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxiedClient> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (err: Error | undefined, client?: ProxiedClient, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      if (rest?.length) socket.unshift(rest);
      if (err) reject(err);
      else resolve(client as ProxiedClient);
    };
    const timer = setTimeout(
      () => finish(new ProxyHeaderError(`no PROXY header within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onEnd = () => finish(new ProxyHeaderError('the connection closed before the PROXY header'));
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk; chunk = socket.read() as Buffer | null) {
        buf = Buffer.concat([buf, chunk]);
        const v2 = buf
          .subarray(0, V2_SIGNATURE.length)
          .equals(V2_SIGNATURE.subarray(0, Math.min(buf.length, 12)));
        if (v2 && buf.length >= V2_HEADER) {
          const total = V2_HEADER + buf.readUInt16BE(14);
          if (total > V2_MAX) return finish(new ProxyHeaderError('PROXY v2 header too long'));
          if (buf.length < total) continue;
          return parsed(buf.subarray(0, total), buf.subarray(total));
        }
        if (v2) continue;
        const end = buf.indexOf('\r\n');
        if (end >= 0) return parsed(buf.subarray(0, end + 2), buf.subarray(end + 2));
        if (buf.length > V1_MAX) return finish(new ProxyHeaderError('no PROXY header (first line too long)'));
      }
    };
    const parsed = (header: Buffer, rest: Buffer) => {
      try {
        finish(undefined, parseProxyHeader(header), rest);
      } catch (err) {
        finish(err as Error);
      }
    };
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    onReadable();
  });
}
