//go:build tools

// Package tools pins the Helm version the end-to-end tests render deploy/helm/mcp-bridge with
// (Debian has no helm package).
package tools

import _ "helm.sh/helm/v3/pkg/action"
