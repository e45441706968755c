import { hostname } from 'node:os';
import { z } from 'zod';

// The whole smtpguard configuration: one YAML file read by every service (each uses its section plus
// the shared ones). Unknown keys are errors, so a typo never silently falls back to a default.
// Every key is documented in docs/configuration.md; keep both in step.

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected "host:port", e.g. "127.0.0.1:7101"');

const failureMode = z.enum(['fail-open', 'fail-closed']);

const port = z.int().min(0).max(65535);

const backend = (address: string, deadlineMs: number, mode: 'fail-open' | 'fail-closed') =>
  z
    .strictObject({
      // Where the service listens (host:port); in Kubernetes the Service name, e.g. smtpguard-auth:7101.
      address: hostPort.default(address),
      // Deadline of one call; past it the call counts as a backend failure.
      deadlineMs: z.int().positive().default(deadlineMs),
      // What a check does when the backend fails: fail-open accepts and logs, fail-closed answers 451.
      failureMode: failureMode.default(mode),
    })
    .prefault({});

const listener = (host: string, p: number, requireAuth: boolean) =>
  z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().default(host),
      port: port.default(p),
      // Every transaction on this listener needs SMTP AUTH (or a trusted IP): 530 5.7.0 otherwise.
      requireAuth: z.boolean().default(requireAuth),
    })
    .prefault({});

const spoolHop = z.strictObject({
  type: z.literal('spool'),
  // Directory that receives one file per accepted message (relative paths: below stateDir).
  dir: z.string().default('spool'),
});

const smtpHop = z.strictObject({
  type: z.enum(['smtp', 'lmtp']),
  host: z.string(),
  port: port,
  // Time for the whole hand-off of one message; past it the client gets 451 4.4.2.
  timeoutMs: z.int().positive().default(60_000),
  // Use STARTTLS when the next hop offers it.
  opportunisticTls: z.boolean().default(true),
});

const mailbox = z.strictObject({
  address: z.email(),
  // scrypt hash as printed by `smtpguard hash-password` (never a clear-text password).
  passwordHash: z
    .string()
    .regex(/^scrypt\$/, 'expected a hash from `smtpguard hash-password` ("scrypt$...")'),
  disabled: z.boolean().default(false),
});

const domain = z.strictObject({
  name: z.string().min(1),
  mailboxes: z.array(mailbox).default([]),
  // alias address -> list of target addresses
  aliases: z.record(z.string(), z.array(z.string())).default({}),
  // Mailbox that receives mail for unknown addresses of this domain; empty for none.
  catchAll: z.string().default(''),
  disabled: z.boolean().default(false),
});

const dnsZone = z.strictObject({
  zone: z.string().min(1),
  // Answers (127.0.0.x) that count as listed; empty: any answer in 127.0.0.0/8 except 127.0.0.1.
  answers: z.array(z.string()).default([]),
});

