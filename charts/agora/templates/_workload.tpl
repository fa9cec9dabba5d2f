{{/*
The small objects around each workload's Deployment, all from the context
{root, name, svc}: its ServiceAccount, ConfigMap, Service, PodDisruptionBudget
and HorizontalPodAutoscaler.
*/}}

{{/* No API access: the token is never mounted, here or in the pod. */}}
{{- define "agora.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "agora.componentName" (list .root .name) }}
  labels:
    {{- include "agora.labels" (list .root .name) | nindent 4 }}
  {{- with .root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}

{{- define "agora.componentConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "agora.componentName" (list .root .name) }}
  labels:
    {{- include "agora.labels" (list .root .name) | nindent 4 }}
{{- if .svc.env }}
data:
  {{- include "agora.componentConfig" . | trim | nindent 2 }}
{{- else }}
data: {}
{{- end }}
{{- end -}}

{{/* gRPC services expose grpc and metrics; the gateway http (which serves /metrics too). */}}
{{- define "agora.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "agora.componentName" (list .root .name) }}
  labels:
    {{- include "agora.labels" (list .root .name) | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "agora.selectorLabels" (list .root .name) | nindent 4 }}
  ports:
    {{- if eq .svc.kind "http" }}
    - name: http
      port: {{ .svc.port }}
      targetPort: http
      protocol: TCP
    {{- else }}
    - name: grpc
      port: {{ .svc.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ .svc.metricsPort }}
      targetPort: metrics
      protocol: TCP
    {{- end }}
{{- end -}}

{{- define "agora.podDisruptionBudget" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "agora.componentName" (list .root .name) }}
  labels:
    {{- include "agora.labels" (list .root .name) | nindent 4 }}
spec:
  {{- if hasKey .svc.pdb "minAvailable" }}
  minAvailable: {{ .svc.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .svc.pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "agora.selectorLabels" (list .root .name) | nindent 6 }}
{{- end -}}

{{/*
The design's auto-scaling triggers: scale up when CPU or memory passes its
threshold (at most two pods a minute), scale down only after the stabilisation
window (the design's "below ... for 5/10 min"), one pod at a time.
*/}}
{{- define "agora.horizontalPodAutoscaler" -}}
{{- $scaling := .svc.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "agora.componentName" (list .root .name) }}
  labels:
    {{- include "agora.labels" (list .root .name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "agora.componentName" (list .root .name) }}
  minReplicas: {{ $scaling.minReplicas }}
  maxReplicas: {{ $scaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scaling.cpuUtilization }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ $scaling.memoryUtilization }}
    {{- with $scaling.extraMetrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: {{ $scaling.scaleDownStabilizationSeconds }}
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
{{- end -}}
