import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { z } from 'zod';

// The whole smtpguard configuration: one YAML file read by every service (each uses its section plus
// the shared ones). Unknown keys are errors, so a typo never silently falls back to a default.
// Every key is documented in docs/configuration.md; keep both in step.

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected "host:port", e.g. "127.0.0.1:7101"');

// One "host:port" (a DNS name resolving to every replica, e.g. a Kubernetes headless Service), or a
// comma-separated list of "ip:port" replicas.
const replicas = z
  .string()
  .regex(
    /^(\[[0-9a-fA-F:.]+\]|[^\s:[\],]+):\d{1,5}(,\s*(\[[0-9a-fA-F:.]+\]|[^\s:[\],]+):\d{1,5})*$/,
    'expected "host:port" or a list "ip:port,ip:port", e.g. "smtpguard-auth:7101"',
  )
  .refine(
    (v) =>
      !v.includes(',') ||
      v.split(',').every((p) => {
        const host = p
          .trim()
          .replace(/:\d+$/, '')
          .replace(/^\[(.*)\]$/, '$1');
        return isIP(host) !== 0;
      }),
    'a list of replicas must be IP addresses; for host names use one DNS name that resolves to every replica',
  );

// RFC 5321 4.5.1: the commands every SMTP server implements (edge.protocol.allowedCommands keeps them).
export const CORE_COMMANDS = ['HELO', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT'] as const;
// Commands an administrator may allow or not.
export const OPTIONAL_COMMANDS = ['HELP', 'AUTH', 'STARTTLS', 'VRFY'] as const;

const failureMode = z.enum(['fail-open', 'fail-closed']);

const port = z.int().min(0).max(65535);

const backend = (address: string, deadlineMs: number) =>
  z
    .strictObject({
      // Where the service's replicas listen: one host:port whose name resolves to every replica (in Kubernetes
      // the headless Service, e.g. smtpguard-auth:7101), or a list "ip:port,ip:port". Calls are balanced over
      // the replicas that are up and retried on another one when a replica cannot take them.
      address: replicas.default(address),
      // Deadline of one call; past it the call counts as a backend failure (the check's failureMode).
      deadlineMs: z.int().positive().default(deadlineMs),
    })
    .prefault({});

const checkMode = (mode: 'fail-open' | 'fail-closed') =>
  z.strictObject({ failureMode: failureMode.default(mode) }).prefault({});

const tlsFiles = z.strictObject({
  // PEM files: the certificate chain and its private key (relative paths: below the config file's directory).
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
});

// TLS of a listener. The files are read at start and again whenever they change (cert-manager rotates them).
const tls = z.strictObject({
  certFile: z.string().default(''),
  keyFile: z.string().default(''),
  // More certificates by the name the client asks for (SNI), e.g. {"mail.example.org": {certFile, keyFile}}.
  sni: z.record(z.string(), tlsFiles).default({}),
  // Oldest TLS version accepted.
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  // Without certFile/keyFile: generate a self-signed certificate at start (and warn) instead of offering no TLS.
  selfSigned: z.boolean().default(false),
});

const listener = (
  host: string,
  p: number,
  o: { requireAuth: boolean; greetingDelayMs: number; enabled?: boolean; implicitTls?: boolean },
) =>
  z
    .strictObject({
      enabled: z.boolean().default(o.enabled ?? true),
      host: z.string().default(host),
      port: port.default(p),
      // TLS from the first byte (RFC 8314 submissions, port 465) instead of STARTTLS.
      implicitTls: z.boolean().default(o.implicitTls ?? false),
      // This listener's own TLS settings; unset: edge.tls.
      tls: tls.optional(),
      // HAProxy's PROXY protocol (v1 and v2) from load balancers: a connection from one of these addresses
      // (IPs, CIDRs, ranges) must start with a PROXY header naming the real client; anyone else's PROXY header
      // is refused. Empty: off.
      proxyProtocol: z
        .strictObject({
          trustedProxies: z.array(z.string()).default([]),
          // Time a trusted load balancer gets to send the header.
          headerTimeoutMs: z.int().positive().default(5000),
        })
        .prefault({}),
      // Every transaction on this listener needs SMTP AUTH (or a trusted IP): 530 5.7.0 otherwise.
      requireAuth: z.boolean().default(o.requireAuth),
      // Pause before the 220 greeting (postscreen's pregreet test): a client that talks first is refused
      // (connect.early_talker). A client that waited once is greeted at once for pregreetPassSeconds.
      greetingDelayMs: z.int().nonnegative().max(60_000).default(o.greetingDelayMs),
      // How long a client that passed the pregreet test is greeted without delay.
      pregreetPassSeconds: z
        .int()
        .nonnegative()
        .default(24 * 3600),
      // Concurrent connections on this listener; more get 421 4.7.0 (connect.too_busy). 0: no limit.
      maxConnections: z.int().nonnegative().default(500),
      // Concurrent connections from one client (IPv4 address, IPv6 /64) on this listener; 0: no limit.
      maxConnectionsPerClient: z.int().nonnegative().default(20),
      // New connections from one client per minute on this listener; 0: no limit.
      connectionsPerClientPerMinute: z.int().nonnegative().default(120),
    })
    .prefault({});

const spoolHop = z.strictObject({
  type: z.literal('spool'),
  // Directory that receives one file per accepted message (relative paths: below stateDir).
  dir: z.string().default('spool'),
});

const smtpHop = z.strictObject({
  type: z.enum(['smtp', 'lmtp']),
  host: z.string().min(1),
  port: port,
  // Time the next hop gets to answer each step (connect, greeting, each command, the final dot);
  // past it the client gets 451 4.4.1 and nothing is kept.
  timeoutMs: z.int().positive().default(60_000),
  // Use STARTTLS when the next hop offers it.
  opportunisticTls: z.boolean().default(true),
  // Other next hops, tried in order when the one before cannot be reached (a refused or timed-out connection;
  // a next hop that answers, even with a refusal, is used). One that failed is tried last for 30 seconds.
  failover: z.array(z.strictObject({ host: z.string().min(1), port })).default([]),
  // Connections to the next hop kept open and reused between transactions.
  pool: z
    .strictObject({
      // Most connections open at once (busy and idle); a transaction waits up to timeoutMs for one.
      maxConnections: z.int().positive().default(50),
      // An idle pooled connection is closed after this long.
      idleTimeoutMs: z.int().positive().default(30_000),
    })
    .prefault({}),
});

// Messages and recipients an account may send per hour (fixed window); unset: the next level's value.
const sendingLimits = z
  .strictObject({
    messagesPerHour: z.int().nonnegative().optional(),
    recipientsPerHour: z.int().nonnegative().optional(),
  })
  .prefault({});

// An alias target or list member: a full address, or a local part (resolved in the alias's own domain).
const target = z
  .string()
  .regex(/^[^\s@<>]+(@[A-Za-z0-9.-]+\.?[A-Za-z0-9-]*)?$/, 'expected an address or a local part');

const mailbox = z.strictObject({
  address: z.email(),
  // scrypt hash as printed by `smtpguard hash-password` (never a clear-text password).
  passwordHash: z
    .string()
    .regex(/^scrypt\$/, 'expected a hash from `smtpguard hash-password` ("scrypt$...")'),
  disabled: z.boolean().default(false),
  // MailEnable "Prevent user from authenticating": AUTH gets 504 5.7.1; the mailbox still receives mail.
  preventAuth: z.boolean().default(false),
  // Addresses (or @domain for a whole domain) this account may use as sender besides its own and its aliases.
  sendAs: z.array(z.string()).default([]),
  // MailEnable "User can only send to their local domain" (applies when the domain's remoteSending is perMailbox).
  localOnly: z.boolean().default(false),
  sendingLimits,
});

// An alias: its targets, or {targets, disabled}.
const alias = z.union([
  z.array(target),
  z.strictObject({ targets: z.array(target), disabled: z.boolean().default(false) }),
]);

const list = z.strictObject({
  members: z.array(target).default([]),
  // "550 Distribution list is not active".
  disabled: z.boolean().default(false),
  // Who may post: anyone, members (the sender is a member), authenticated (SMTP AUTH or POP-before-SMTP), senders.
  post: z.enum(['anyone', 'members', 'authenticated', 'senders']).default('anyone'),
  // With post: senders, the addresses (or @domain) that may post.
  senders: z.array(z.string()).default([]),
});

const domain = z.strictObject({
  name: z.string().min(1),
  mailboxes: z.array(mailbox).default([]),
  // alias (local part or address) -> targets (addresses, or local parts of this domain), or {targets, disabled}.
  aliases: z.record(z.string(), alias).default({}),
  // Distribution lists: name (local part or address) -> members, disabled flag, who may post.
  lists: z.record(z.string(), list).default({}),
  // Mailbox that receives mail for unknown addresses of this domain; empty for none.
  catchAll: z.string().default(''),
  disabled: z.boolean().default(false),
  // Sender domains that may not send to this domain (MailEnable domain blacklist): 550 5.7.1 at RCPT.
  blockedSenderDomains: z.array(z.string()).default([]),
  // Local-sender authorization of this domain; unset keys follow auth.localSenders.
  localSenders: z
    .strictObject({
      requireAuthorization: z.boolean().optional(),
      refusal: z.enum(['permanent', 'temporary']).optional(),
      message: z.string().optional(),
      // Client IPs allowed to send as this domain without AUTH (GMS "AllowedSenderIP"): IP, CIDR, range, mask.
      allowedIps: z.array(z.string()).default([]),
    })
    .prefault({}),
  // allowed, localOnly, or perMailbox (each mailbox's localOnly). Applies when auth.remoteSending is perDomain.
  remoteSending: z.enum(['allowed', 'localOnly', 'perMailbox']).default('perMailbox'),
  sendingLimits,
});

// A domain this server takes mail for and passes on (backup MX, hMailServer route), without being local.
const relayDomain = z.strictObject({
  name: z.string().min(1),
  // Route list: the addresses accepted; empty: any address of the domain.
  recipients: z.array(z.string()).default([]),
});

// What a DNS list verdict does: reject (5xx at RCPT or DATA), defer (4xx), or tag (accept, add a header field,
// record the decision).
const listAction = z.enum(['reject', 'defer', 'tag']);

// Operators' error codes (Spamhaus: 127.255.255.252 typo, .254 public resolver, .255 excessive queries): an
// answer in these networks means "the query failed", never "listed".
const LIST_ERROR_ANSWERS = ['127.255.255.0/24'];

// A reply code of the action's class (5xx for reject, 4xx for defer); 0: the catalog's.
const replyCode = z.union([z.literal(0), z.int().min(400).max(599)]).default(0);

const listAnswers = {
  // Answers (A records) that count as a listing: IPs, CIDRs or ranges (127.0.0.2, 127.0.0.0/24, 127.0.0.2-11);
  // empty: any answer in 127.0.0.0/8 except 127.0.0.1 and errorAnswers (RFC 5782).
  answers: z.array(z.string()).default([]),
  // Bits of the answer's last octet that count (SURBL/URIBL-style bitmask, e.g. 8 for PH); 0: not used.
  bitmask: z.int().min(0).max(255).default(0),
  // Answers that mean the query failed (operators' error codes), never a listing.
  errorAnswers: z.array(z.string()).default(LIST_ERROR_ANSWERS),
};

// A DNS block list (client IP, or the addresses of links' hosts).
const blockZone = z.strictObject({
  zone: z.string().min(1),
  ...listAnswers,
  // Score a listing adds (postscreen-style); the action applies when the score reaches dnsbl.threshold.
  weight: z.number().default(1),
  action: listAction.default('reject'),
  // The reply's text instead of the catalog's ({client_ip}, {zone}, {answers} are filled in); empty: catalog.
  replyText: z.string().default(''),
  // The reply's code instead of the catalog's, within the action's class (550 for hMailServer's wording).
  replyCode,
});

// A DNS allow list: a listing adds its (negative) weight to the client's DNSBL score.
const allowZone = z.strictObject({
  zone: z.string().min(1),
  ...listAnswers,
  weight: z.number().max(0).default(-1),
});

// A URI block list (SURBL/URIBL style): registered domains of links are looked up.
const uriZone = z.strictObject({
  zone: z.string().min(1),
  ...listAnswers,
  action: z.enum(['reject', 'tag']).default('reject'),
  replyText: z.string().default(''),
  replyCode,
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
      // NATS unreachable at start: "buffer" keeps serving (decisions go to the outbox); "exit" stops the service.
      onUnavailable: z.enum(['buffer', 'exit']).default('buffer'),
      // Replicas of the decision stream in a NATS cluster (3 on a 3-node cluster, so a node loss loses nothing).
      decisionReplicas: z.int().min(1).max(5).default(1),
      // The on-disk outbox (below stateDir, one journal per service instance) every decision goes through before
      // it is published; what NATS has not acknowledged (NATS away, the process stopped or killed) is sent in
      // order once NATS is reachable, also by the next process. Beyond this many unacknowledged bytes new
      // decisions are dropped (counted and logged).
      outboxMaxBytes: z
        .int()
        .positive()
        .default(64 * 1024 * 1024),
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
          mx: listener('127.0.0.1', 2525, { requireAuth: false, greetingDelayMs: 1000 }),
          submission: listener('127.0.0.1', 2587, { requireAuth: true, greetingDelayMs: 0 }),
          // Submission over implicit TLS (RFC 8314, port 465); needs a certificate (edge.tls).
          submissions: listener('127.0.0.1', 2465, {
            requireAuth: true,
            greetingDelayMs: 0,
            enabled: false,
            implicitTls: true,
          }),
        })
        .prefault({}),
      // TLS of every listener (a listener's own `tls` replaces it). Without a certificate the edge offers no
      // STARTTLS (and an implicit-TLS listener cannot start), unless selfSigned.
      tls: tls.prefault({}),
      // HTTP health endpoints for an orchestrator's probes: GET /healthz answers 200 while the process runs;
      // GET /readyz answers 200 when the listeners are up, the edge is not draining (SIGTERM) and every backend
      // in requireBackends has a replica that accepts a connection, else 503; both with a JSON body.
      health: z
        .strictObject({
          // "host:port" of the HTTP server; empty: off.
          listen: z.union([z.literal(''), hostPort]).default(''),
          // Backends without which the edge is not ready. auth: without it every transaction is answered 4xx
          // (its checks are fail-closed). Leave out backends whose checks are fail-open (greylist by default):
          // taking every edge out of its load balancer would turn fail-open into no service.
          requireBackends: z.array(z.enum(['auth', 'reputation', 'greylist'])).default(['auth']),
          // How long /readyz waits for a backend connection before it counts the backend as unreachable.
          backendTimeoutMs: z.int().positive().max(10_000).default(1000),
        })
        .prefault({}),
      // Concurrent connections on all listeners together; more get 421 4.7.0 (connect.too_busy).
      maxConnections: z.int().positive().default(1000),
      // Allow AUTH without TLS on every listener. Without it, AUTH needs TLS except on a listener bound to a
      // loopback address. Only for when TLS ends at a trusted proxy in front of the edge.
      allowInsecureAuth: z.boolean().default(false),
      // Largest message accepted (SIZE); larger ones get 552 5.3.4.
      maxMessageBytes: z
        .int()
        .positive()
        .default(25 * 1024 * 1024),
      // Recipients per transaction; more get 452 4.5.3.
      maxRecipients: z.int().positive().default(100),
      // A message is held in memory while it arrives up to this size; a larger one goes to a file in
      // <stateDir>/messages until it is handed over (so memory does not grow with message size).
      messageMemoryBytes: z
        .int()
        .nonnegative()
        .default(1024 * 1024),
      // On SIGTERM: sessions in a transaction get this long to finish; then every session gets 421 4.3.2.
      shutdownGraceMs: z.int().nonnegative().default(10_000),
      // Clients that may relay without AUTH: IPs, CIDRs (10.0.0.0/8), masks (10.0.0.0/255.0.0.0), wildcards
      // (192.168.*.*), ranges (192.168.0.1-50), host names and .domains (forward-confirmed reverse DNS).
      trustedNetworks: z.array(z.string()).default([]),
      relay: z
        .strictObject({
          // authorized: AUTH or trusted IP may relay; open: anyone (never on the internet); closed: nobody.
          mode: z.enum(['authorized', 'open', 'closed']).default('authorized'),
          // UNSAFE (MailEnable ME-I0106 "local address map"): a sender address that exists here may relay
          // without authenticating. Anyone who guesses one address can relay spam through the server.
          localSenders: z.boolean().default(false),
        })
        .prefault({}),
      // Timeouts a slow client cannot stretch (every one answers 421 4.4.2 and closes).
      timeouts: z
        .strictObject({
          // The next complete command must arrive within this long after the last reply; bytes trickled
          // in do not extend it (RFC 5321 4.5.3.2.7: at least 5 minutes).
          commandMs: z.int().positive().default(300_000),
          // The whole message, from 354 to the final dot (RFC 5321 4.5.3.2.6: 10 minutes).
          dataMs: z.int().positive().default(600_000),
          // Average transfer rate a message must keep once it has run for minDataRateAfterMs; 0: no minimum.
          minDataBytesPerSecond: z.int().nonnegative().default(1024),
          minDataRateAfterMs: z.int().positive().default(30_000),
        })
        .prefault({}),
      // Protocol limits (RFC 5321 4.5.3.1) and the session error threshold.
      limits: z
        .strictObject({
          // Longest command line, CRLF included (RFC 5321: 512); longer lines get 500 5.5.2.
          commandLineOctets: z.int().min(512).default(512),
          // Longest AUTH line (RFC 4954 4: 12288).
          authLineOctets: z.int().min(512).default(12_288),
          // Longest line of a message, CRLF included (RFC 5321: 1000).
          textLineOctets: z.int().min(1000).default(1000),
          // Bytes without a line end after which the edge answers 421 4.7.0 and closes.
          unterminatedOctets: z.int().min(12_288).default(32_768),
          // Failed commands and refused recipients (5xx replies) a session may collect without delivering
          // a message; at this many the edge answers 421 4.7.0 and closes. 0: no limit.
          maxErrors: z.int().nonnegative().default(20),
          // Once this many errors happened, each further command is answered only after errorDelayMs.
          errorDelayAfter: z.int().nonnegative().default(10),
          errorDelayMs: z.int().nonnegative().max(60_000).default(0),
          // Received headers a message may carry (RFC 5321 6.3: loop detection, at least 100).
          maxReceivedHeaders: z.int().positive().default(100),
        })
        .prefault({}),
      protocol: z
        .strictObject({
          // Commands answered as usual; any other SMTP command gets 502 5.5.1. HELO, EHLO, MAIL, RCPT, DATA,
          // RSET, NOOP and QUIT (RFC 5321 4.5.1) cannot be removed. VRFY, when listed, answers 252.
          allowedCommands: z
            .array(z.enum([...CORE_COMMANDS, ...OPTIONAL_COMMANDS]))
            .default([...CORE_COMMANDS, 'HELP', 'AUTH', 'STARTTLS'])
            .refine(
              (l) => CORE_COMMANDS.every((c) => l.includes(c)),
              `must include ${CORE_COMMANDS.join(', ')} (RFC 5321 4.5.1)`,
            ),
          helo: z
            .strictObject({
              // Refuse a HELO/EHLO name that is not a fully qualified domain name (504 5.5.2).
              requireFqdn: z.boolean().default(false),
              // Refuse an address literal ([192.0.2.1]) that is not the client's address (550 5.7.1).
              literalMustMatch: z.boolean().default(true),
            })
            .prefault({}),
          // The null sender MAIL FROM:<> (bounces): accept (RFC 5321 requires it) or refuse (550 5.1.7).
          emptySender: z.enum(['accept', 'refuse']).default('accept'),
          // Bare LF, bare CR and NUL in a message: reject (554 5.6.0, SMTP smuggling) or normalize (bare
          // LF and CR become CRLF, NUL is removed). A message is never stored or forwarded with them.
          bareLineEndings: z.enum(['reject', 'normalize']).default('reject'),
          // Message lines longer than limits.textLineOctets: reject (500 5.5.2) or accept.
          longLines: z.enum(['reject', 'accept']).default('reject'),
        })
        .prefault({}),
      nextHop: z.discriminatedUnion('type', [spoolHop, smtpHop]).default({ type: 'spool', dir: 'spool' }),
      backends: z
        .strictObject({
          auth: backend('127.0.0.1:7101', 2000),
          reputation: backend('127.0.0.1:7102', 3000),
          greylist: backend('127.0.0.1:7103', 15_000),
        })
        .prefault({}),
      // What the edge keeps of the services' answers, so that a busy client does not cost a gRPC call per
      // lookup (docs/performance.md). An answer is used for at most the given seconds, and every cache is
      // emptied when the config is reloaded; failed lookups are never kept. 0 turns a cache off.
      cache: z
        .strictObject({
          // auth.ResolveRecipient and auth.ResolveSender answers, per address, sender and account: the directory
          // (auth.domains) is config, so a change reaches the edge at the next reload, or after these seconds.
          directorySeconds: z.int().nonnegative().max(3600).default(10),
          // reputation.CheckClient per client IP (DNS block/allow lists, FCrDNS): a newly listed client is seen
          // at most this late (postscreen keeps DNSBL results 1 hour by default).
          clientReputationSeconds: z.int().nonnegative().max(86_400).default(60),
          // reputation.CheckSender (SPF, by client IP, HELO and sender), CheckSenderDomain (by sender) and
          // CheckHelo (by client IP and HELO): DNS answers, which the reputation service caches for their TTL
          // anyway. Temporary errors (temperror, lookup errors) are never kept.
          senderChecksSeconds: z.int().nonnegative().max(3600).default(30),
          // Entries per cache; the oldest go first.
          maxEntries: z.int().nonnegative().default(10_000),
        })
        .prefault({}),
      // Policy checks. failureMode: what a check does when its backend fails or does not answer in time:
      // fail-open accepts and records the error, fail-closed answers 4xx so the client retries.
      checks: z
        .strictObject({
          // The directory lookup of recipients (auth). fail-open accepts for authorized clients only.
          recipient: checkMode('fail-closed'),
          // Authenticated sessions: the account is checked again before each transaction (auth).
          accountRecheck: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-closed'),
            })
            .prefault({}),
          dnsbl: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-closed'),
            })
            .prefault({}),
          greylist: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-open'),
              // Add "X-Greylist: delayed N seconds" to messages whose recipients were held back.
              delayHeader: z.boolean().default(true),
            })
            .prefault({}),
          // The sender at MAIL FROM (auth.ResolveSender): local-sender authorization, ownership, unknown senders.
          sender: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-closed'),
              // "Authenticated senders must use valid sender address": 551 5.7.1 otherwise.
              ownership: z.boolean().default(true),
              // Unauthenticated senders whose local address does not exist or is disabled: 551 5.7.1.
              unknownLocal: z.boolean().default(true),
            })
            .prefault({}),
          // POP-before-SMTP lookups (auth.popBeforeSmtp). fail-open: the session goes on without that
          // authorization (it may still be refused as unauthorized); fail-closed: 451 4.3.0.
          popBeforeSmtp: checkMode('fail-open'),
          // Hourly sending limits of accounts (auth.sendingLimits). fail-open: counted nowhere, accepted.
          sendingLimits: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-open'),
            })
            .prefault({}),
          spf: z
            .strictObject({
              // Evaluate SPF at MAIL FROM (decision spf.*; feeds greylist sender-pool keying). What each result
              // does is reputation.spf.
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-open'),
            })
            .prefault({}),
          // HELO name must resolve to the client's address (reputation.CheckHelo); opt-in, as in hMailServer.
          heloHost: z
            .strictObject({
              enabled: z.boolean().default(false),
              failureMode: failureMode.default('fail-open'),
            })
            .prefault({}),
          // The MAIL FROM domain must exist and accept mail (MX, or A/AAAA; not a null MX); opt-in.
          senderDomain: z
            .strictObject({
              enabled: z.boolean().default(false),
              failureMode: failureMode.default('fail-open'),
            })
            .prefault({}),
          // Links in the first text part of the message looked up in URI and IP block lists (reputation.uribl).
          uribl: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-open'),
              // Lines of the decoded first text part that are scanned (MailEnable: about 20).
              maxLines: z.int().positive().default(20),
              // Octets of the decoded text sent for scanning, at most.
              maxTextBytes: z
                .int()
                .positive()
                .max(1024 * 1024)
                .default(64 * 1024),
              // Octets of the raw message read to find the first text part.
              maxMessageBytes: z
                .int()
                .positive()
                .max(4 * 1024 * 1024)
                .default(256 * 1024),
            })
            .prefault({}),
          // DKIM, ARC and DMARC verification at the end of DATA (reputation.VerifyMessage): adds
          // Authentication-Results; DMARC policies per reputation.dmarc.
          messageAuth: z
            .strictObject({
              enabled: z.boolean().default(true),
              failureMode: failureMode.default('fail-open'),
              // Larger messages are not verified (their Authentication-Results says "none").
              maxMessageBytes: z
                .int()
                .positive()
                .default(25 * 1024 * 1024),
              // A header section larger than this (or a message without one) is not verified.
              maxHeaderBytes: z
                .int()
                .positive()
                .default(256 * 1024),
              // Time for the whole verification: streaming the message to the service and its answer.
              timeoutMs: z.int().positive().default(20_000),
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
      // Accept SASL PLAIN with an authorization identity other than the authentication identity (the session
      // then still acts as the authenticated account). Off: 535 5.7.8.
      allowAuthzid: z.boolean().default(false),
      domains: z.array(domain).default([]),
      // Domains taken for and passed on without being local (no relay authorization needed), with route lists.
      relayDomains: z.array(relayDomain).default([]),
      // A sender in a local domain must come from an authorized session (GMS alert 8013, IceWarp "Reject if
      // originator's domain is local and not authorized"); per domain under auth.domains[].localSenders.
      localSenders: z
        .strictObject({
          requireAuthorization: z.boolean().default(true),
          // permanent: 550 5.7.1; temporary: 451 4.7.1.
          refusal: z.enum(['permanent', 'temporary']).default('permanent'),
          // The administrator's words for the refusal (GMS "AllowedSenderIPMes"); empty: the catalog's.
          message: z.string().default(''),
        })
        .prefault({}),
      // MailEnable sender policy: allowed, localOnly (452 for remote recipients), or perDomain (the domains decide).
      remoteSending: z.enum(['allowed', 'localOnly', 'perDomain']).default('perDomain'),
      // Default hourly limits of every account (0: none); domains and mailboxes override.
      sendingLimits: z
        .strictObject({
          messagesPerHour: z.int().nonnegative().default(0),
          recipientsPerHour: z.int().nonnegative().default(0),
        })
        .prefault({}),
      // Failed logins (SMTP AUTH, and those Dovecot reports) per account and per client IP.
      lockout: z
        .strictObject({
          enabled: z.boolean().default(true),
          // Failures of one account within windowSeconds that lock it.
          accountThreshold: z.int().positive().default(10),
          // Failures from one client IP (any accounts) within windowSeconds that lock the IP.
          clientThreshold: z.int().positive().default(30),
          windowSeconds: z.int().positive().default(900),
          // How long a lock lasts (MailEnable 504 "Access to this user account has been denied").
          lockoutSeconds: z.int().positive().default(900),
          // Client IPs whose failures are never counted and which are never locked (IP, CIDR, range, mask).
          allowlist: z.array(z.string()).default([]),
        })
        .prefault({}),
      popBeforeSmtp: z
        .strictObject({
          // A POP3/IMAP login lets its client IP send (and relay) as if authenticated, for windowSeconds (IceWarp "POP before SMTP (Min)" × 60).
          enabled: z.boolean().default(false),
          windowSeconds: z.int().positive().max(86_400).default(1200),
          // The entry authorizes only senders the account may use (as SMTP AUTH would); off: any sender.
          sendersOfAccountOnly: z.boolean().default(true),
          // Dovecot's auth policy server protocol (auth_policy_server_url): "host:port" to listen on; empty: off.
          dovecotPolicyListen: z.string().default(''),
          // When set, Dovecot must send this Authorization header value (auth_policy_server_api_header).
          dovecotPolicyAuthorization: z.string().default(''),
          // NATS subject of login events from other mailbox servers (JSON {account, clientIp, protocol}); needs nats.url.
          natsSubject: z.string().default('smtpguard.login.v1.>'),
        })
        .prefault({}),
      // Where logins, lockout and sending counters live: file (one process) or nats-kv (replicas; needs nats.url).
      store: z
        .strictObject({
          type: z.enum(['file', 'nats-kv']).default('file'),
          // Journal of the file store (below stateDir).
          file: z.string().default('auth/state.jsonl'),
          // KV buckets <prefix>_logins, <prefix>_lockout, <prefix>_sending.
          bucketPrefix: z
            .string()
            .regex(/^[A-Za-z0-9_-]+$/)
            .default('smtpguard_auth'),
          replicas: z.int().min(1).max(5).default(1),
          // While NATS cannot answer (a server lost, a new leader being elected), a read or write is tried again for
          // this long. Keep it below edge.backends.auth.deadlineMs.
          retryMs: z.int().nonnegative().default(1500),
        })
        .prefault({}),
    })
    .prefault({}),

  reputation: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:7102'),
      dns: z
        .strictObject({
          // DNS servers ("ip", "ip:port", "[ipv6]:port"); empty: the system resolvers.
          servers: z.array(z.string()).default([]),
          // Time one server gets to answer one query; then the next server (or try) is asked. timeoutMs x tries
          // stays below edge.backends.reputation.deadlineMs, so a list that does not answer is not a failed call.
          timeoutMs: z.int().positive().default(1000),
          tries: z.int().positive().default(2),
          // The DNS cache shared by every check: answers kept for their TTL, within these bounds.
          cache: z
            .strictObject({
              // Answers held at most (least recently used go first).
              maxEntries: z.int().positive().default(20_000),
              minTtlSeconds: z.int().nonnegative().default(0),
              maxTtlSeconds: z.int().nonnegative().default(86_400),
              // "No such name/record" answers without an SOA are kept this long (RFC 2308).
              negativeTtlSeconds: z.int().nonnegative().default(300),
            })
            .prefault({}),
        })
        .prefault({}),
      // RFC 5782 section 5 health checks of every DNS list (127.0.0.2 / "test" listed, 127.0.0.1 / "invalid"
      // not), at start and periodically: a list that fails is disabled until it passes again.
      listHealth: z
        .strictObject({
          enabled: z.boolean().default(true),
          intervalSeconds: z.int().positive().default(300),
        })
        .prefault({}),
      // Clients whose DNS list (DNSBL, URIBL) verdicts never refuse or tag them: IPs, CIDRs, ranges. Unlike
      // edge.trustedNetworks they may not relay.
      exemptClients: z.array(z.string()).default([]),
      dnsbl: z
        .strictObject({
          zones: z.array(blockZone).default([]),
          // Score (the weights of the lists that list the client, DNSWL weights included) at which the
          // strongest action of the listing zones applies.
          threshold: z.number().positive().default(1),
        })
        .prefault({}),
      // DNS allow lists (DNSWL): listed clients skip greylisting (greylist.skipDnswl) and their (negative)
      // weight lowers the DNSBL score.
      dnswl: z
        .strictObject({
          zones: z.array(allowZone).default([]),
        })
        .prefault({}),
      // Forward-confirmed reverse DNS of the client (needed for host-name whitelist rules).
      fcrdns: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
      // Total time for one SPF evaluation; past it the result is temperror (RFC 7208 4.6.4).
      spfTimeoutMs: z.int().positive().default(5000),
      // What each SPF result does at MAIL FROM (RFC 7208 8).
      spf: z
        .strictObject({
          // fail: reject (5xx), tag, or accept (record only).
          fail: z.enum(['reject', 'tag', 'accept']).default('accept'),
          // Reply code of a rejected fail: 550 (RFC 7208 8.4, hMailServer) or 554 (MailEnable).
          failReplyCode: z.union([z.literal(550), z.literal(554)]).default(550),
          softfail: z.enum(['accept', 'tag', 'defer']).default('accept'),
          // temperror: defer (451 4.4.3, RFC 7208 8.6) or accept.
          temperror: z.enum(['defer', 'accept']).default('defer'),
          // permerror (a broken record): accept, tag or reject (550 5.5.2, RFC 7208 8.7).
          permerror: z.enum(['accept', 'tag', 'reject']).default('accept'),
          // Add a Received-SPF header field (RFC 7208 9.1) to accepted messages.
          receivedSpfHeader: z.boolean().default(true),
        })
        .prefault({}),
      // HELO name checks (edge.checks.heloHost): a name that does not resolve to the client is refused
      // (550 5.7.1) or tagged.
      helo: z.strictObject({ action: z.enum(['reject', 'tag']).default('reject') }).prefault({}),
      // Sender domain checks (edge.checks.senderDomain): reply code of a domain that cannot receive mail,
      // 550 (hMailServer) or 501 (MailEnable).
      senderDomain: z
        .strictObject({ replyCode: z.union([z.literal(550), z.literal(501)]).default(550) })
        .prefault({}),
      // URI block lists on the links of the message's first text part (edge.checks.uribl).
      uribl: z
        .strictObject({
          // Lists of registered domains (multi.surbl.org style).
          zones: z.array(uriZone).default([]),
          // IP lists for links to IP literals and for the addresses of links' hosts.
          ipZones: z.array(uriZone).default([]),
          // DNS lookups one message may cause (domains, host addresses, list queries); beyond it the rest of
          // the links are not checked.
          maxLookups: z.int().positive().default(40),
        })
        .prefault({}),
      // DMARC policies (RFC 7489) of failing messages (edge.checks.messageAuth).
      dmarc: z
        .strictObject({
          // p=reject: reject (550 5.7.1), tag, or accept (record only).
          reject: z.enum(['reject', 'tag', 'accept']).default('tag'),
          // p=quarantine: tag or accept.
          quarantine: z.enum(['tag', 'accept']).default('tag'),
        })
        .prefault({}),
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
          // While NATS cannot answer (a server lost, a new leader being elected, a reconnect), a read or write is
          // tried again for this long before the check counts as failed. Keep it below
          // edge.backends.greylist.deadlineMs.
          retryMs: z.int().nonnegative().default(12_000),
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