export const configSchema = z.strictObject({
  // Name of this installation or replica, in logs, decisions and Received headers.
  instance: z.string().default(hostname()),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  // Directory for local state (spool, decisions file, greylist store). Relative to the config file.
  stateDir: z.string().default('.var'),

  nats: z
    .strictObject({
      // NATS server URL(s), comma-separated. Empty: embedded mode, decisions go to decisions.file.
      url: z.string().default(''),
      decisionStream: z.string().default('SMTPGUARD_DECISIONS'),
      // How long the decision stream keeps events.
      decisionMaxAgeSeconds: z
        .int()
        .positive()
        .default(7 * 24 * 3600),
      connectTimeoutMs: z.int().positive().default(2000),
      // NATS unreachable at start: "buffer" keeps serving and buffers decisions; "exit" stops the service.
      onUnavailable: z.enum(['buffer', 'exit']).default('buffer'),
      // Decisions kept in memory while NATS is unreachable; beyond it the oldest are dropped (and counted).
      bufferLimit: z.int().positive().default(10_000),
    })
    .prefault({}),

  decisions: z
    .strictObject({
      // JSON-lines file for decisions in embedded mode (relative: below stateDir).
      file: z.string().default('decisions.jsonl'),
    })
    .prefault({}),

  edge: z
    .strictObject({
      // Host name in the banner, EHLO reply and Received headers.
      hostname: z.string().default('localhost'),
      listeners: z
        .strictObject({
          mx: listener('127.0.0.1', 2525, false),
          submission: listener('127.0.0.1', 2587, true),
        })
        .prefault({}),
      // Allow AUTH without TLS. Only for loopback or when TLS ends at a trusted proxy.
      allowInsecureAuth: z.boolean().default(false),
      // Largest message accepted (SIZE); larger ones get 552 5.3.4.
      maxMessageBytes: z
        .int()
        .positive()
        .default(25 * 1024 * 1024),
      // Recipients per transaction; more get 452 4.5.3.
      maxRecipients: z.int().positive().default(100),
      // Idle time before the edge answers 421 4.4.2 and closes (RFC 5321 suggests 5 minutes).
      socketTimeoutMs: z.int().positive().default(300_000),
      // On SIGTERM: time open sessions get to finish before they are answered 421 4.3.2.
      shutdownGraceMs: z.int().nonnegative().default(10_000),
      // Clients that may relay without AUTH: IPs, CIDRs (10.0.0.0/8) or ranges (192.168.0.1-50).
      trustedNetworks: z.array(z.string()).default([]),
      relay: z
        .strictObject({
          // authorized: AUTH or trusted IP may relay; open: anyone (never on the internet); closed: nobody.
          mode: z.enum(['authorized', 'open', 'closed']).default('authorized'),
        })
        .prefault({}),
      nextHop: z.discriminatedUnion('type', [spoolHop, smtpHop]).default({ type: 'spool', dir: 'spool' }),
      backends: z
        .strictObject({
          auth: backend('127.0.0.1:7101', 2000, 'fail-closed'),
          reputation: backend('127.0.0.1:7102', 3000, 'fail-open'),
          greylist: backend('127.0.0.1:7103', 1000, 'fail-open'),
        })
        .prefault({}),
      checks: z
        .strictObject({
          dnsbl: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
          greylist: z
            .strictObject({
              enabled: z.boolean().default(true),
              // Add "X-Greylist: delayed N seconds" to messages whose recipients were held back.
              delayHeader: z.boolean().default(true),
            })
            .prefault({}),
          spf: z
            .strictObject({
              // Evaluate SPF at MAIL FROM (decision spf.*; feeds greylist sender-pool keying).
              enabled: z.boolean().default(true),
              // Refuse MAIL FROM when SPF fails (550 5.7.23). Off: record only.
              rejectFail: z.boolean().default(false),
            })
            .prefault({}),
        })
        .prefault({}),
    })
    .prefault({}),

  auth: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:7101'),
      // SASL mechanisms offered by the edge.
      mechanisms: z.array(z.enum(['PLAIN', 'LOGIN'])).default(['PLAIN', 'LOGIN']),
      domains: z.array(domain).default([]),
    })
    .prefault({}),

  reputation: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:7102'),
      dns: z
        .strictObject({
          // DNS servers ("ip" or "ip:port"); empty: the system resolvers.
          servers: z.array(z.string()).default([]),
          timeoutMs: z.int().positive().default(2000),
          tries: z.int().positive().default(2),
        })
        .prefault({}),
      dnsbl: z
        .strictObject({
          zones: z.array(dnsZone).default([]),
        })
        .prefault({}),
      // DNS allow lists (DNSWL): listed clients skip greylisting (greylist.skipDnswl).
      dnswl: z
        .strictObject({
          zones: z.array(dnsZone).default([]),
        })
        .prefault({}),
      // Forward-confirmed reverse DNS of the client (needed for host-name whitelist rules).
      fcrdns: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
      // Total time for one SPF evaluation; past it the result is temperror (RFC 7208 4.6.4).
      spfTimeoutMs: z.int().positive().default(5000),
    })
    .prefault({}),

  greylist: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:7103'),
      // A new triplet is deferred until this many seconds have passed.
      delaySeconds: z.int().nonnegative().default(300),
      // A first retry later than this after first sight starts the triplet over.
      retryWindowSeconds: z
        .int()
        .positive()
        .default(2 * 24 * 3600),
      // Triplets (and auto-whitelisted clients) not seen for this long are forgotten.
      expirySeconds: z
        .int()
        .positive()
        .default(35 * 24 * 3600),
      // Client network of a triplet: IPv4 /24 and IPv6 /64 by default; 32/128 keys on the host.
      ipv4Prefix: z.int().min(0).max(32).default(24),
      ipv6Prefix: z.int().min(0).max(128).default(64),
      // Recipients never greylisted (local part, full address or @domain).
      whitelistRecipients: z.array(z.string()).default(['postmaster', 'abuse']),
      // Clients never greylisted: IP, CIDR, range (192.168.0.1-50), host name or .domain (verified reverse DNS).
      whitelistClients: z.array(z.string()).default([]),
      autoWhitelist: z
        .strictObject({
          // A client that completed this many deliveries is no longer greylisted; 0 turns it off.
          deliveries: z.int().nonnegative().default(5),
          // A client's deliveries count at most once per this many seconds.
          intervalSeconds: z.int().nonnegative().default(3600),
        })
        .prefault({}),
      // Clients on a DNS allow list (reputation.dnswl.zones) skip greylisting.
      skipDnswl: z.boolean().default(true),
      // Key the triplet on the sender domain when its SPF authorizes the client (sender IP pools).
      spfDomainKeying: z.boolean().default(true),
      store: z
        .strictObject({
          // file: embedded, one process; nats-kv: shared by replicas (needs nats.url).
          type: z.enum(['file', 'nats-kv']).default('file'),
          // Journal of the file store (below stateDir).
          file: z.string().default('greylist/triplets.jsonl'),
          // Prefix of the NATS KV bucket names (<prefix>_triplets, <prefix>_clients, <prefix>_whitelist).
          bucketPrefix: z
            .string()
            .regex(/^[A-Za-z0-9_-]+$/)
            .default('smtpguard_greylist'),
          // Replicas of the KV buckets in a NATS cluster (1 for a single server, 3 for a 3-node cluster).
          replicas: z.int().min(1).max(5).default(1),
        })
        .prefault({}),
      // Where greylisting applies, as MailEnable does: server default, per domain (force = every mailbox),
      // per mailbox. Values: on | off (domains also: force).
      scope: z
        .strictObject({
          default: z.enum(['on', 'off']).default('on'),
          domains: z.record(z.string(), z.enum(['on', 'off', 'force'])).default({}),
          mailboxes: z.record(z.string(), z.enum(['on', 'off'])).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type BackendConfig = Config['edge']['backends']['auth'];
export type FailureMode = z.infer<typeof failureMode>;
