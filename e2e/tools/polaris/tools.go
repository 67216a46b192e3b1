//go:build tools

// Package tools pins the PolarisMesh server the end-to-end tests use as a Nacos (v1 HTTP, v2 gRPC)
// and Eureka protocol server: there is no Java Nacos or Eureka server on these machines.
package tools

import _ "github.com/polarismesh/polaris/bootstrap"
