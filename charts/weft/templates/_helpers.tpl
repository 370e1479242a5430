{{/* Labels of every object of the chart. */}}
{{- define "weft.labels" -}}
app.kubernetes.io/name: weft
app.kubernetes.io/part-of: weft
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Labels selecting the weft-control pods. */}}
{{- define "weft.selectorLabels" -}}
app: weft-control
app.kubernetes.io/component: control-plane
{{- end }}

{{/* The weft image. */}}
{{- define "weft.image" -}}
{{ .Values.hub }}/weft:{{ .Values.tag | default .Chart.AppVersion }}
{{- end }}

{{/* clientConfig of a webhook at path (the "path" key) of the weft-control Service, or of webhook.url. */}}
{{- define "weft.webhookClientConfig" -}}
{{- if .root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
{{- else }}
service:
  name: weft-control
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- end }}

{{/* The fields every sidecar-injector webhook shares. */}}
{{- define "weft.injectorWebhook" -}}
clientConfig:
  {{- include "weft.webhookClientConfig" (dict "root" . "path" "/inject") | nindent 2 }}
rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
failurePolicy: Fail
sideEffects: None
reinvocationPolicy: Never
timeoutSeconds: 10
admissionReviewVersions: ["v1"]
{{- end }}
