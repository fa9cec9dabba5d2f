{{/*
The Deployment of one workload ({root, name, svc}). Every process is the same
image; the command picks it. gRPC services get native gRPC probes on
grpc.health.v1 (common/grpc_server.py serves it), the gateway HTTP probes.
*/}}
{{- define "agora.deployment" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $fullName := include "agora.componentName" (list $root .name) -}}
{{- $probes := $root.Values.probes -}}
{{- $portName := ternary "http" "grpc" (eq $svc.kind "http") -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "agora.labels" (list $root .name) | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Zero-downtime rollouts: a new pod must be ready before an old one goes.
      maxUnavailable: 0
      maxSurge: 25%
  selector:
    matchLabels:
      {{- include "agora.selectorLabels" (list $root .name) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "agora.selectorLabels" (list $root .name) | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ print (include "agora.sharedConfig" $root) (include "agora.componentConfig" .) | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullName }}
      automountServiceAccountToken: false
      # Service links would inject variables such as AGORA_GATEWAY_PORT=tcp://...
      # (from a Service named <release>-gateway) that collide with our settings.
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "agora.podSecurityContext" $root | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- include "agora.scheduling" (list $root .name) | trim | nindent 6 }}
      containers:
        - name: {{ .name }}
          image: {{ include "agora.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", {{ include "agora.module" . | quote }}]
          ports:
            - name: {{ $portName }}
              containerPort: {{ $svc.port }}
              protocol: TCP
            {{- if eq $svc.kind "grpc" }}
            - name: metrics
              containerPort: {{ $svc.metricsPort }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "agora.fullname" $root }}
            - configMapRef:
                name: {{ $fullName }}
          env:
            {{- if eq $svc.kind "http" }}
            - name: AGORA_GATEWAY_PORT
              value: {{ $svc.port | quote }}
            {{- else }}
            - name: AGORA_GRPC_PORT
              value: {{ $svc.port | quote }}
            - name: AGORA_METRICS_PORT
              value: {{ $svc.metricsPort | quote }}
            {{- end }}
            {{- if $svc.database }}
            {{- include "agora.databaseEnv" . | trim | nindent 12 }}
            {{- end }}
            {{- include "agora.sharedSecretEnv" $root | trim | nindent 12 }}
            {{- range $envName, $ref := $svc.secretEnv }}
            - name: {{ $envName }}
              valueFrom:
                secretKeyRef:
                  name: {{ $ref.secretName }}
                  key: {{ $ref.key }}
                  optional: {{ $ref.optional | default false }}
            {{- end }}
          {{- if eq $svc.kind "grpc" }}
          startupProbe:
            grpc:
              port: {{ $svc.port }}
            {{- toYaml $probes.startup | nindent 12 }}
          livenessProbe:
            grpc:
              port: {{ $svc.port }}
            {{- toYaml $probes.liveness | nindent 12 }}
          readinessProbe:
            grpc:
              port: {{ $svc.port }}
            {{- toYaml $probes.readiness | nindent 12 }}
          {{- else }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: {{ $probes.gatewayReadinessPath }}
              port: http
            {{- toYaml $probes.readiness | nindent 12 }}
          {{- end }}
          {{- if $root.Values.preStopSleepSeconds }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $root.Values.preStopSleepSeconds | toString | quote }}]
          {{- end }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- include "agora.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $svc.database }}
            {{- include "agora.databaseCaMount" $root | nindent 12 }}
            {{- end }}
            {{- range $svc.secretVolumes }}
            - name: {{ .name }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
        {{- if $svc.database }}
        {{- include "agora.databaseCaVolume" $root | nindent 8 }}
        {{- end }}
        {{- range $svc.secretVolumes }}
        - name: {{ .name }}
          secret:
            secretName: {{ .secretName }}
            # Readable by the pod's group (fsGroup) only.
            defaultMode: 0440
        {{- end }}
{{- end -}}
