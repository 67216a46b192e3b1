package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/mcp-bridge/mcp-bridge/mcp"
)

// serve runs the bridge until SIGINT or SIGTERM.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	p, err := buildPipeline(cfg, log)
	if err != nil {
		return err
	}

	// The MCP listener comes up first and at once: Istiod exits if its xds:// source is
	// unreachable at start. Requests made before the registries have synced wait for the first push
	// instead of receiving an empty state (which would make Istiod delete what it knows).
	mcpLis, err := net.Listen("tcp", cfg.MCP.Address)
	if err != nil {
		return fmt.Errorf("MCP listener on %s: %w", cfg.MCP.Address, err)
	}
	grpcOpts := mcp.ServerOptionsFor(cfg.MCP.Limits)
	if cfg.MCP.TLS.Enabled() {
		certs, err := newCertReloader(cfg.MCP.TLS.CertFile, cfg.MCP.TLS.KeyFile)
		if err != nil {
			mcpLis.Close()
			return err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(certs.config())))
	}
	grpcServer := grpc.NewServer(grpcOpts...)
	p.server.Register(grpcServer)
	// Two health services: "" is readiness (SERVING once the first push is served) and "liveness"
	// is SERVING while the process runs. A bridge waiting for an unreachable registry's first sync
	// is alive but not ready; a liveness probe on readiness would restart it in a loop.
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthServer.SetServingStatus(livenessService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(grpcServer, healthServer)

	adminLis, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		mcpLis.Close()
		return fmt.Errorf("admin listener on %s: %w", cfg.Admin.Address, err)
	}
	ready := func() (bool, string) { return p.ready() }
	adminServer := &http.Server{
		Handler: admin.Handler(admin.Sources{
			Ready: ready,
			Registries: func() any {
				return map[string]any{"registries": p.merger.Status(), "adapters": p.describe(), "state": p.stateStatus()}
			},
			Clients: func(offset, limit int) any { return p.server.ClientsPage(offset, limit) },
			Invalid: func() any { return p.invalid() },
			Resources: func(w io.Writer, kind string) error {
				return bridge.Render(w, bridge.AllResources(p.bridge.Output(), p.bridge.Static()), bridge.RenderOptions{Format: "yaml", Versions: true, Kind: kind})
			},
			Gatherer: p.metrics,
			Logger:   log.With("component", "admin"),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	log.Info("mcp-bridge starting", "version", version(), "mcp", mcpLis.Addr().String(), "tls", cfg.MCP.TLS.Enabled(),
		"admin", adminLis.Addr().String(), "registries", strings.Join(cfg.RegistryNames(), ","), "endpointMode", cfg.Translate.EndpointMode)

	errc := make(chan error, 2)
	go func() { errc <- grpcServer.Serve(mcpLis) }()
	go func() {
		if err := adminServer.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	// Restored before the adapters start (and after the listeners, which Istiod needs at once;
	// it gets no answer before the first push anyway). The state file outlives the adapters: it
	// is written last, with what they left.
	p.restoreState()
	stateCtx, stopState := context.WithCancel(context.Background())
	defer stopState()
	stateDone := p.runState(stateCtx)
	adapters := p.runAdapters(ctx)
	bridgeDone := make(chan struct{})
	go func() {
		p.bridge.Run(ctx)
		close(bridgeDone)
	}()
	go watchReadiness(ctx, ready, healthServer, log)

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
	if err := p.server.Shutdown(shutdownCtx); err != nil {
		log.Warn("MCP streams did not end in time", "error", err)
	}
	stopped := make(chan struct{})
	go func() {
		grpcServer.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		grpcServer.Stop()
	}
	_ = adminServer.Shutdown(shutdownCtx)
	adapters.Wait()
	<-bridgeDone
	stopState()
	<-stateDone
	return nil
}

// ready is true once every registry has synced or had its last-known state restored from the
// state file (or protection.initialSyncTimeout passed), and the first push has been served. A
// registry that fails before its first sync, with nothing restored, keeps the bridge unready:
// serving without it would make Istiod delete its services.
func (p *pipeline) ready() (bool, string) {
	if !p.merger.Ready() {
		var waiting []string
		for _, s := range p.merger.Status() {
			if !s.AwaitingInitialSync {
				continue
			}
			w := s.Name
			if s.LastError != "" {
				w += " (failing: " + s.LastError + ")"
			}
			waiting = append(waiting, w)
		}
		return false, "waiting for the first sync of registries with no restored state: " + strings.Join(waiting, ", ")
	}
	if !p.bridge.Pushed() {
		return false, "first push not done yet"
	}
	return true, ""
}

// invalid lists what the last push did not emit, with reasons.
func (p *pipeline) invalid() any {
	out := p.bridge.Output()
	if out == nil {
		return map[string]any{"invalid": []any{}, "warnings": []any{}}
	}
	return map[string]any{"invalid": out.Invalid, "warnings": out.Warnings}
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
