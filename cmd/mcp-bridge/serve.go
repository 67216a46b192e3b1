package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mcp-bridge/mcp-bridge/admin"
	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// serve runs the bridge until SIGINT or SIGTERM. With a configuration file it reloads it when it
// changes and on SIGHUP (load reads and validates it, flags included).
func serve(ctx context.Context, cfg *config.Config, configPath string, load func() (*config.Config, error), log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	p, err := pipeline.New(cfg, pipeline.Options{Logger: log})
	if err != nil {
		return err
	}

	// The MCP listeners come up first and at once: Istiod exits if an xds:// source is
	// unreachable at start. Requests made before the registries have synced wait for the first push
	// instead of receiving an empty state (which would make Istiod delete what it knows). One
	// listener per shard (mcp.shards), each with the same TLS, limits and keepalive.
	addrs := cfg.MCP.Addresses()
	var mcpLis []net.Listener
	closeMCP := func() {
		for _, l := range mcpLis {
			l.Close()
		}
	}
	for i, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeMCP()
			if len(addrs) > 1 {
				return fmt.Errorf("MCP listener of shard %d on %s: %w", i, addr, err)
			}
			return fmt.Errorf("MCP listener on %s: %w", addr, err)
		}
		mcpLis = append(mcpLis, l)
	}
	grpcOpts := mcp.ServerOptionsFor(cfg.MCP.Limits)
	if cfg.MCP.TLS.Enabled() {
		certs, err := newCertReloader(cfg.MCP.TLS.CertFile, cfg.MCP.TLS.KeyFile)
		if err != nil {
			closeMCP()
			return err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(certs.config())))
	}
	// Two health services: "" is readiness (SERVING once the first push is served on every shard)
	// and "liveness" is SERVING while the process runs. A bridge waiting for an unreachable
	// registry's first sync is alive but not ready; a liveness probe on readiness would restart it
	// in a loop. Every shard's port answers both.
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthServer.SetServingStatus(livenessService, healthpb.HealthCheckResponse_SERVING)
	grpcServers := make([]*grpc.Server, len(mcpLis))
	for i := range grpcServers {
		grpcServers[i] = grpc.NewServer(grpcOpts...)
		p.Servers()[i].Register(grpcServers[i])
		healthpb.RegisterHealthServer(grpcServers[i], healthServer)
	}

	adminLis, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		closeMCP()
		return fmt.Errorf("admin listener on %s: %w", cfg.Admin.Address, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.Admin.Address); cfg.Admin.Token.IsZero() && !isLoopback(host) {
		log.Warn("admin listener is reachable beyond this host without admin.token: the status and debug pages show the whole service estate", "admin", cfg.Admin.Address)
	}
	adminServer := &http.Server{
		Handler: admin.Handler(admin.Sources{
			Ready:      p.Ready,
			Registries: p.Registries,
			Clients:    p.Clients,
			Invalid:    p.Invalid,
			Rules:      p.RulesStatus,
			Governance: p.GovernanceStatus,
			Scopes:     p.ScopesStatus,
			Config:     func() any { return p.ConfigStatus() },
			Resources: func(w io.Writer, kind string) error {
				return bridge.Render(w, p.Bridge().Output().Served(), bridge.RenderOptions{Format: "yaml", Versions: true, Kind: kind})
			},
			CheckKind:    istio.CheckKind,
			Overview:     func() admin.Overview { return overview(p) },
			History:      p.History().Find,
			HistoryStats: p.History().Stats,
			Token:        adminToken(cfg.Admin.Token),
			Profiling:    cfg.Admin.Profiling,
			Gatherer:     p.Gatherer(),
			Logger:       log.With("component", "admin"),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	mcpAddrs := make([]string, len(mcpLis))
	for i, l := range mcpLis {
		mcpAddrs[i] = l.Addr().String()
	}
	log.Info("mcp-bridge starting", "version", version(), "mcp", strings.Join(mcpAddrs, ","), "shards", len(mcpLis), "tls", cfg.MCP.TLS.Enabled(),
		"admin", adminLis.Addr().String(), "registries", strings.Join(cfg.RegistryNames(), ","), "endpointMode", cfg.Translate.EndpointMode)

	errc := make(chan error, len(mcpLis)+1)
	for i, g := range grpcServers {
		go func() { errc <- g.Serve(mcpLis[i]) }()
	}
	go func() {
		if err := adminServer.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	pipelineDone := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(pipelineDone)
	}()
	if configPath != "" {
		w := p.Watch(configPath, load)
		go w.Run(ctx)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					w.Trigger()
				}
			}
		}()
	}
	go watchReadiness(ctx, p.Ready, healthServer, log)
	go logStartupProgress(ctx, p.Ready, p.Merger().Status, log, progressInterval)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		log.Error("listener failed", "error", err)
		stop()
	}

	// Give connected Istiods a clean end of stream; they keep their last config and reconnect.
	// The MCP streams end first: GracefulStop alone would wait for them forever.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, srv := range p.Servers() {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("MCP streams did not end in time", "shard", i, "error", err)
		}
	}
	stopped := make(chan struct{})
	go func() {
		for _, g := range grpcServers {
			g.GracefulStop()
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		for _, g := range grpcServers {
			g.Stop()
		}
	}
	_ = adminServer.Shutdown(shutdownCtx)
	<-pipelineDone
	return nil
}

// adminToken is the admin listener's token source; nil when admin.token is unset.
func adminToken(s registry.Secret) func() (string, error) {
	if s.IsZero() {
		return nil
	}
	return s.Read
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// livenessService is the gRPC health service name liveness probes ask for.
const livenessService = "liveness"

// watchReadiness mirrors readiness into the gRPC health service, so Kubernetes can probe the MCP
// port itself (a grpc readiness probe) while the admin listener stays on loopback.
func watchReadiness(ctx context.Context, ready func() (bool, string), h *health.Server, log *slog.Logger) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	was := false
	for {
		if ok, _ := ready(); ok != was {
			was = ok
			if ok {
				h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
				log.Info("ready: serving")
			} else {
				h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
			}
		}
		select {
		case <-ctx.Done():
			h.Shutdown()
			return
		case <-t.C:
		}
	}
}
