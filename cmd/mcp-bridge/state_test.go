package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
)

// bridgeRun is one `mcp-bridge serve` in this process, on free ports.
type bridgeRun struct {
	t                  *testing.T
	mcpAddr, adminAddr string
	cancel             context.CancelFunc
	done               chan int
	mu                 sync.Mutex
	log                strings.Builder
}

func (r *bridgeRun) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

func (r *bridgeRun) logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func startServe(t *testing.T, config string) *bridgeRun {
	t.Helper()
	r := &bridgeRun{t: t, mcpAddr: freeAddr(t), adminAddr: freeAddr(t), done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- run(ctx, []string{"serve", "--config", config, "--mcp-addr", r.mcpAddr, "--admin-addr", r.adminAddr}, io.Discard, r)
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends the run as SIGTERM does and waits for it (the state file's last write included).
func (r *bridgeRun) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		if code != 0 {
			r.t.Errorf("serve exited %d; log:\n%s", code, r.logs())
		}
		r.done <- code // stop is idempotent
	case <-time.After(15 * time.Second):
		r.t.Fatalf("serve did not stop; log:\n%s", r.logs())
	}
}

func (r *bridgeRun) get(path string) (int, string) {
	resp, err := http.Get("http://" + r.adminAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *bridgeRun) waitFor(what string, timeout time.Duration, cond func() error) {
	r.t.Helper()
	if _, err := testkit.Poll(timeout, cond); err != nil {
		r.t.Fatalf("%s: %v; log:\n%s", what, err, r.logs())
	}
}

func (r *bridgeRun) ready() error {
	if code, body := r.get("/readyz"); code != http.StatusOK {
		return fmt.Errorf("/readyz %d %s", code, strings.TrimSpace(body))
	}
	return nil
}

// health checks the gRPC health service on the MCP port (what Kubernetes' grpc probes ask).
func (r *bridgeRun) health(want healthpb.HealthCheckResponse_ServingStatus) error {
	return r.serviceHealth("", want)
}

// serviceHealth checks one named service of the gRPC health service ("" is readiness).
func (r *bridgeRun) serviceHealth(service string, want healthpb.HealthCheckResponse_ServingStatus) error {
	cc, err := grpc.NewClient(r.mcpAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("health check of %q: %w", service, err)
	}
	if resp.Status != want {
		return fmt.Errorf("health status of %q %v, want %v", service, resp.Status, want)
	}
	return nil
}

// registriesPage is the part of /debug/registries these tests read.
type registriesPage struct {
	Registries []struct {
		Name                string `json:"name"`
		Stale               bool   `json:"stale"`
		Synced              bool   `json:"synced"`
		Protected           bool   `json:"protected"`
		AwaitingInitialSync bool   `json:"awaitingInitialSync"`
		Instances           int    `json:"instances"`
		LastError           string `json:"lastError"`
	} `json:"registries"`
	State struct {
		Writes uint64 `json:"writes"`
		Load   struct {
			Result string `json:"result"`
			Error  string `json:"error"`
		} `json:"load"`
	} `json:"state"`
}

func (r *bridgeRun) registries() (registriesPage, error) {
	code, body := r.get("/debug/registries")
	var page registriesPage
	if err := json.Unmarshal([]byte(body), &page); code != http.StatusOK || err != nil || len(page.Registries) != 1 {
		return page, fmt.Errorf("/debug/registries %d (%v): %s", code, err, body)
	}
	return page, nil
}

// serviceEntries asks the MCP listener for ServiceEntries, as askServiceEntries, and requires an
// answer.
func serviceEntries(t *testing.T, addr string) map[string][]string {
	t.Helper()
	got, answered := askServiceEntries(t, addr, 10*time.Second)
	if !answered {
		t.Fatal("no ServiceEntry response within 10s")
	}
	return got
}

// askServiceEntries asks the MCP listener, as Istiod does (state of the world, empty resource
// names), for ServiceEntries and returns each one's hosts and endpoint addresses, or false if no
// answer came within wait.
func askServiceEntries(t *testing.T, addr string, wait time.Duration) (map[string][]string, bool) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const typeURL = "networking.istio.io/v1/ServiceEntry"
	if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: typeURL}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if status.Code(err) == codes.DeadlineExceeded {
		return nil, false
	}
	if err != nil {
		t.Fatalf("ServiceEntry request: %v", err)
	}
	out := map[string][]string{}
	for _, a := range resp.Resources {
		var res mcpapi.Resource
		var se networking.ServiceEntry
		if err := a.UnmarshalTo(&res); err != nil {
			t.Fatal(err)
		}
		if err := res.Body.UnmarshalTo(&se); err != nil {
			t.Fatal(err)
		}
		var eps []string
		for _, ep := range se.Endpoints {
			eps = append(eps, ep.Address)
		}
		slices.Sort(eps)
		out[strings.Join(se.Hosts, ",")] = eps
	}
	return out, true
}

