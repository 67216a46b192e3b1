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

{{/* The number of MCP shards (mcp.shards), checked: admin.port must not be a shard's port. */}}
{{- define "mcp-bridge.shards" -}}
{{- $n := int (default 1 .Values.mcp.shards) -}}
{{- if or (lt $n 1) (gt $n 64) -}}
{{- fail (printf "mcp.shards is %d: it must be from 1 to 64" $n) -}}
{{- end -}}
{{- $port := int .Values.mcpPort -}}
{{- $admin := int .Values.admin.port -}}
{{- if and (gt $n 1) (ge $admin $port) (lt $admin (add $port $n)) -}}
{{- fail (printf "admin.port %d is one of the MCP shard ports %d..%d (mcpPort .. mcpPort+mcp.shards-1): set admin.port outside them" $admin $port (add $port $n -1)) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* The configSources Istiod needs: one xds:// per shard, then k8s://. */}}
{{- define "mcp-bridge.configSources" -}}
{{- $n := int (include "mcp-bridge.shards" .) -}}
configSources:
{{- range $i := until $n }}
  - address: xds://{{ include "mcp-bridge.fullname" $ }}.{{ $.Release.Namespace }}.svc:{{ add (int $.Values.mcpPort) $i }}
{{- end }}
  - address: k8s://
{{- end -}}

{{/* The configuration file: the user's config with the listeners the chart controls. */}}
{{- define "mcp-bridge.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- /* mcp.address (and mcp.tls) are the chart's; the rest of config.mcp (pacing, limits) is kept. */ -}}
{{- $mcp := merge (dict "address" (printf ":%d" (int .Values.mcpPort))) (default (dict) $cfg.mcp) -}}
{{- if .Values.tlsSecret -}}
{{- $_ := set $mcp "tls" (dict "certFile" "/etc/mcp-bridge/tls/tls.crt" "keyFile" "/etc/mcp-bridge/tls/tls.key") -}}
{{- end -}}
{{- $shards := int (include "mcp-bridge.shards" .) -}}
{{- if gt $shards 1 -}}
{{- $_ := set $mcp "shards" $shards -}}
{{- end -}}
{{- $_ := set $cfg "mcp" $mcp -}}
{{- if .Values.admin.expose -}}
{{- $_ := set $cfg "admin" (dict "address" (printf ":%d" (int .Values.admin.port))) -}}
{{- else if gt $shards 1 -}}
{{- /* The default admin address, 127.0.0.1:18849, is shard 1's port with the default mcpPort. */ -}}
{{- $_ := set $cfg "admin" (dict "address" (printf "127.0.0.1:%d" (int .Values.admin.port))) -}}
{{- end -}}
{{- if .Values.state.enabled -}}
{{- $_ := set $cfg "state" (merge (dict "file" .Values.state.file) (default (dict) $cfg.state)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
