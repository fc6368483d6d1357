{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "llm-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it already holds it. */}}
{{- define "llm-router.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-router.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. part-of is constant: the ServiceMonitor uses it as the scrape job
     name, which the alerts match on (job="llm-router"). */}}
{{- define "llm-router.labels" -}}
helm.sh/chart: {{ include "llm-router.chart" . }}
app.kubernetes.io/name: {{ include "llm-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-router
{{- end }}

{{/* Selector labels of one component (gateway, redis, upstream). */}}
{{- define "llm-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-router.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "llm-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-router.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llm-router.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "llm-router.secretName" -}}
{{- default (include "llm-router.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Where the read-only pods may write (emptyDirs). */}}
{{- define "llm-router.stateDir" -}}/var/lib/llm-router{{- end }}
{{/* serve empties PROMETHEUS_MULTIPROC_DIR by deleting and re-creating it: a folder inside the
     emptyDir (made by an init container), never the mount point itself */}}
{{- define "llm-router.metricsMount" -}}/var/run/llm-router{{- end }}
{{- define "llm-router.metricsDir" -}}{{ include "llm-router.metricsMount" . }}/metrics{{- end }}

{{/* The gateway config: config values plus what the chart derives (see values.yaml). */}}
{{- define "llm-router.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $fullname := include "llm-router.fullname" . }}
{{- if not $cfg.model_list }}
{{- if not .Values.demoUpstream.enabled }}
{{- fail "config.model_list is empty: list the models to route between, or set demoUpstream.enabled=true" }}
{{- end }}
{{- $models := list }}
{{- range .Values.demoUpstream.models }}
{{- $models = append $models (dict "model_name" . "litellm_params" (dict "model" (printf "openai/%s" .) "api_base" (printf "http://%s-upstream:%d/v1" $fullname (int $.Values.demoUpstream.port)) "api_key" "demo-upstream-needs-no-key")) }}
{{- end }}
{{- $_ := set $cfg "model_list" $models }}
{{- end }}
{{- $redis := deepCopy (default dict $cfg.redis) }}
{{- if not $redis.url }}
{{- if .Values.redis.enabled }}
{{- $_ := set $redis "url" (printf "redis://%s-redis:6379/0" $fullname) }}
{{- else if .Values.redis.externalUrl }}
{{- $_ := set $redis "url" .Values.redis.externalUrl }}
{{- end }}
{{- end }}
{{- $_ := set $redis "state_dir" (printf "%s/redis" (include "llm-router.stateDir" .)) }}
{{- $_ := set $cfg "redis" $redis }}
{{- $auth := deepCopy (default dict $cfg.auth) }}
{{- if and .Values.auth.enabled (not $auth.api_keys) }}
{{- $_ := set $auth "api_keys" (list "os.environ/LLM_ROUTER_API_KEY") }}
{{- end }}
{{- $_ := set $cfg "auth" $auth }}
{{- if not $cfg.limits }}{{ $_ := unset $cfg "limits" }}{{ end }}
{{- if .Values.tracing.endpoint }}
{{- $tracing := deepCopy (default dict $cfg.tracing) }}
{{- $_ := set $tracing "endpoint" .Values.tracing.endpoint }}
{{- $_ := set $tracing "service_name" .Values.tracing.serviceName }}
{{- $_ := set $tracing "sample_ratio" .Values.tracing.sampleRatio }}
{{- $_ := set $cfg "tracing" $tracing }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
