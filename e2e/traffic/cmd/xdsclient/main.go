// Command xdsclient is a proxyless gRPC client for end-to-end tests: it resolves xds:/// targets
// through the xDS server named by GRPC_XDS_BOOTSTRAP (Istiod), and on each POST /count sends a
// batch of RPCs and reports which backend answered each. grpc-go reads the bootstrap once per
// process, so every test that needs its own Istiod runs its own xdsclient.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and xDS balancers

	"github.com/mcp-bridge/mcp-bridge/e2e/traffic/wire"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address of the control HTTP API")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *listen, log); err != nil {
		log.Error("xdsclient failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen string, log *slog.Logger) error {
	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		return errors.New("GRPC_XDS_BOOTSTRAP is not set")
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	c := &client{log: log, conns: map[string]*grpc.ClientConn{}}
	defer c.close()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.CountPath, c.handleCount)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("xdsclient listening", "addr", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// client keeps one ClientConn per target, so its xDS watches stay open between batches and a
// later batch sees configuration changes as soon as Istiod pushes them.
type client struct {
	log   *slog.Logger
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.Close()
	}
}

func (c *client) conn(target string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[target]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns[target] = cc
	return cc, nil
}

func (c *client) handleCount(w http.ResponseWriter, r *http.Request) {
	var req wire.CountRequest
	resp := wire.CountResponse{Counts: map[string]int{}, Errors: map[string]int{}}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		resp.Error = "decoding request: " + err.Error()
		writeJSON(w, resp)
		return
	}
	cc, err := c.conn(req.Target)
	if err != nil {
		resp.Error = fmt.Sprintf("creating channel to %s: %v", req.Target, err)
		writeJSON(w, resp)
		return
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx := r.Context()
	if len(req.Metadata) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(req.Metadata))
	}
	stub := testgrpc.NewTestServiceClient(cc)
	start := time.Now()
	for range req.N {
		id, err := call(ctx, cc, stub, req.Method, timeout, req.WaitForReady)
		if err != nil {
			resp.Errors[err.Error()]++
			continue
		}
		resp.Counts[id]++
	}
	resp.ElapsedMillis = float64(time.Since(start).Microseconds()) / 1000
	c.log.Info("batch done", "target", req.Target, "n", req.N, "counts", resp.Counts, "errors", resp.Errors, "elapsedMillis", resp.ElapsedMillis)
	writeJSON(w, resp)
}

func call(ctx context.Context, cc *grpc.ClientConn, stub testgrpc.TestServiceClient, method string, timeout time.Duration, waitForReady bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in := &testgrpc.SimpleRequest{FillServerId: true}
	out := &testgrpc.SimpleResponse{}
	var err error
	if method != "" {
		err = cc.Invoke(ctx, method, in, out, grpc.WaitForReady(waitForReady))
	} else {
		out, err = stub.UnaryCall(ctx, in, grpc.WaitForReady(waitForReady))
	}
	if err != nil {
		return "", err
	}
	return out.GetServerId(), nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
