import { Readable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import { reputation } from '@smtpguard/contracts';
import { clientStreamHandler, GrpcStatusError, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import { checkClient } from '../client.js';
import { checkContent } from '../content.js';
import { checkHelo } from '../helo.js';
import { verifyMessage } from '../message-auth.js';
import { checkSenderDomain } from '../sender-domain.js';
import type { Reputation } from '../service.js';
import { checkSpf, spfVerdict } from '../spf.js';

// A domain name as HELO/EHLO may give it: labels of letters, digits, hyphens (and underscores, as Windows hosts).
const HELO_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/i;

function clientIp(session: { clientIp?: string } | undefined): string {
  const ip = session?.clientIp ?? '';
  if (!ip) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip is required');
  return ip;
}

/** gRPC handlers of smtpguard.reputation.v1: requests in, the logic's verdicts out. */
export function reputationServiceBinding(svc: Reputation): ServiceBinding {
  const lists = () => ({ resolver: svc.resolver, health: svc.health });
  const implementation: reputation.ReputationServiceServer = {
    checkClient: unaryHandler(async (req: reputation.CheckClientRequest) => {
      const r = await checkClient(lists(), svc.rep, clientIp(req.session));
      return reputation.CheckClientResponse.fromPartial({
        listed: r.block.hits.length > 0,
        blockHits: r.block.hits.map(({ zone, answers, txt }) => ({ zone, answers, txt })),
        allowHits: r.allow.hits.map(({ zone, answers, txt }) => ({ zone, answers, txt })),
        failedZones: [...r.block.failedZones, ...r.allow.failedZones],
        disabledZones: [...r.block.disabledZones, ...r.allow.disabledZones],
        reverseHostname: r.hostname,
        fcrdnsVerified: r.verified,
        score: r.score,
        verdict: r.verdict,
        reasonCode: r.verdict.reasonCode,
      });
    }),
    checkHelo: unaryHandler(async (req: reputation.CheckHeloRequest) => {
      const helo = req.helo || req.session?.helo || '';
      const r = await checkHelo(svc.resolver, svc.rep, clientIp(req.session), helo);
      const name = helo.replace(/\.$/, '');
      return reputation.CheckHeloResponse.fromPartial({
        validSyntax: HELO_NAME.test(name) || /^\[[^\]]+\]$/.test(name),
        fqdn: HELO_NAME.test(name) && name.includes('.'),
        matchesIp: r.matches,
        addresses: r.addresses,
        verdict: r.verdict,
        reasonCode: r.verdict.reasonCode,
      });
    }),
    checkSender: unaryHandler(async (req: reputation.CheckSenderRequest) => {
      const s = req.session;
      const ip = clientIp(s);
      const out = await checkSpf(svc.resolver, {
        sender: s?.sender ?? '',
        ip,
        helo: s?.helo ?? '',
        mta: svc.mta,
        timeoutMs: svc.rep.spfTimeoutMs,
      });
      const v = spfVerdict(svc.rep, out, s?.sender ?? '');
      return reputation.CheckSenderResponse.fromPartial({
        spf: out.result,
        spfDomain: out.domain,
        spfExplanation: out.explanation,
        receivedSpf: out.receivedSpf,
        verdict: v,
        reasonCode: v.reasonCode,
      });
    }),
    checkSenderDomain: unaryHandler(async (req: reputation.CheckSenderDomainRequest) => {
      clientIp(req.session);
      const r = await checkSenderDomain(svc.resolver, svc.rep, req.session?.sender ?? '');
      return reputation.CheckSenderDomainResponse.fromPartial({
        domain: r.domain,
        mailHosts: r.mailHosts,
        nullMx: r.nullMx,
        verdict: r.verdict,
      });
    }),
    checkContent: unaryHandler(async (req: reputation.CheckContentRequest) => {
      const r = await checkContent(lists(), svc.rep, {
        text: req.text,
        html: req.html,
        clientIp: clientIp(req.session),
      });
      return reputation.CheckContentResponse.fromPartial({
        listed: r.hits.length > 0,
        hits: r.hits.map((h) => ({
          uri: h.uri,
          host: h.host,
          hit: { zone: h.hit.zone, answers: h.hit.answers, txt: h.hit.txt },
        })),
        failedZones: r.failedZones,
        links: r.links,
        lookups: r.lookups,
        verdict: r.verdict,
        reasonCode: r.verdict.reasonCode,
      });
    }),
    verifyMessage: clientStreamHandler(async (requests: AsyncIterable<reputation.VerifyMessageRequest>) => {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'no message');
      const s = first.value.session;
      const ip = clientIp(s);
      const body = Readable.from(
        (async function* () {
          if (first.value.chunk.length) yield Buffer.from(first.value.chunk);
          for (let n = await it.next(); !n.done; n = await it.next()) {
            if (n.value.chunk.length) yield Buffer.from(n.value.chunk);
          }
        })(),
      );
      const r = await verifyMessage(svc.resolver, svc.rep, body, {
        ip,
        helo: s?.helo ?? '',
        sender: s?.sender ?? '',
        mta: svc.mta,
      });
      return reputation.VerifyMessageResponse.fromPartial({
        authenticationResults: r.authenticationResults,
        dkim: r.dkim,
        dmarc: r.dmarc,
        dmarcPolicy: r.dmarcPolicy,
        arc: r.arc,
        spf: r.spf,
        verdict: r.verdict,
      });
    }),
  };
  return {
    name: 'smtpguard.reputation.v1.ReputationService',
    definition: reputation.ReputationServiceService,
    implementation,
  };
}
