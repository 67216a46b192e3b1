//go:build tools

// Package tools pins the Istio version the end-to-end tests build pilot-discovery from.
package tools

import _ "istio.io/istio/pilot/pkg/bootstrap"
