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
Name of the NATS dependency's client Service, mirroring the nats chart's fullname rules.
*/}}
{{- define "smtpguard.natsServiceName" -}}
{{- $n := .Values.nats }}
{{- if and $n.service $n.service.name }}
{{- $n.service.name }}
{{- else if $n.fullnameOverride }}
{{- $n.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "nats" $n.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
NATS URL the services use: the dependency's Service, externalNats.url, or "" (embedded mode).
*/}}
{{- define "smtpguard.natsUrl" -}}
{{- if and .Values.nats.enabled .Values.externalNats.url }}
{{- fail "set either nats.enabled=true (NATS installed with the chart) or externalNats.url (an existing server), not both" }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- $host := include "smtpguard.natsServiceName" . }}
{{- with .Values.nats.namespaceOverride }}
{{- $host = printf "%s.%s.svc" $host . }}
{{- end }}
{{- $port := 4222 }}
{{- if and .Values.nats.config .Values.nats.config.nats .Values.nats.config.nats.port }}
{{- $port = .Values.nats.config.nats.port }}
{{- end }}
{{- printf "nats://%s:%d" $host (int $port) }}
{{- else }}
{{- .Values.externalNats.url }}
{{- end }}
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
The effective config (values `config` plus the keys the chart manages), as a YAML document.
*/}}
{{- define "smtpguard.config" -}}
{{- $user := deepCopy (.Values.config | default dict) }}
{{- $managed := list
  (list "stateDir")
  (list "nats" "url")
  (list "auth" "listen")
  (list "reputation" "listen")
  (list "greylist" "listen")
  (list "edge" "listeners" "mx" "host")
  (list "edge" "listeners" "mx" "port")
  (list "edge" "listeners" "submission" "host")
  (list "edge" "listeners" "submission" "port")
  (list "edge" "backends" "auth" "address")
  (list "edge" "backends" "reputation" "address")
  (list "edge" "backends" "greylist" "address") }}
{{- range $path := $managed }}
{{- if include "smtpguard.hasPath" (dict "config" $user "path" $path) }}
{{- fail (printf "config.%s is set by the chart (listen addresses, backend Services, NATS URL, state directory); remove it from values" (join "." $path)) }}
{{- end }}
{{- end }}
{{- $bind := .Values.listenAddress | toString }}
{{- $grpcBind := ternary (printf "[%s]" $bind) $bind (contains ":" $bind) }}
{{- $backends := dict }}
{{- $listen := dict }}
{{- range $c := list "auth" "reputation" "greylist" }}
{{- $port := include "smtpguard.grpcPort" $c | int }}
{{- $_ := set $backends $c (dict "address" (printf "%s:%d" (include "smtpguard.componentName" (dict "root" $ "component" $c)) $port)) }}
{{- $_ := set $listen $c (dict "listen" (printf "%s:%d" $grpcBind $port)) }}
{{- end }}
{{- $managedValues := dict
  "stateDir" "/var/lib/smtpguard"
  "nats" (dict "url" (include "smtpguard.natsUrl" .))
  "edge" (dict
    "listeners" (dict
      "mx" (dict "host" $bind "port" 2525)
      "submission" (dict "host" $bind "port" 2587))
    "backends" $backends)
  "auth" (get $listen "auth")
  "reputation" (get $listen "reputation")
  "greylist" (get $listen "greylist") }}
{{- mustMergeOverwrite $user $managedValues | toYaml }}
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
{{- with $root.Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
{{- end }}
{{- end }}

{{/*
Name of the config volume source (ConfigMap or existing Secret).
*/}}
{{- define "smtpguard.configVolume" -}}
- name: config
{{- if .Values.existingConfigSecret }}
  secret:
    secretName: {{ .Values.existingConfigSecret }}
    items:
      - key: smtpguard.yaml
        path: smtpguard.yaml
{{- else }}
  configMap:
    name: {{ include "smtpguard.fullname" . }}-config
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
        checksum/config: {{ include "smtpguard.config" $root | sha256sum }}
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
      volumes:
        {{- include "smtpguard.configVolume" $root | nindent 8 }}
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
