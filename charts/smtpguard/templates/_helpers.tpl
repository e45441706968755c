{{/*
Names, labels and the pieces shared by the four services.
*/}}

{{- define "smtpguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-smtpguard, or just <release> when it already contains the chart name.
Component resources append the service name (<fullname>-auth), so keep room for it.
*/}}
{{- define "smtpguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "smtpguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of a component's resources (Deployment, Service): <fullname>-<service>.
Input: dict root component
*/}}
{{- define "smtpguard.componentName" -}}
{{- printf "%s-%s" (include "smtpguard.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Input: dict root component (component may be empty: the whole release).
*/}}
{{- define "smtpguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smtpguard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
Standard labels. Input: dict root component.
*/}}
{{- define "smtpguard.labels" -}}
helm.sh/chart: {{ include "smtpguard.chart" .root }}
{{ include "smtpguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: smtpguard
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "smtpguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smtpguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Fixed container ports. The services take them from the rendered config, so they are not values.
*/}}
{{- define "smtpguard.grpcPort" -}}
{{- get (dict "auth" 7101 "reputation" 7102 "greylist" 7103) . }}
{{- end }}

{{/*
The values block of a component: smtp-edge -> .Values.edge, others by name.
Input: dict root component. Output: YAML of the block (use with fromYaml).
*/}}
{{- define "smtpguard.componentValues" -}}
{{- if eq .component "smtp-edge" }}
{{- toYaml .root.Values.edge }}
{{- else }}
{{- toYaml (index .root.Values .component) }}
{{- end }}
{{- end }}

{{/*
Image reference. Input: dict root values (the component's values).
*/}}
{{- define "smtpguard.image" -}}
{{- $tag := .values.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion | toString }}
{{- with .root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .) $.values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
A Kubernetes quantity ("10Gi", "512M", "1000") in bytes, for the NATS config.
*/}}
{{- define "smtpguard.bytes" -}}
{{- $q := toString . }}
{{- $num := regexFind "^[0-9]+" $q | int64 }}
{{- $unit := trimPrefix (toString $num) $q }}
{{- $mult := get (dict "" 1 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $unit }}
{{- if not $mult }}{{ fail (printf "%q is not a size (e.g. 10Gi)" $q) }}{{ end }}
{{- mul $num $mult }}
{{- end }}

{{/*
NATS URL the services use: this release's NATS Service, externalNats.url, or "" (embedded mode).
*/}}
{{- define "smtpguard.natsUrl" -}}
{{- if and .Values.nats.enabled .Values.externalNats.url }}
{{- fail "set either nats.enabled=true (NATS run by this chart) or externalNats.url (an existing server), not both" }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "smtpguard.componentName" (dict "root" . "component" "nats")) .Release.Namespace }}
{{- else }}
{{- .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/*
Replicas of the decision stream and the KV buckets: nats.decisionReplicas, or (0) the servers run
here (1 or 3), or 1 for an external server.
*/}}
{{- define "smtpguard.streamReplicas" -}}
{{- $r := int .Values.nats.decisionReplicas }}
{{- if and (eq $r 0) .Values.nats.enabled }}{{ $r = int .Values.nats.replicas }}{{ end }}
{{- if eq $r 0 }}{{ $r = 1 }}{{ end }}
{{- if and .Values.nats.enabled (gt $r (int .Values.nats.replicas)) }}
{{- fail (printf "nats.decisionReplicas (%d) cannot exceed nats.replicas (%d): JetStream needs a server per replica" $r (int .Values.nats.replicas)) }}
{{- end }}
{{- $r }}
{{- end }}

