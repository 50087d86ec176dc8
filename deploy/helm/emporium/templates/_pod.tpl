{{/* The pod template every service shares; only its name, ports and mounts differ.
Called with (dict "name" <service> "root" $). */}}
{{- define "emporium.podTemplate" -}}
{{- $name := .name -}}
{{- $root := .root -}}
{{- $svc := include "emporium.svc" . | fromYaml -}}
{{- $prefix := include "emporium.envPrefix" $name -}}
{{- $hashKey := ternary "rollouts-pod-template-hash" "pod-template-hash" (has $svc.strategy (list "canary" "blueGreen")) -}}
metadata:
  labels:
    {{- include "emporium.selector" . | nindent 4 }}
    app.kubernetes.io/instance: {{ $root.Release.Name }}
    app.kubernetes.io/version: {{ $root.Values.global.image.tag | quote }}
    sidecar.istio.io/inject: {{ $root.Values.global.istioInjection | quote }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $svc.httpPort | quote }}
    prometheus.io/path: /metrics
    kubectl.kubernetes.io/default-container: {{ $name }}
spec:
  serviceAccountName: {{ $name }}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  topologySpreadConstraints:
    # One zone may hold at most one replica more than another (the seed's three AZs) ...
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: DoNotSchedule
      labelSelector:
        matchLabels:
          {{- include "emporium.selector" . | nindent 10 }}
      matchLabelKeys: [{{ $hashKey }}]
    # ... and replicas spread over nodes, so one node's loss takes at most one of them.
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "emporium.selector" . | nindent 10 }}
      matchLabelKeys: [{{ $hashKey }}]
  containers:
    - name: {{ $name }}
      image: {{ include "emporium.image" $root }}
      imagePullPolicy: {{ $root.Values.global.image.pullPolicy }}
      args: ["run", {{ include "emporium.catalogName" $name | quote }}]
      ports:
        {{- if $svc.grpcPort }}
        - name: grpc
          containerPort: {{ $svc.grpcPort }}
          protocol: TCP
        {{- end }}
        - name: http
          containerPort: {{ $svc.httpPort }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: emporium-config
      env:
        - name: OTEL_SERVICE_NAME
          value: {{ $name }}
        - name: OTEL_RESOURCE_ATTRIBUTES
          value: {{ printf "deployment.environment=%s,service.namespace=emporium" $root.Values.global.environment | quote }}
        - name: {{ $prefix }}SERVICE_KEY_FILE
          value: /etc/emporium/keys/service.key
        {{- if $svc.signingKey }}
        - name: {{ $prefix }}SIGNING_KEY_FILE
          value: /etc/emporium/signing/signing.key
        {{- end }}
        {{- range $store := $svc.stores | default list }}
        - name: {{ $prefix }}{{ $store | upper }}_URL
          valueFrom:
            secretKeyRef:
              name: {{ include "emporium.secretName" (dict "service" $name "store" $store) }}
              key: url
        {{- end }}
      startupProbe:
        {{- include "emporium.probe" $svc.probes.startup | nindent 8 }}
      readinessProbe:
        {{- include "emporium.probe" $svc.probes.readiness | nindent 8 }}
      livenessProbe:
        {{- include "emporium.probe" $svc.probes.liveness | nindent 8 }}
      resources:
        {{- toYaml $svc.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /var/lib/emporium
        - name: service-key
          mountPath: /etc/emporium/keys
          readOnly: true
        - name: service-public-keys
          mountPath: /etc/emporium/service-public-keys
          readOnly: true
        {{- if $svc.signingKey }}
        - name: signing-key
          mountPath: /etc/emporium/signing
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 64Mi
    - name: data
      emptyDir:
        sizeLimit: 1Gi
    - name: service-key
      secret:
        secretName: {{ $name }}-service-key
        defaultMode: 0400
    - name: service-public-keys
      secret:
        secretName: emporium-service-public-keys
        defaultMode: 0444
    {{- if $svc.signingKey }}
    - name: signing-key
      secret:
        secretName: {{ $name }}-signing-key
        defaultMode: 0400
    {{- end }}
{{- end }}

{{- define "emporium.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end }}
