// Metrics end to end: the whole system with each service's Prometheus endpoint (OTEL_METRICS_EXPORTER=prometheus,
// the SDK's own exporter), a real nats-server, DNS server and capture next hop. Traffic that exercises each
// metric (an accepted message, a relay refusal, a DNS-listed client, a greylisted recipient, a connection over
// the per-client limit, a backend that is gone), then each value is read back from the scrape.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type CaptureServer,
  type NatsServer,
  startCaptureServer,
  startNats,
  waitFor,
} from '@smtpguard/testing';
import {
  type DashboardFile,
  dashboardProblems,
  logQueryProblems,
  readDashboards,
} from '../harness/dashboards.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { type Sample, scrape, total } from '../harness/prometheus.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { smtpSend } from '../harness/smtp-client.js';
import { ALICE, startTestSystem, type TestSystem, testMessage } from '../harness/system.js';

let nats: NatsServer;
let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;
const scraped: Record<string, Sample[]> = {};

before(async () => {
  nats = await startNats();
  dns = await startDnsServer({
    '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'], TXT: ['listed for testing'] },
    '40.0.0.127.dnsbl.test': { A: ['127.0.0.2'], TXT: ['listed for testing'] },
  });
  hop = await startCaptureServer();
  sys = await startTestSystem({
    natsUrl: nats.url,
    dnsServer: dns.address,
    nextHopPort: hop.port,
    greylistDelaySeconds: 300,
    metrics: true,
    override: (c) => {
      c.edge.listeners.mx.maxConnectionsPerClient = 1;
    },
  });
  const message = testMessage(ALICE.user, 'bob@remote.example', 'metrics');
  // Accepted: authenticated submission relayed to the next hop.
  const ok = await smtpSend({
    port: sys.submissionPort,
    auth: ALICE,
    from: ALICE.user,
    to: ['bob@remote.example'],
    message,
  });
  assert.equal(ok.code, 250, ok.response);
  // Relay denied, greylisted, DNS-listed.
  const relay = await smtpSend({
    port: sys.mxPort,
    localAddress: '127.0.0.30',
    from: 'a@sender.example',
    to: ['x@remote.example'],
    message,
  });
  assert.equal(relay.code, 550, relay.response);
  const grey = await smtpSend({
    port: sys.mxPort,
    localAddress: '127.0.0.31',
    from: 'a@sender.example',
    to: [ALICE.user],
    message,
  });
  assert.equal(grey.code, 451, grey.response);
  const listed = await smtpSend({
    port: sys.mxPort,
    localAddress: '127.0.0.40',
    from: 'a@sender.example',
    to: [ALICE.user],
    message,
  });
  assert.equal(listed.code, 554, listed.response);
  // A second connection of one client while its first is open: refused by edge.listeners.mx.maxConnectionsPerClient.
  const first = await RawSmtp.connect(sys.mxPort, '127.0.0.32');
  await first.read();
  const second = await RawSmtp.connect(sys.mxPort, '127.0.0.32');
  assert.match(await second.read(), /^421 4\.7\.0/);
  first.destroy();
  scraped.greylist = await scrape(sys.metricsPorts.greylist as number);
  // The greylist service gone: the edge's call fails (fail-open), counted as a backend error.
  sys.system.services.get('greylist')?.child.kill('SIGKILL');
  await sys.system.services.get('greylist')?.exited;
  const open = await smtpSend({
    port: sys.mxPort,
    localAddress: '127.0.0.33',
    from: 'a@sender.example',
    to: [ALICE.user],
    message,
  });
  assert.ok(open.code > 0, open.response);
  // The Prometheus exporter collects on scrape; decisions are published asynchronously.
  await waitFor('decisions published', async () => {
    scraped.edge = await scrape(sys.metricsPorts['smtp-edge'] as number);
    const published = total(scraped.edge, 'smtpguard_decisions_published_total') > 5;
    return published && total(scraped.edge, 'smtpguard_smtp_connections_active') === 0 ? true : undefined;
  });
  scraped.reputation = await scrape(sys.metricsPorts.reputation as number);
  scraped.auth = await scrape(sys.metricsPorts.auth as number);
});

after(async () => {
  await sys?.stop();
  await hop?.close();
  await dns?.close();
  await nats?.stop();
});

const edge = (name: string, labels: Record<string, string> = {}) => total(scraped.edge ?? [], name, labels);

