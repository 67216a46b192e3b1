package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic/wire"
)

// ClientPackage is the main package of the proxyless client; build it with
// Suite.Build(t, ClientPackage) or servers.BuildBinary.
const ClientPackage = "./e2e/traffic/cmd/xdsclient"

// DefaultClientNodeID is the client's node id: a sidecar in namespace default, distinct from the
// xdsview's so Istiod's debug pages tell them apart.
const DefaultClientNodeID = "sidecar~10.0.0.2~xdsclient.default~default.svc.cluster.local"

// ClientOptions configures StartClient.
type ClientOptions struct {
	// Binary is the built ClientPackage (required).
	Binary string
	// XDSAddr is Istiod's plaintext xDS address (Istiod.GRPCAddr).
	XDSAddr string
	// NodeID defaults to DefaultClientNodeID.
	NodeID string
	// Metadata is merged over the node metadata Istio needs for proxyless clients
	// (GENERATOR grpc, NAMESPACE default, ISTIO_VERSION).
	Metadata map[string]any
	// Locality is the node's locality in the bootstrap, "region/zone/subzone" (trailing parts
	// may be left out): Istiod orders a locality-load-balanced cluster's endpoints into
	// priorities relative to it, and grpc-go's priority balancer uses priority 0 while it has
	// a ready endpoint. Empty: none.
	Locality string
}

// Client is a running proxyless gRPC client process.
type Client struct {
	*servers.Process
	url string
}

// Result is what a batch of RPCs got.
type Result struct {
	// Counts is RPCs answered, by backend address.
	Counts map[string]int
	// Errors is RPCs failed, by error text.
	Errors  map[string]int
	Elapsed time.Duration
}

// Failed is the number of failed RPCs.
func (r *Result) Failed() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// StartClient writes an xDS bootstrap pointing at opts.XDSAddr and starts the client with it. The
// client stops when the test ends.
func StartClient(t testing.TB, opts ClientOptions) *Client {
	t.Helper()
	if opts.Binary == "" || opts.XDSAddr == "" {
		t.Fatalf("traffic: ClientOptions.Binary and XDSAddr are required")
	}
	if opts.NodeID == "" {
		opts.NodeID = DefaultClientNodeID
	}
	bootstrap, err := BootstrapWithLocality(opts.XDSAddr, opts.NodeID, opts.Locality, opts.Metadata)
	if err != nil {
		t.Fatalf("traffic: %v", err)
	}
	path := filepath.Join(t.TempDir(), "xds-bootstrap.json")
	if err := os.WriteFile(path, bootstrap, 0o644); err != nil {
		t.Fatalf("traffic: writing bootstrap: %v", err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", servers.FreePort(t))
	cmd := exec.Command(opts.Binary, "-listen", listen)
	cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+path)
	p := servers.Start(t, "xdsclient", cmd)
	if err := p.WaitReady(20*time.Second, servers.DialCheck(listen)); err != nil {
		t.Fatalf("traffic: %v", err)
	}
	return &Client{Process: p, url: "http://" + listen}
}

// Bootstrap renders a grpc-go xDS bootstrap for Istiod at xdsAddr. Istio serves proxyless
// clients only with GENERATOR grpc and a four-part sidecar node id; it names server listeners
// by the template below.
func Bootstrap(xdsAddr, nodeID string, metadata map[string]any) ([]byte, error) {
	return BootstrapWithLocality(xdsAddr, nodeID, "", metadata)
}

// BootstrapWithLocality is Bootstrap with the node's locality ("region/zone/subzone", trailing
// parts optional; "" for none), written as the bootstrap's node.locality.
func BootstrapWithLocality(xdsAddr, nodeID, locality string, metadata map[string]any) ([]byte, error) {
	md := map[string]any{"GENERATOR": "grpc", "NAMESPACE": "default", "ISTIO_VERSION": "1.31.0", "CLUSTER_ID": "Kubernetes"}
	maps.Copy(md, metadata)
	node := map[string]any{"id": nodeID, "metadata": md}
	if locality != "" {
		parts := append(strings.SplitN(locality, "/", 3), "", "")
		node["locality"] = map[string]any{"region": parts[0], "zone": parts[1], "sub_zone": parts[2]}
	}
	b := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node":                                   node,
		"server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s",
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering xDS bootstrap: %w", err)
	}
	return out, nil
}

// Target is the xds:/// URI of host:port. Hosts must be lower case: Istio lower-cases route
// domains and grpc-go matches them case-sensitively.
func Target(host string, port int) string { return fmt.Sprintf("xds:///%s:%d", host, port) }

// Call is one batch of RPCs.
type Call struct {
	Target   string
	N        int
	Metadata map[string]string
	// Timeout bounds each RPC (default 1 s).
	Timeout time.Duration
	// WaitForReady makes RPCs wait for a usable backend instead of failing fast.
	WaitForReady bool
	// Method is the full method path ("/<service>/<method>"); empty: TestService/UnaryCall.
	Method string
}

// Do runs a batch of RPCs in the client process.
func (c *Client) Do(ctx context.Context, call Call) (*Result, error) {
	body, err := json.Marshal(wire.CountRequest{
		Target:        call.Target,
		N:             call.N,
		Metadata:      call.Metadata,
		TimeoutMillis: int(call.Timeout.Milliseconds()),
		WaitForReady:  call.WaitForReady,
		Method:        call.Method,
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+wire.CountPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: reading answer: %w", err)
	}
	var out wire.CountResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("xdsclient: %d %s: %w", resp.StatusCode, raw, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("xdsclient: %s", out.Error)
	}
	return &Result{Counts: out.Counts, Errors: out.Errors, Elapsed: time.Duration(out.ElapsedMillis * float64(time.Millisecond))}, nil
}

// Count sends n RPCs to target and returns who answered, failing the test if the batch cannot
// run (failed RPCs are counted in Result.Errors, not fatal). Before the batch it waits, up to
// 20 s, for one RPC to succeed, so the first batch does not count the client's own xDS start-up.
func (c *Client) Count(t testing.TB, target string, n int) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	warm, err := c.Do(ctx, Call{Target: target, N: 1, WaitForReady: true, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("traffic: %v", err)
	}
	if warm.Failed() > 0 {
		t.Fatalf("traffic: no RPC to %s succeeded within 20 s: %s", target, describeErrors(warm.Errors))
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.Do(ctx, Call{Target: target, N: n})
	if err != nil {
		t.Fatalf("traffic: %v", err)
	}
	return res
}

func describeErrors(errs map[string]int) string {
	var parts []string
	for _, msg := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%d× %s", errs[msg], msg))
	}
	return strings.Join(parts, "; ")
}
