{{/*
Names, labels and the pieces every workload shares. Templates that render one
workload get the context (dict "root" $ "name" <workload> "svc" <its values>).
*/}}

{{- define "agora.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's prefix, cut to 50 characters so "<prefix>-<workload>" (workload
names are at most 12 characters, see values.schema.json) stays a DNS label.
*/}}
{{- define "agora.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "agora.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<prefix>-<component>" for a root scope and a component name: (list $ "auth"). */}}
{{- define "agora.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "agora.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (list $ "auth"). */}}
{{- define "agora.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "agora.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of the release's pods, whatever their component (the default-deny policy). */}}
{{- define "agora.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "agora.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels: (list $ "auth"); the component is optional ((list $ "")). */}}
{{- define "agora.labels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
helm.sh/chart: {{ include "agora.chart" $root }}
{{ include "agora.releaseSelectorLabels" $root }}
{{- if $component }}
app.kubernetes.io/component: {{ $component }}
{{- end }}
app.kubernetes.io/part-of: agora
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end -}}

{{/* The one image of every process: digest wins over tag, tag defaults to appVersion. */}}
{{- define "agora.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Python module a workload runs: the gateway, or services.<name>. */}}
{{- define "agora.module" -}}
{{- if eq .svc.kind "http" -}}gateway{{- else -}}services.{{ .name }}{{- end -}}
{{- end -}}

{{/*
AGORA_SERVICE_ADDRESSES: every gRPC service's Service name and port, so each
process finds the others through the cluster DNS.
*/}}
{{- define "agora.serviceAddresses" -}}
{{- $addresses := dict -}}
{{- range $name, $svc := .Values.services -}}
{{- if eq $svc.kind "grpc" -}}
{{- $_ := set $addresses $name (printf "%s:%v" (include "agora.componentName" (list $ $name)) $svc.port) -}}
{{- end -}}
{{- end -}}
{{- toJson $addresses -}}
{{- end -}}

{{/* The shared ConfigMap's data; its checksum rolls every pod when it changes. */}}
{{- define "agora.sharedConfig" -}}
AGORA_ENVIRONMENT: {{ .Values.environment | quote }}
AGORA_LOG_LEVEL: {{ .Values.logLevel | quote }}
AGORA_LOG_FORMAT: {{ .Values.logFormat | quote }}
AGORA_GRPC_HOST: {{ .Values.listenHost | quote }}
AGORA_GATEWAY_HOST: {{ .Values.listenHost | quote }}
AGORA_SERVICE_ADDRESSES: {{ include "agora.serviceAddresses" . | quote }}
AGORA_REDIS_KEY_PREFIX: {{ .Values.redis.keyPrefix | quote }}
AGORA_NATS_STREAM: {{ .Values.nats.stream | quote }}
AGORA_NATS_SUBJECT_PREFIX: {{ .Values.nats.subjectPrefix | quote }}
{{- if not .Values.redis.existingSecret }}
AGORA_REDIS_URL: {{ required "redis.url or redis.existingSecret is required" .Values.redis.url | quote }}
{{- end }}
{{- if not .Values.nats.existingSecret }}
AGORA_NATS_URL: {{ required "nats.url or nats.existingSecret is required" .Values.nats.url | quote }}
{{- end }}
{{- with .Values.telemetry.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* A workload's own ConfigMap data: its env values. */}}
{{- define "agora.componentConfig" -}}
{{- range $key, $value := .svc.env }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
How a process reaches PostgreSQL, as its own role: the Deployments and the
migration Job share it (the Job cannot read ConfigMaps: it runs before they exist).
*/}}
{{- define "agora.databaseEnv" -}}
{{- $pg := .root.Values.postgresql -}}
- name: AGORA_DB_HOST
  value: {{ required "postgresql.host is required" $pg.host | quote }}
- name: AGORA_DB_PORT
  value: {{ $pg.port | quote }}
- name: AGORA_DB_NAME
  value: {{ $pg.database | quote }}
- name: PGSSLMODE
  value: {{ $pg.sslMode | quote }}
{{- if $pg.caSecret }}
- name: PGSSLROOTCERT
  value: {{ printf "%s/%s" (include "agora.databaseCaPath" .root) $pg.caKey | quote }}
{{- else if has $pg.sslMode (list "verify-ca" "verify-full") }}
{{- fail (printf "postgresql.sslMode %s checks the server's certificate: set postgresql.caSecret" $pg.sslMode) }}
{{- end }}
- name: AGORA_DB_USER
  value: {{ .svc.database.user | quote }}
{{- with (default $pg.existingSecret .svc.database.existingSecret) }}
- name: AGORA_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.svc.database.passwordKey }}
{{- end }}
{{- end -}}

{{/* Where the CA certificate of PostgreSQL's server is mounted (postgresql.caSecret). */}}
{{- define "agora.databaseCaPath" -}}
/var/run/secrets/agora/postgresql
{{- end -}}

{{/* The CA's volume mount and volume, for containers that use the database. */}}
{{- define "agora.databaseCaMount" -}}
{{- if .Values.postgresql.caSecret }}
- name: postgresql-ca
  mountPath: {{ include "agora.databaseCaPath" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "agora.databaseCaVolume" -}}
{{- with .Values.postgresql.caSecret }}
- name: postgresql-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- end -}}

{{/* The secret settings every process reads: cursor secret, Redis and NATS URLs. */}}
{{- define "agora.sharedSecretEnv" -}}
{{- $values := .Values -}}
{{- if $values.secrets.existingSecret }}
- name: AGORA_CURSOR_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $values.secrets.existingSecret }}
      key: {{ $values.secrets.cursorSecretKey }}
{{- else if eq $values.environment "production" }}
{{- fail "secrets.existingSecret is required in production: every process needs AGORA_CURSOR_SECRET" }}
{{- end }}
{{- with $values.redis.existingSecret }}
- name: AGORA_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $values.redis.urlKey }}
{{- end }}
{{- with $values.nats.existingSecret }}
- name: AGORA_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $values.nats.urlKey }}
{{- end }}
{{- end -}}

{{/* The restrictive pod security context of every workload. */}}
{{- define "agora.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* ... and of every container. */}}
{{- define "agora.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Scheduling settings shared by every pod; (list $ "auth") for the spread constraints. */}}
{{- define "agora.scheduling" -}}
{{- $root := index . 0 -}}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range list $root.Values.topologySpread.zoneKey $root.Values.topologySpread.nodeKey }}
  - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "agora.selectorLabels" (list $root (index $ 1)) | nindent 8 }}
  {{- end }}
{{- end }}
{{- end -}}