describe('metrics (Prometheus scrape of each service)', () => {
  it('counts connections: admitted per listener, open now, refused by a limit', () => {
    assert.equal(edge('smtpguard_smtp_connections_total', { listener: 'submission' }), 1);
    assert.equal(edge('smtpguard_smtp_connections_total', { listener: 'mx' }), 5);
    assert.equal(edge('smtpguard_smtp_connections_active'), 0, 'all closed');
    assert.equal(
      edge('smtpguard_smtp_connections_refused_total', {
        listener: 'mx',
        reason: 'connect.too_many_from_client',
      }),
      1,
    );
  });

  it('counts replies by code and reason, and the messages and octets accepted', () => {
    assert.equal(edge('smtpguard_smtp_replies_total', { code: '550', reason: 'relay.denied' }), 1);
    assert.equal(edge('smtpguard_smtp_replies_total', { code: '451', reason: 'greylist.new' }), 1);
    assert.equal(edge('smtpguard_smtp_replies_total', { code: '554', reason: 'dnsbl.listed' }), 1);
    assert.equal(edge('smtpguard_smtp_replies_total', { code: '250', reason: 'queue.accepted' }), 2);
    assert.equal(edge('smtpguard_messages_accepted_total'), 2);
    assert.ok(edge('smtpguard_messages_accepted_bytes_total', { listener: 'submission' }) > 200);
  });

  it('counts decisions by check and outcome, with latency histograms per check', () => {
    assert.equal(
      edge('smtpguard_decisions_total', { check: 'relay', outcome: 'fail', reason: 'relay.denied' }),
      1,
    );
    assert.equal(edge('smtpguard_decisions_total', { check: 'greylist', outcome: 'error' }), 1);
    assert.ok(edge('smtpguard_check_duration_count', { check: 'client-reputation' }) >= 6);
    assert.ok(edge('smtpguard_check_duration_sum', { check: 'client-reputation' }) > 0);
    const buckets = (scraped.edge ?? []).filter(
      (s) => s.name === 'smtpguard_check_duration_bucket' && s.labels.check === 'greylist',
    );
    assert.ok(buckets.some((b) => b.labels.le === '+Inf'));
  });

  it('times backend calls and counts their errors, by gRPC service, method and status', () => {
    const grey = 'smtpguard.greylist.v1.GreylistService';
    assert.ok(edge('rpc_client_call_duration_count', { rpc_service: grey, rpc_grpc_status_code: 'OK' }) >= 1);
    assert.equal(
      edge('smtpguard_backend_errors_total', {
        rpc_service: grey,
        rpc_method: 'Check',
        error_type: 'UNAVAILABLE',
      }),
      1,
    );
    assert.ok(edge('rpc_client_call_duration_count', { rpc_service: 'smtpguard.auth.v1.AuthService' }) >= 1);
  });

  it('times the next hop per step', () => {
    for (const operation of ['rcpt', 'data', 'commit']) {
      assert.equal(edge('smtpguard_next_hop_duration_count', { operation, outcome: 'ok' }), 2, operation);
    }
  });

  it('reports the decisions published to JetStream', () => {
    assert.ok(edge('smtpguard_decisions_published_total') > 5);
    assert.equal(edge('smtpguard_decisions_dropped_total'), 0);
  });

  it('reports the DNS lists (health, per-list query latency) and the DNS cache of the reputation service', () => {
    const rep = (name: string, labels: Record<string, string> = {}) =>
      total(scraped.reputation ?? [], name, labels);
    assert.equal(rep('smtpguard_dnsl_enabled', { zone: 'dnsbl.test', kind: 'ip' }), 1);
    assert.equal(rep('smtpguard_dnsl_health_checks_total', { zone: 'dnsbl.test' }), 1);
    assert.equal(rep('smtpguard_dnsl_query_duration_count', { zone: 'dnsbl.test', outcome: 'listed' }), 1);
    assert.ok(rep('smtpguard_dnsl_query_duration_count', { zone: 'dnsbl.test', outcome: 'not_listed' }) >= 4);
    assert.ok(rep('dns_lookup_duration_count', { dns_question_type: 'A' }) >= 1);
    assert.ok(rep('smtpguard_dns_cache_misses_total') >= 1);
    assert.ok(rep('smtpguard_dns_queries_total') >= rep('smtpguard_dns_cache_misses_total'));
  });

  it('times the greylist store and counts the greylist service decisions', () => {
    const grey = (name: string, labels: Record<string, string> = {}) =>
      total(scraped.greylist ?? [], name, labels);
    assert.ok(
      grey('smtpguard_greylist_store_duration_count', {
        store: 'file',
        operation: 'updateTriplet',
        outcome: 'ok',
      }) >= 1,
    );
    assert.equal(
      grey('smtpguard_decisions_total', { service: 'greylist', reason: 'greylist.new', outcome: 'defer' }),
      1,
    );
  });

  it('reports one sample of each metric (diagnostic)', (t) => {
    const seen = new Set<string>();
    for (const [svc, samples] of Object.entries(scraped)) {
      for (const x of samples) {
        if (seen.has(x.name) || x.name === 'target_info' || x.name.endsWith('_bucket')) continue;
        seen.add(x.name);
        const { otel_scope_name: _scope, ...labels } = x.labels;
        t.diagnostic(`${svc}: ${x.name}${JSON.stringify(labels)} ${x.value}`);
      }
    }
    assert.ok(seen.size >= 25, `${seen.size} metrics`);
  });

  it('keeps label values bounded: no addresses', () => {
    for (const [svc, samples] of Object.entries(scraped)) {
      for (const s of samples) {
        if (s.name === 'target_info') continue;
        for (const [k, v] of Object.entries(s.labels))
          if (k !== 'otel_scope_name') assert.doesNotMatch(v, /@|127\.0\.0\./, `${svc} ${s.name}`);
      }
    }
  });
});