// TestStateSurvivesUnreadableRegistry: a bridge whose file registry cannot be read after a
// restart keeps serving the services it served before, from its state file, at once and over
// MCP; with an unusable state file it says why and waits for the registry instead of serving
// nothing for it.
func TestStateSurvivesUnreadableRegistry(t *testing.T) {
	cases := []struct {
		name       string
		unreadable func(t *testing.T, services string)
	}{
		{"services file deleted", func(t *testing.T, services string) {
			if err := os.Remove(services); err != nil {
				t.Fatal(err)
			}
		}},
		{"services file malformed", func(t *testing.T, services string) {
			writeFile(t, filepath.Dir(services), filepath.Base(services), "services:\n  - name: orders\n    instances: {oops\n")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			services := writeFile(t, dir, "services.yaml", `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
      - {address: 10.1.0.2, ports: {http: 8080}}
`)
			stateFile := filepath.Join(dir, "state", "state.json.gz")
			if err := os.Mkdir(filepath.Dir(stateFile), 0o700); err != nil {
				t.Fatal(err)
			}
			// A long initial-sync timeout: without restored state the bridge would wait for the
			// unreadable registry far beyond this test's patience.
			config := writeFile(t, dir, "config.yaml", fmt.Sprintf(`registries:
  - name: shop
    type: file
    file: {path: %s}
protection:
  initialSyncTimeout: 10m
state:
  file: %s
  interval: 100ms
`, services, stateFile))
			want := map[string][]string{"orders.file": {"10.1.0.1", "10.1.0.2"}}

			first := startServe(t, config)
			first.waitFor("the first run to be ready", 20*time.Second, first.ready)
			if got := serviceEntries(t, first.mcpAddr); !equalEntries(got, want) {
				t.Fatalf("first run serves %v, want %v", got, want)
			}
			first.waitFor("the state file", 10*time.Second, func() error {
				_, err := os.Stat(stateFile)
				return err
			})
			first.stop()

			c.unreadable(t, services)
			second := startServe(t, config)
			second.waitFor("the restarted bridge to be ready on its restored state", 10*time.Second, second.ready)
			second.waitFor("the gRPC health service to say SERVING", 5*time.Second, func() error { return second.health(healthpb.HealthCheckResponse_SERVING) })
			if got := serviceEntries(t, second.mcpAddr); !equalEntries(got, want) {
				t.Errorf("after the restart the bridge serves %v, want the restored %v", got, want)
			}
			second.waitFor("the registry's failure to be reported", 10*time.Second, func() error {
				page, err := second.registries()
				if err != nil {
					return err
				}
				st := page.Registries[0]
				if !st.Stale || st.Synced || !st.Protected || st.Instances != 2 || st.LastError == "" || page.State.Load.Result != "restored" {
					return fmt.Errorf("page %+v; want shop stale, failed and protected with its 2 restored instances", page)
				}
				return nil
			})
			second.stop()

			// The state file written at the second shutdown still holds the services: a third
			// start restores them again. A truncated file instead is reported and ignored, and
			// the bridge then waits for the unreadable registry rather than serve without it.
			if saved, err := os.ReadFile(stateFile); err != nil || len(saved) < 20 {
				t.Fatalf("state file after the second run: %d bytes, %v", len(saved), err)
			} else if err := os.WriteFile(stateFile, saved[:len(saved)/2], 0o600); err != nil {
				t.Fatal(err)
			}
			third := startServe(t, config)
			third.waitFor("the truncated state file to be reported", 10*time.Second, func() error {
				page, err := third.registries()
				if err != nil {
					return err
				}
				if page.State.Load.Result != "ignored" || !strings.Contains(page.State.Load.Error, "corrupt") || !page.Registries[0].AwaitingInitialSync {
					return fmt.Errorf("page %+v; want the state file ignored as corrupt and shop awaited", page)
				}
				return nil
			})
			if code, body := third.get("/readyz"); code == http.StatusOK || !strings.Contains(body, "shop (failing: ") {
				t.Errorf("/readyz %d %q; want unready, naming the failing registry", code, body)
			}
			if err := third.health(healthpb.HealthCheckResponse_NOT_SERVING); err != nil {
				t.Error(err)
			}
			if l := third.logs(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "state file is unusable") {
				t.Errorf("no error logged for the truncated state file:\n%s", l)
			}
			// Istiod asking now gets no answer, so it keeps what it has; an answer without shop's
			// services would make it delete them.
			if got, answered := askServiceEntries(t, third.mcpAddr, time.Second); answered {
				t.Errorf("the bridge answered %v while its only registry is unread", got)
			}
		})
	}
}

func equalEntries(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for h, eps := range want {
		if !slices.Equal(got[h], eps) {
			return false
		}
	}
	return true
}