{{/*
Ports of a comma-separated list of URLs, as a JSON list. Input: dict urls default.
URLs without a port get the scheme's default (https 443, http 80) or the given default.
*/}}
{{- define "smtpguard.urlPorts" -}}
{{- $ports := list }}
{{- range $u := splitList "," .urls }}
{{- $u = trim $u }}
{{- if $u }}
{{- $scheme := regexFind "^[a-zA-Z][a-zA-Z0-9+.-]*://" $u | trimSuffix "://" | lower }}
{{- $rest := regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" $u "" }}
{{- $rest = regexReplaceAll "^[^@/]*@" $rest "" }}
{{- $hostport := regexFind "^[^/?#]*" $rest }}
{{- $p := regexFind ":[0-9]+$" $hostport | trimPrefix ":" }}
{{- if $p }}
{{- $ports = append $ports (atoi $p) }}
{{- else if eq $scheme "https" }}
{{- $ports = append $ports 443 }}
{{- else if eq $scheme "http" }}
{{- $ports = append $ports 80 }}
{{- else }}
{{- $ports = append $ports (int $.default) }}
{{- end }}
{{- end }}
{{- end }}
{{- $ports | uniq | toJson }}
{{- end }}

{{/*
True ("true") when the user's config sets a key path. Input: dict config path.
*/}}
{{- define "smtpguard.hasPath" -}}
{{- $cur := .config }}
{{- $found := true }}
{{- range $k := .path }}
{{- if $found }}
{{- if and (kindIs "map" $cur) (hasKey $cur $k) }}
{{- $cur = index $cur $k }}
{{- else }}
{{- $found = false }}
{{- end }}
{{- end }}
{{- end }}
{{- if $found }}true{{ end }}
{{- end }}

{{/*
Store type of auth or greylist: config.<c>.store.type, or nats-kv when NATS is available, else file.
Fails when more than one replica would share nothing. Input: dict root component.
*/}}
{{- define "smtpguard.storeType" -}}
{{- $root := .root }}
{{- $nats := include "smtpguard.natsUrl" $root }}
{{- $type := include "smtpguard.configValue" (dict "root" $root "path" (list .component "store" "type") "default" (ternary "nats-kv" "file" (ne $nats ""))) }}
{{- $replicas := int (index $root.Values .component).replicas }}
{{- if and (eq $type "nats-kv") (not $nats) }}
{{- fail (printf "config.%s.store.type is nats-kv but there is no NATS: set nats.enabled=true or externalNats.url" .component) }}
{{- end }}
{{- if and (gt $replicas 1) (ne $type "nats-kv") }}
{{- if $nats }}
{{- fail (printf "%s.replicas=%d needs the shared NATS KV store; remove config.%s.store.type=file" .component $replicas .component) }}
{{- else }}
{{- fail (printf "%s.replicas=%d needs NATS: replicas share their state in NATS JetStream KV (set nats.enabled=true or externalNats.url), or keep %s.replicas=1" .component $replicas .component) }}
{{- end }}
{{- end }}
{{- $type }}
{{- end }}

{{/*
Name of the Secret holding the edge's certificate (tls.crt, tls.key), or "" when TLS is off.
*/}}
{{- define "smtpguard.tlsSecret" -}}
{{- $t := .Values.edge.tls }}
{{- if $t.enabled }}
{{- if and $t.existingSecret $t.certManager.enabled }}
{{- fail "edge.tls: set either existingSecret or certManager.enabled, not both" }}
{{- else if $t.existingSecret }}
{{- $t.existingSecret }}
{{- else if $t.certManager.enabled }}
{{- printf "%s-tls" (include "smtpguard.componentName" (dict "root" . "component" "smtp-edge")) }}
{{- else }}
{{- fail "edge.tls.enabled needs a certificate: edge.tls.existingSecret (a kubernetes.io/tls Secret) or edge.tls.certManager.enabled with an issuerRef" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The effective config (values `config` plus the keys the chart manages), as a YAML document.
Input: the root context. With "forAuth" false (the ConfigMap of every pod) the directory
(auth.domains, with the mailbox password hashes) and the Dovecot policy secret are left out: only
the auth pods get them, from a Secret.
*/}}
{{- define "smtpguard.config" -}}
{{- include "smtpguard.configFor" (dict "root" . "forAuth" true) }}
{{- end }}

{{- define "smtpguard.configFor" -}}
{{- $root := .root }}
{{- $user := deepCopy ($root.Values.config | default dict) }}
{{- $managed := list
  (list "stateDir")
  (list "nats" "url")
  (list "nats" "decisionReplicas")
  (list "auth" "listen")
  (list "reputation" "listen")
  (list "greylist" "listen")
  (list "auth" "store" "replicas")
  (list "greylist" "store" "replicas")
  (list "edge" "health" "listen")
  (list "edge" "listeners" "mx" "host")
  (list "edge" "listeners" "mx" "port")
  (list "edge" "listeners" "submission" "host")
  (list "edge" "listeners" "submission" "port")
  (list "edge" "listeners" "submissions")
  (list "edge" "backends" "auth" "address")
  (list "edge" "backends" "reputation" "address")
  (list "edge" "backends" "greylist" "address") }}
{{- if $root.Values.edge.tls.enabled }}
{{- $managed = concat $managed (list (list "edge" "tls" "certFile") (list "edge" "tls" "keyFile")) }}
{{- end }}
{{- if $root.Values.edge.proxyProtocol.enabled }}
{{- range $l := list "mx" "submission" }}
{{- $managed = append $managed (list "edge" "listeners" $l "proxyProtocol" "trustedProxies") }}
{{- end }}
{{- end }}
{{- range $path := $managed }}
{{- if include "smtpguard.hasPath" (dict "config" $user "path" $path) }}
{{- fail (printf "config.%s is set by the chart (listen addresses, backend Services, NATS, stores, TLS files, PROXY protocol); remove it from values" (join "." $path)) }}
{{- end }}
{{- end }}
{{- $bind := $root.Values.listenAddress | toString }}
{{- $grpcBind := ternary (printf "[%s]" $bind) $bind (contains ":" $bind) }}
{{- $nats := include "smtpguard.natsUrl" $root }}
{{- $streamReplicas := include "smtpguard.streamReplicas" $root | int }}
{{- $backends := dict }}
{{- $services := dict }}
{{- range $c := list "auth" "reputation" "greylist" }}
{{- $port := include "smtpguard.grpcPort" $c | int }}
{{- $_ := set $backends $c (dict "address" (printf "%s:%d" (include "smtpguard.componentName" (dict "root" $root "component" $c)) $port)) }}
{{- $_ := set $services $c (dict "listen" (printf "%s:%d" $grpcBind $port)) }}
{{- end }}
{{- range $c := list "auth" "greylist" }}
{{- $store := dict "type" (include "smtpguard.storeType" (dict "root" $root "component" $c)) }}
{{- if $nats }}{{ $_ := set $store "replicas" $streamReplicas }}{{ end }}
{{- $_ := set (get $services $c) "store" $store }}
{{- end }}
{{- $pp := $root.Values.edge.proxyProtocol }}
{{- if and $pp.enabled (not $pp.trustedProxies) }}
{{- fail "edge.proxyProtocol.enabled needs edge.proxyProtocol.trustedProxies: the addresses the load balancer's connections come from (only those may send a PROXY header)" }}
{{- end }}
{{- $listeners := dict }}
{{- range $l := list (list "mx" 2525) (list "submission" 2587) (list "submissions" 2465) }}
{{- $ls := dict "host" $bind "port" (index $l 1) }}
{{- if $pp.enabled }}
{{- $_ := set $ls "proxyProtocol" (dict "trustedProxies" $pp.trustedProxies) }}
{{- end }}
{{- $_ := set $listeners (index $l 0) $ls }}
{{- end }}
{{- $tlsSecret := include "smtpguard.tlsSecret" $root }}
{{- $_ := set $listeners.submissions "enabled" (ne $tlsSecret "") }}
{{- $edge := dict
  "listeners" $listeners
  "backends" $backends
  "health" (dict "listen" (printf "%s:%d" $grpcBind 2580)) }}
{{- if $tlsSecret }}
{{- $_ := set $edge "tls" (dict "certFile" "/etc/smtpguard-tls/tls.crt" "keyFile" "/etc/smtpguard-tls/tls.key") }}
{{- end }}
{{- $managedValues := dict
  "stateDir" "/var/lib/smtpguard"
  "nats" (dict "url" $nats "decisionReplicas" $streamReplicas)
  "edge" $edge
  "auth" (get $services "auth")
  "reputation" (get $services "reputation")
  "greylist" (get $services "greylist") }}
{{- $cfg := mustMergeOverwrite $user $managedValues }}
{{- if not .forAuth }}
{{- $_ := unset $cfg.auth "domains" }}
{{- if $cfg.auth.popBeforeSmtp }}{{ $_ := unset $cfg.auth.popBeforeSmtp "dovecotPolicyAuthorization" }}{{ end }}
{{- end }}
{{- $cfg | toYaml }}
{{- end }}

{{/*
Looks a key path up in the effective config with a default. Input: dict root path default.
Only meaningful for the rendered ConfigMap; with existingConfigSecret the defaults apply.
*/}}
{{- define "smtpguard.configValue" -}}
{{- $cur := .root.Values.config | default dict }}
{{- $found := true }}
{{- range $k := .path }}
{{- if $found }}
{{- if and (kindIs "map" $cur) (hasKey $cur $k) }}
{{- $cur = index $cur $k }}
{{- else }}
{{- $found = false }}
{{- end }}
{{- end }}
{{- end }}
{{- if $found }}{{ $cur }}{{ else }}{{ .default }}{{ end }}
{{- end }}

{{/*
Environment shared by the four containers. Input: dict root component.
*/}}
{{- define "smtpguard.env" -}}
{{- $root := .root }}
{{- $attrs := list
  "service.namespace=smtpguard"
  (printf "service.version=%s" $root.Chart.AppVersion)
  "service.instance.id=$(POD_NAME)"
  "k8s.namespace.name=$(POD_NAMESPACE)"
  "k8s.pod.name=$(POD_NAME)"
  (printf "k8s.deployment.name=%s" (include "smtpguard.componentName" .)) }}
{{- range $k, $v := $root.Values.telemetry.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $v) }}
{{- end }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_SERVICE_NAME
  value: {{ .component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- if $root.Values.metrics.prometheus.enabled }}
- name: OTEL_METRICS_EXPORTER
  value: {{ ternary "prometheus,otlp" "prometheus" (ne $root.Values.telemetry.otlpEndpoint "") | quote }}
- name: OTEL_EXPORTER_PROMETHEUS_PORT
  value: {{ $root.Values.metrics.prometheus.port | quote }}
{{- end }}
{{- with $root.Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
{{- end }}
{{- end }}

{{/*
The config volume (ConfigMap, the auth Secret, or the existing Secret). Input: dict root component.
*/}}
{{- define "smtpguard.configVolume" -}}
- name: config
{{- if .root.Values.existingConfigSecret }}
  secret:
    secretName: {{ .root.Values.existingConfigSecret }}
    items:
      - key: smtpguard.yaml
        path: smtpguard.yaml
{{- else if eq .component "auth" }}
  secret:
    secretName: {{ include "smtpguard.fullname" .root }}-auth-config
{{- else }}
  configMap:
    name: {{ include "smtpguard.fullname" .root }}-config
{{- end }}
{{- end }}

{{/*
Deployment of one service. Input: dict root component ports probes stateVolume strategy preStop
  ports:       list of dict name containerPort
  probes:      YAML (readinessProbe, livenessProbe, startupProbe)
  stateVolume: YAML of the volume source for /var/lib/smtpguard
*/}}
{{- define "smtpguard.deployment" -}}
{{- $root := .root }}
{{- $v := include "smtpguard.componentValues" . | fromYaml }}
{{- $ctx := dict "root" $root "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "smtpguard.componentName" $ctx }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "smtpguard.labels" $ctx | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "smtpguard.selectorLabels" $ctx | nindent 6 }}
  strategy:
    {{- .strategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "smtpguard.labels" $ctx | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or $v.podAnnotations (and $root.Values.rollOnConfigChange (not $root.Values.existingConfigSecret)) }}
      annotations:
        {{- if and $root.Values.rollOnConfigChange (not $root.Values.existingConfigSecret) }}
        checksum/config: {{ include "smtpguard.configFor" (dict "root" $root "forAuth" (eq .component "auth")) | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "smtpguard.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.terminationGracePeriodSeconds }}
      terminationGracePeriodSeconds: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "smtpguard.image" (dict "root" $root "values" $v) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["--config", "/etc/smtpguard/smtpguard.yaml"]
          ports:
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .containerPort }}
              protocol: TCP
            {{- end }}
            {{- if $root.Values.metrics.prometheus.enabled }}
            - name: metrics
              containerPort: {{ $root.Values.metrics.prometheus.port }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "smtpguard.env" $ctx | trim | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- .probes | nindent 10 }}
          {{- with .preStop }}
          lifecycle:
            preStop:
              {{- . | nindent 14 }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/smtpguard
              readOnly: true
            - name: state
              mountPath: /var/lib/smtpguard
            - name: tmp
              mountPath: /tmp
            {{- if .tlsSecret }}
            # Not a subPath mount, so renewed certificates appear in place (the edge reloads them).
            - name: tls
              mountPath: /etc/smtpguard-tls
              readOnly: true
            {{- end }}
      volumes:
        {{- include "smtpguard.configVolume" $ctx | nindent 8 }}
        {{- with .tlsSecret }}
        - name: tls
          secret:
            secretName: {{ . }}
            items:
              - key: tls.crt
                path: tls.crt
              - key: tls.key
                path: tls.key
        {{- end }}
        - name: state
          {{- .stateVolume | nindent 10 }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- $spread := $v.topologySpreadConstraints | default list }}
      {{- if $v.spreadAcrossNodes }}
      {{- $spread = append $spread (dict "maxSkew" 1 "topologyKey" "kubernetes.io/hostname" "whenUnsatisfiable" "ScheduleAnyway" "labelSelector" (dict "matchLabels" (include "smtpguard.selectorLabels" $ctx | fromYaml))) }}
      {{- end }}
      {{- with $spread }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
