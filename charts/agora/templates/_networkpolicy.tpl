{{/*
Each workload's NetworkPolicy ({root, name, svc}), on top of the release's
default deny (networkpolicy.yaml). In: the gateway from the Ingress controller,
a service from the gateway and from the services whose `dependencies` name it;
/metrics from the monitoring peers. Out: DNS, then only the workload's own
dependencies.
*/}}

{{/* An egress rule to `peers` on `port`; no peers means any destination on that port. */}}
{{- define "agora.egressTo" -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "agora.networkPolicy" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := .svc -}}
{{- $values := $root.Values -}}
{{- $deps := $svc.dependencies -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "agora.componentName" (list $root $name) }}
  labels:
    {{- include "agora.labels" (list $root $name) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "agora.selectorLabels" (list $root $name) | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if eq $svc.kind "http" }}
    - from:
        {{- toYaml $values.networkPolicy.ingressControllerPeers | nindent 8 }}
      ports:
        - port: {{ $svc.port }}
          protocol: TCP
    - from:
        {{- toYaml $values.networkPolicy.metricsPeers | nindent 8 }}
      ports:
        - port: {{ $svc.port }}
          protocol: TCP
    {{- else }}
    {{- $callers := list -}}
    {{- range $callerName, $caller := $values.services }}
    {{- if has $name $caller.dependencies.services }}
    {{- $callers = append $callers $callerName }}
    {{- end }}
    {{- end }}
    {{- if $callers }}
    - from:
        {{- range $callers }}
        - podSelector:
            matchLabels:
              {{- include "agora.selectorLabels" (list $root .) | nindent 14 }}
        {{- end }}
      ports:
        - port: {{ $svc.port }}
          protocol: TCP
    {{- end }}
    - from:
        {{- toYaml $values.networkPolicy.metricsPeers | nindent 8 }}
      ports:
        - port: {{ $svc.metricsPort }}
          protocol: TCP
    {{- end }}
  egress:
    - to:
        {{- toYaml $values.networkPolicy.dnsPeers | nindent 8 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- range $deps.services }}
    {{- $target := get $values.services . }}
    {{- if not $target }}
    {{- fail (printf "services.%s.dependencies.services names %q, which is not in services" $name .) }}
    {{- end }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "agora.selectorLabels" (list $root .) | nindent 14 }}
      ports:
        - port: {{ $target.port }}
          protocol: TCP
    {{- end }}
    {{- if $deps.postgres }}
    {{- include "agora.egressTo" (dict "port" $values.postgresql.port "peers" $values.postgresql.networkPolicyPeers) | nindent 4 }}
    {{- end }}
    {{- if $deps.redis }}
    {{- include "agora.egressTo" (dict "port" $values.redis.port "peers" $values.redis.networkPolicyPeers) | nindent 4 }}
    {{- end }}
    {{- if $deps.nats }}
    {{- include "agora.egressTo" (dict "port" $values.nats.port "peers" $values.nats.networkPolicyPeers) | nindent 4 }}
    {{- end }}
    {{- if $deps.https }}
    {{- include "agora.egressTo" (dict "port" 443 "peers" $values.networkPolicy.httpsPeers) | nindent 4 }}
    {{- end }}
    {{- if $values.telemetry.otlpEndpoint }}
    {{- include "agora.egressTo" (dict "port" $values.telemetry.otlpPort "peers" $values.telemetry.networkPolicyPeers) | nindent 4 }}
    {{- end }}
    {{- with $values.networkPolicy.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
