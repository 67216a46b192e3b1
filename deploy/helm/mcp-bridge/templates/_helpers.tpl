{{- define "mcp-bridge.fullname" -}}
{{- printf "%s-mcp-bridge" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcp-bridge.labels" -}}
app.kubernetes.io/name: mcp-bridge
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mcp-bridge.selector" -}}
app.kubernetes.io/name: mcp-bridge
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The configuration file: the user's config with the listeners the chart controls. */}}
{{- define "mcp-bridge.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- /* mcp.address (and mcp.tls) are the chart's; the rest of config.mcp (pacing, limits) is kept. */ -}}
{{- $mcp := merge (dict "address" (printf ":%d" (int .Values.mcpPort))) (default (dict) $cfg.mcp) -}}
{{- if .Values.tlsSecret -}}
{{- $_ := set $mcp "tls" (dict "certFile" "/etc/mcp-bridge/tls/tls.crt" "keyFile" "/etc/mcp-bridge/tls/tls.key") -}}
{{- end -}}
{{- $_ := set $cfg "mcp" $mcp -}}
{{- if .Values.admin.expose -}}
{{- $_ := set $cfg "admin" (dict "address" (printf ":%d" (int .Values.admin.port))) -}}
{{- end -}}
{{- if .Values.state.enabled -}}
{{- $_ := set $cfg "state" (merge (dict "file" .Values.state.file) (default (dict) $cfg.state)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
