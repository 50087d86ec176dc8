{{/* Labels of the tracing pods (tracing.yaml): not the catalog's services, so their own
part-of label (the services' policies, PodMonitor and checks select `emporium`). */}}
{{- define "emporium.tracingLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: emporium-tracing
app.kubernetes.io/component: tracing
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
emporium.dev/environment: {{ .root.Values.global.environment }}
{{- end }}

{{- define "emporium.tracingSelector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: emporium-tracing
{{- end }}

{{/* The collector's configuration: OTLP in, memory limiter, tail sampling (a trace is kept
when any policy keeps it: an error, a slow trace, or the probabilistic share), batches, OTLP
out to the trace store. Called with (dict "t" .Values.observability.tracing "exportTo" host:port). */}}
{{- define "emporium.otelcolConfig" -}}
{{- $s := .t.collector.sampling -}}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "0.0.0.0:4317"}
      http: {endpoint: "0.0.0.0:4318"}
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  tail_sampling:
    decision_wait: {{ printf "%vs" $s.decisionWaitSeconds }}
    num_traces: {{ $s.numTraces }}
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: {{ $s.slowThresholdMs }}}
      - name: share
        type: probabilistic
        probabilistic: {sampling_percentage: {{ $s.probabilisticPercent }}}
  batch:
    timeout: 1s
    send_batch_size: 1024
exporters:
  otlp:
    endpoint: {{ .exportTo | quote }}
    # Inside the mesh the sidecars carry the call over mutual TLS.
    tls: {insecure: true}
extensions:
  health_check: {endpoint: "0.0.0.0:13133"}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, tail_sampling, batch]
      exporters: [otlp]
{{- end }}

{{/* Jaeger v2 (an OpenTelemetry Collector distribution): OTLP in, the in-memory store,
the query service and UI on 16686. */}}
{{- define "emporium.jaegerConfig" -}}
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
extensions:
  healthcheckv2:
    use_v2: true
    http: {endpoint: "0.0.0.0:13133"}
  jaeger_storage:
    backends:
      traces:
        memory: {max_traces: {{ .maxTraces }}}
  jaeger_query:
    storage: {traces: traces}
    http: {endpoint: "0.0.0.0:16686"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "0.0.0.0:4317"}
processors:
  batch: {}
exporters:
  jaeger_storage_exporter: {trace_storage: traces}
{{- end }}