describe('refusals as log lines (Loki-ready)', () => {
  it('logs each refusal at info as one JSON object with its reason, reply code and trace id', () => {
    const line = sys.system.logs.find((l) => l.event === 'decision' && l.reason === 'relay.denied');
    assert.ok(line, 'a decision log line for relay.denied');
    assert.equal(line.level, 'info');
    assert.equal(line.service, 'smtp-edge');
    assert.equal(line.reply_code, 550);
    assert.match(String(line.trace_id), /^[0-9a-f]{32}$/);
    assert.equal(line.client_ip, '127.0.0.30');
    // A refusal by smtp-server's own reply (no check span active) carries its trace id too.
    const own = sys.system.logs.find((l) => l.event === 'decision' && l.reason === 'data.need_rcpt');
    assert.match(String(own?.trace_id), /^[0-9a-f]{32}$/);
  });
});

describe('Grafana dashboards (charts/smtpguard/dashboards) against the scrape', () => {
  const dir = new URL('../../../charts/smtpguard/dashboards/', import.meta.url);
  const all = () => Object.values(scraped).flat();

  it('ships overview, policy, backends and DNS lists dashboards', () => {
    const uids = readDashboards(dir).map((d) => d.json.uid);
    assert.deepEqual(uids.sort(), [
      'smtpguard-backends',
      'smtpguard-dns-lists',
      'smtpguard-overview',
      'smtpguard-policy',
    ]);
  });

  it('names only metrics and labels the services export', () => {
    assert.deepEqual(dashboardProblems(readDashboards(dir), all()), []);
  });

  it('the logs panel asks Loki only for fields a refusal decision log line has', () => {
    // A refusal the run produced (relay denied), as the edge logged it: the line Loki would hold.
    const line = sys.system.logs.find(
      (l) => l.event === 'decision' && l.reason === 'relay.denied' && Number(l.reply_code) >= 400,
    );
    assert.ok(line, 'the edge logged the relay refusal as a decision line');
    const dashboards = readDashboards(dir);
    assert.ok(
      dashboards.some((d) =>
        d.json.panels.some((p) => p.targets?.some((t) => t.datasource?.type === 'loki')),
      ),
      'a Loki panel exists',
    );
    assert.deepEqual(logQueryProblems(dashboards, line), []);
    // And it would notice one that is not there.
    const bad: DashboardFile = {
      file: 'bad.json',
      json: {
        uid: 'bad',
        panels: [
          {
            title: 'l',
            targets: [
              {
                datasource: { type: 'loki' },
                expr: '{container="x"} | json | event="decision" | result="fail" | line_format "{{.client}}"',
              },
            ],
          },
        ],
      },
    };
    assert.deepEqual(logQueryProblems([bad], line), [
      'bad.json "l": field result is not in a decision log line',
      'bad.json "l": field client is not in a decision log line',
    ]);
  });

  it('would notice a metric or label that does not exist', () => {
    const bad: DashboardFile = {
      file: 'bad.json',
      json: {
        uid: 'bad',
        panels: [
          {
            title: 'p',
            targets: [
              { expr: 'sum(rate(smtpguard_sessions_total[5m]))' },
              { expr: 'sum by (result) (rate(smtpguard_decisions_total{job=~"$job"}[5m]))' },
              { expr: 'rate(smtpguard_smtp_replies_total{k8s_namespace_name="x"}[5m])' },
            ],
          },
        ],
        templating: {
          list: [{ name: 'ns', query: 'label_values(smtpguard_smtp_replies_total, namespace)' }],
        },
      },
    };
    assert.deepEqual(dashboardProblems([bad], all()), [
      'bad.json "p": metric smtpguard_sessions_total is not exported',
      'bad.json "p": grouping label result is on none of smtpguard_decisions_total',
      'bad.json "p": label k8s_namespace_name is not on smtpguard_smtp_replies_total',
      'bad.json variable ns: label namespace is not on smtpguard_smtp_replies_total',
    ]);
  });
});
