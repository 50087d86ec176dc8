{{/* Names and labels shared by every template. A per-service object is named after the
service (`order`), so Istio principals read cluster.local/ns/<ns>/sa/<service>. */}}

{{- define "emporium.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: emporium
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Values.global.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
emporium.dev/environment: {{ .root.Values.global.environment }}
{{- end }}

{{- define "emporium.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: emporium
{{- end }}

{{/* The catalog's name of a service (`api_gateway`): `emporium run <it>`, metrics' label. */}}
{{- define "emporium.catalogName" -}}
{{ . | replace "-" "_" }}
{{- end }}

{{/* EMPORIUM_<SERVICE>_ prefix of a service's own variables (chassis/catalog.py). */}}
{{- define "emporium.envPrefix" -}}
{{ printf "EMPORIUM_%s_" (. | replace "-" "_" | upper) }}
{{- end }}

{{- define "emporium.image" -}}
{{ printf "%s:%s" .Values.global.image.repository .Values.global.image.tag }}
{{- end }}

{{/* The merged settings of one service: defaults overlaid by its own entry. */}}
{{- define "emporium.svc" -}}
{{- $svc := index .root.Values.services .name -}}
{{- $merged := mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $svc) -}}
{{- toYaml $merged -}}
{{- end }}

{{/* The port a service's peers call: gRPC for backends, HTTP for the gateway. */}}
{{- define "emporium.servingPort" -}}
{{- if .grpcPort }}{{ .grpcPort }}{{ else }}{{ .httpPort }}{{ end -}}
{{- end }}

{{- define "emporium.secretName" -}}
{{ printf "%s-%s" .service .store }}
{{- end }}
