//go:build tools

// Package tools pins the HashiCorp Consul agent the Consul adapter's tests run (`consul agent -dev`):
// there is no Consul package or release download on these machines, only the Go module proxy.
package tools

import _ "github.com/hashicorp/consul"
