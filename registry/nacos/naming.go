package nacos

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/nacos_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_cache"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/http_agent"
	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/common/nacos_server"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/util"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// grpcNaming is a Nacos naming client that speaks only the gRPC protocol.
//
// Why not clients.NewNamingClient: the SDK's naming client always builds its Nacos 1.x HTTP
// proxy too, and that proxy starts a UDP "push receiver" on every interface (a random port in
// 54951-55950). Whatever datagram reaches it — from anyone, unauthenticated — is applied to the
// service cache and handed to the subscription callbacks: one datagram redirected a service to
// an address of the sender's choosing, and its lastRefTime, set in the future, made the client
// drop every real update as out of date. No option turns that receiver off, and it keeps its
// socket until a datagram arrives after the client is closed. The bridge never needs it: it
// only lists and subscribes, which Nacos 2.x serves over gRPC. So this type assembles the same
// SDK parts NewNamingClient does — the cache, the server list with its login, the gRPC proxy —
// and leaves the HTTP proxy (push receiver and heartbeat reactor) out. The only writers of
// the cache are then the gRPC connection's answers and pushes.
type grpcNaming struct {
	namespaceID string // as the server knows it: "public" for the default namespace
	cancel      context.CancelFunc
	holder      *naming_cache.ServiceInfoHolder
	proxy       *naming_grpc.NamingGrpcProxy

	closeOnce sync.Once
}

// newGRPCNaming does what clients.NewNamingClient does, without the HTTP proxy.
func newGRPCNaming(cc constant.ClientConfig, servers []constant.ServerConfig) (*grpcNaming, error) {
	// NacosClient applies the SDK's defaults to both configurations, as NewNamingClient does.
	nc := &nacos_client.NacosClient{}
	if err := nc.SetClientConfig(cc); err != nil {
		return nil, err
	}
	if err := nc.SetServerConfig(servers); err != nil {
		return nil, err
	}
	cc, _ = nc.GetClientConfig()
	servers, _ = nc.GetServerConfig()
	if err := logger.InitLogger(logger.BuildLoggerConfig(cc)); err != nil {
		return nil, fmt.Errorf("SDK logger: %w", err)
	}
	if cc.NamespaceId == "" {
		cc.NamespaceId = constant.DEFAULT_NAMESPACE_ID
	}
	agent := &http_agent.HttpAgent{TlsConfig: cc.TLSCfg} // the login requests use HTTP
	ctx, cancel := context.WithCancel(context.Background())
	holder := naming_cache.NewServiceInfoHolder(cc.NamespaceId, cc.CacheDir, cc.UpdateCacheWhenEmpty, cc.NotLoadCacheAtStart)
	srv, err := nacos_server.NewNacosServer(ctx, servers, cc, agent, cc.TimeoutMs, cc.Endpoint, map[string][]string{
		"Client-Version": {constant.CLIENT_VERSION},
		"User-Agent":     {constant.CLIENT_VERSION},
		"Request-Module": {"Naming"},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	proxy, err := naming_grpc.NewNamingGrpcProxy(ctx, cc, srv, holder)
	if err != nil {
		cancel()
		return nil, err
	}
	return &grpcNaming{namespaceID: cc.NamespaceId, cancel: cancel, holder: holder, proxy: proxy}, nil
}

func (g *grpcNaming) GetAllServicesInfo(p vo.GetAllServiceInfoParam) (model.ServiceList, error) {
	if p.GroupName == "" {
		p.GroupName = constant.DEFAULT_GROUP
	}
	if p.NameSpace == "" {
		p.NameSpace = g.namespaceID
	}
	return g.proxy.GetServiceList(p.PageNo, p.PageSize, p.GroupName, p.NameSpace, &model.ExpressionSelector{})
}

// Subscribe registers the callback and always reads the service from the server.
//
// The cached entry is dropped before the request goes out, so the server's answer always
// applies: the SDK ignores any data whose lastRefTime is not later than the cached one's, so
// an entry with a lastRefTime in the future (a server node with its clock ahead) would
// otherwise hide every real change until that time. Dropping it before the request, not
// after the answer, keeps a push that races the answer: the later one wins on lastRefTime.
func (g *grpcNaming) Subscribe(p *vo.SubscribeParam) error {
	if p.GroupName == "" {
		p.GroupName = constant.DEFAULT_GROUP
	}
	clusters := strings.Join(p.Clusters, ",")
	full := util.GetGroupName(p.ServiceName, p.GroupName)
	g.holder.RegisterCallback(full, clusters, &p.SubscribeCallback)
	g.holder.StopUpdateIfContain(full, clusters)
	svc, err := g.proxy.Subscribe(p.ServiceName, p.GroupName, clusters)
	if err != nil {
		return err
	}
	g.holder.ProcessService(&svc)
	return nil
}

// Unsubscribe removes the callback, the cached entry and the server-side subscription.
func (g *grpcNaming) Unsubscribe(p *vo.SubscribeParam) error {
	if p.GroupName == "" {
		p.GroupName = constant.DEFAULT_GROUP
	}
	clusters := strings.Join(p.Clusters, ",")
	full := util.GetGroupName(p.ServiceName, p.GroupName)
	g.holder.DeregisterCallback(full, clusters, &p.SubscribeCallback)
	g.holder.StopUpdateIfContain(full, clusters)
	if err := g.proxy.Unsubscribe(p.ServiceName, p.GroupName, clusters); err != nil {
		return fmt.Errorf("unsubscribing from %s on the Nacos server: %w", full, err)
	}
	return nil
}

// CloseClient ends the gRPC connection and the login refresher.
func (g *grpcNaming) CloseClient() {
	g.closeOnce.Do(func() {
		g.proxy.CloseClient()
		g.cancel()
	})
}
