//go:build tools

// Package tools pins the Kubernetes version the end-to-end tests build kube-apiserver from.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"
