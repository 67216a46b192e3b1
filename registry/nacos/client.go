package nacos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// namingClient is the part of the SDK's naming client the adapter uses. Tests substitute a fake
// only for behaviour no real server here produces.
type namingClient interface {
	GetAllServicesInfo(param vo.GetAllServiceInfoParam) (model.ServiceList, error)
	Subscribe(param *vo.SubscribeParam) error
	Unsubscribe(param *vo.SubscribeParam) error
	CloseClient()
}

// configClient is the part of the SDK's config client the adapter uses (Dubbo mappings).
type configClient interface {
	GetConfig(param vo.ConfigParam) (string, error)
	ListenConfig(param vo.ConfigParam) error
	CancelListenConfig(param vo.ConfigParam) error
	CloseClient()
}

// clientFactory makes the SDK clients of one namespace. The SDK binds a client to a namespace,
// so the adapter holds one naming client (one gRPC connection) per watched namespace.
type clientFactory interface {
	naming(namespace string) (namingClient, error)
	config(namespace string) (configClient, error)
}

// sdkFactory builds real nacos-sdk-go clients.
type sdkFactory struct {
	cfg      Config
	cacheDir string
}

// defaultCacheDir is where the SDK's files go when Config.CacheDir is unset: never the working
// directory, which may be read-only or shared.
func defaultCacheDir(registryName string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, registryName)
	if name == "" || name == "." || name == ".." {
		name = "default"
	}
	return filepath.Join(os.TempDir(), "mcp-bridge", "nacos", name)
}

// sdkNamespace is the namespace id the SDK expects: "" for public, which every Nacos 2.x version
// (and Polaris) reads as the default namespace.
func sdkNamespace(ns string) string {
	if ns == PublicNamespace {
		return ""
	}
	return ns
}

func (f *sdkFactory) clientConfig(namespace string) (constant.ClientConfig, error) {
	c := f.cfg
	if err := privateDir(f.cacheDir); err != nil {
		return constant.ClientConfig{}, err
	}
	cc := constant.ClientConfig{
		NamespaceId: sdkNamespace(namespace),
		TimeoutMs:   uint64(c.Timeout.Milliseconds()),
		// The SDK's disk cache is written (it cannot be turned off) but never trusted: a restart
		// reads the live server, so stale instances from a previous run never reach the mesh.
		CacheDir:            filepath.Join(f.cacheDir, "cache"),
		NotLoadCacheAtStart: true,
		DisableUseSnapShot:  true,
		// Without it the SDK never reports a service that dropped to zero instances.
		UpdateCacheWhenEmpty: true,
		LogDir:               filepath.Join(f.cacheDir, "log"),
		LogLevel:             c.SDKLogLevel,
		LogRollingConfig:     &constant.ClientLogRollingConfig{MaxSize: 20, MaxBackups: 3},
		AppName:              "mcp-bridge",
		Username:             c.Username,
	}
	var err error
	if cc.Password, err = c.Password.Read(); err != nil {
		return cc, fmt.Errorf("password: %w", err)
	}
	if cc.AccessKey, err = c.AccessKey.Read(); err != nil {
		return cc, fmt.Errorf("accessKey: %w", err)
	}
	if cc.SecretKey, err = c.SecretKey.Read(); err != nil {
		return cc, fmt.Errorf("secretKey: %w", err)
	}
	// Appointed: take TLS from here only, never from the SDK's environment variables.
	cc.TLSCfg = constant.TLSConfig{
		Appointed:          true,
		Enable:             c.TLS.Enabled,
		TrustAll:           c.TLS.InsecureSkipVerify,
		CaFile:             c.TLS.CAFile,
		CertFile:           c.TLS.CertFile,
		KeyFile:            c.TLS.KeyFile,
		ServerNameOverride: c.TLS.ServerName,
	}
	return cc, nil
}

func (f *sdkFactory) serverConfigs() []constant.ServerConfig {
	scheme := "http"
	if f.cfg.TLS.Enabled {
		scheme = "https"
	}
	out := make([]constant.ServerConfig, 0, len(f.cfg.Servers))
	for _, s := range f.cfg.Servers {
		host, port, _ := splitServer(s) // validated
		out = append(out, constant.ServerConfig{
			Scheme:      scheme,
			ContextPath: f.cfg.ContextPath,
			IpAddr:      host,
			Port:        uint64(port),
			GrpcPort:    uint64(port + f.cfg.GRPCPortOffset),
		})
	}
	return out
}

func (f *sdkFactory) naming(namespace string) (namingClient, error) {
	cc, err := f.clientConfig(namespace)
	if err != nil {
		return nil, err
	}
	// Not clients.NewNamingClient: that one opens a UDP listener anyone can feed (see grpcNaming).
	c, err := newGRPCNaming(cc, f.serverConfigs())
	if err != nil {
		return nil, fmt.Errorf("creating Nacos naming client for namespace %q: %w", namespace, err)
	}
	return c, nil
}

func (f *sdkFactory) config(namespace string) (configClient, error) {
	cc, err := f.clientConfig(namespace)
	if err != nil {
		return nil, err
	}
	c, err := clients.NewConfigClient(vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: f.serverConfigs()})
	if err != nil {
		return nil, fmt.Errorf("creating Nacos config client for namespace %q: %w", namespace, err)
	}
	return c, nil
}
