// Package deps holds the module's pinned dependencies in go.mod while the packages that use them
// are being written. Delete it once every import below has a real user.
package deps

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/go-zookeeper/zk"
	_ "github.com/nacos-group/nacos-sdk-go/v2/clients"
	_ "github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	_ "github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "google.golang.org/grpc"
	_ "google.golang.org/grpc/health"
	_ "google.golang.org/grpc/xds"
	_ "google.golang.org/protobuf/proto"
	_ "gopkg.in/yaml.v3"
	_ "istio.io/api/mcp/v1alpha1"
	_ "istio.io/api/mesh/v1alpha1"
	_ "istio.io/api/networking/v1alpha3"
	_ "sigs.k8s.io/yaml"
)
