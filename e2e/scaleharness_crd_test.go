package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	mcpv1 "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// The CRD path: the same resources the bridge serves over MCP, written as custom resources to a
// real kube-apiserver and read from there by an Istiod with its default configSources (k8s://),
// the way CRD-writing bridges (Aeraki's) work. The writer is the bridge's own output: it
// subscribes to the bridge over MCP (so every resource has the bridge's exact spec, labels and
// annotations), and for every response creates, updates (PUT with the resourceVersion it last
// saw, as client-go's Update does) or deletes the objects whose content version changed. Writes
// run harnessCRDWorkers at a time over one HTTP/2 connection with no client-side rate limit, so
// a 100k set-up is bounded by the API server, not by the writer.

const harnessCRDWorkers = 32

// crdWriter mirrors the bridge's ServiceEntries and WorkloadEntries into a kube-apiserver.
type crdWriter struct {
	api    *servers.KubeAPIServer
	client *http.Client

	mu      sync.Mutex
	objects map[string]crdObject // "<plural>/<namespace>/<name>" -> what is written
	writes  map[string]time.Time // "host:<h>" / "addr:<a>" -> when the last write touching it started
	count   int                  // object writes
	bytes   int64                // request body bytes written
	synced  chan struct{}        // closed once both kinds' first responses are written
	err     error
}

type crdObject struct {
	version, resourceVersion string
}

// startCRDWriter subscribes to the MCP servers at addrs (every shard) and mirrors what they serve
// into api until the test ends.
func startCRDWriter(t *testing.T, api *servers.KubeAPIServer, addrs []string) *crdWriter {
	t.Helper()
	ca, err := os.ReadFile(api.CAFile)
	if err != nil {
		t.Fatalf("reading the API server's CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	w := &crdWriter{api: api, objects: map[string]crdObject{}, writes: map[string]time.Time{}, synced: make(chan struct{}),
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: harnessCRDWorkers,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var seMu sync.Mutex
	pending := len(addrs) * 2 // first responses still to write
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.follow(ctx, a, func() {
				seMu.Lock()
				defer seMu.Unlock()
				if pending--; pending == 0 {
					close(w.synced)
				}
			})
			if ctx.Err() == nil {
				w.mu.Lock()
				w.err = fmt.Errorf("CRD writer's MCP stream to %s: %w", a, err)
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// follow is one MCP stream: subscribe to both kinds, mirror each response, ACK it.
func (w *crdWriter) follow(ctx context.Context, addr string, first func()) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		return err
	}
	defer cc.Close()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: "crd-writer~127.0.0.1~crd-writer.istio-system~istio-system.svc.cluster.local"}
	plural := map[string]string{}
	for _, k := range istio.PilotKinds() {
		if k.Name == "ServiceEntry" || k.Name == "WorkloadEntry" {
			u := k.TypeURL(31)
			plural[u] = map[string]string{"ServiceEntry": "serviceentries", "WorkloadEntry": "workloadentries"}[k.Name]
			if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: u}); err != nil {
				return err
			}
		}
	}
	seen := map[string]bool{}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if err := w.mirror(ctx, plural[resp.GetTypeUrl()], resp.GetResources()); err != nil {
			return err
		}
		if !seen[resp.GetTypeUrl()] {
			seen[resp.GetTypeUrl()] = true
			first()
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
	}
}

// crdOp is one write: a create or update with its body, or a delete.
type crdOp struct {
	key, path, version string
	body               []byte
	keys               []string // change keys it touches
	del                bool
}

// mirror writes what changed in one state-of-the-world response of a kind.
func (w *crdWriter) mirror(ctx context.Context, plural string, resources []*anypb.Any) error {
	want := map[string]bool{}
	var ops []crdOp
	for _, a := range resources {
		var r mcpv1.Resource
		if err := a.UnmarshalTo(&r); err != nil {
			return fmt.Errorf("decoding an MCP resource: %w", err)
		}
		ns, name, _ := strings.Cut(r.GetMetadata().GetName(), "/")
		key := plural + "/" + ns + "/" + name
		want[key] = true
		w.mu.Lock()
		old, ok := w.objects[key]
		w.mu.Unlock()
		if ok && old.version == r.GetMetadata().GetVersion() {
			continue
		}
		op, err := crdBody(plural, ns, name, &r)
		if err != nil {
			return err
		}
		op.key, op.version = key, r.GetMetadata().GetVersion()
		ops = append(ops, op)
	}
	w.mu.Lock()
	for key := range w.objects {
		if strings.HasPrefix(key, plural+"/") && !want[key] {
			parts := strings.SplitN(key, "/", 3)
			ops = append(ops, crdOp{key: key, del: true, path: fmt.Sprintf("/apis/networking.istio.io/v1/namespaces/%s/%s/%s", parts[1], plural, parts[2])})
		}
	}
	w.mu.Unlock()
	return w.run(ctx, ops)
}

// crdBody renders an MCP resource as the custom resource Istio's CRDs describe.
func crdBody(plural, ns, name string, r *mcpv1.Resource) (crdOp, error) {
	var spec proto.Message
	kind := "ServiceEntry"
	if plural == "workloadentries" {
		kind, spec = "WorkloadEntry", &networking.WorkloadEntry{}
	} else {
		spec = &networking.ServiceEntry{}
	}
	if err := proto.Unmarshal(r.GetBody().GetValue(), spec); err != nil {
		return crdOp{}, fmt.Errorf("decoding %s %s/%s: %w", kind, ns, name, err)
	}
	specJSON, err := protojson.Marshal(spec)
	if err != nil {
		return crdOp{}, fmt.Errorf("rendering %s %s/%s: %w", kind, ns, name, err)
	}
	var keys []string
	switch s := spec.(type) {
	case *networking.ServiceEntry:
		for _, h := range s.GetHosts() {
			keys = append(keys, "host:"+h)
		}
	case *networking.WorkloadEntry:
		keys = append(keys, "addr:"+s.GetAddress())
	}
	meta := map[string]any{"name": name, "namespace": ns}
	if l := r.GetMetadata().GetLabels(); len(l) > 0 {
		meta["labels"] = l
	}
	if a := r.GetMetadata().GetAnnotations(); len(a) > 0 {
		meta["annotations"] = a
	}
	obj := map[string]any{"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": meta, "spec": json.RawMessage(specJSON)}
	body, err := json.Marshal(obj)
	if err != nil {
		return crdOp{}, err
	}
	return crdOp{path: fmt.Sprintf("/apis/networking.istio.io/v1/namespaces/%s/%s", ns, plural), body: body, keys: keys}, nil
}

// run performs ops harnessCRDWorkers at a time, returning the first error.
func (w *crdWriter) run(ctx context.Context, ops []crdOp) error {
	work := make(chan crdOp)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(harnessCRDWorkers, len(ops)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := range work {
				if err := w.write(ctx, op); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, op := range ops {
		work <- op
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (w *crdWriter) write(ctx context.Context, op crdOp) error {
	start := time.Now()
	w.mu.Lock()
	old, exists := w.objects[op.key]
	for _, k := range op.keys {
		w.writes[k] = start
	}
	w.mu.Unlock()
	method, path, body := http.MethodPost, op.path, op.body
	switch {
	case op.del:
		method, body = http.MethodDelete, nil
	case exists:
		// An update names the version it replaces, as client-go's Update does.
		method = http.MethodPut
		path += "/" + op.key[strings.LastIndexByte(op.key, '/')+1:]
		body = bytes.Replace(body, []byte(`"metadata":{`), fmt.Appendf(nil, `"metadata":{"resourceVersion":%q,`, old.resourceVersion), 1)
	}
	status, out, err := w.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status/100 != 2 && !(op.del && status == http.StatusNotFound) {
		return fmt.Errorf("%s %s: %d %.400s", method, path, status, out)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count++
	w.bytes += int64(len(body))
	if op.del {
		delete(w.objects, op.key)
		return nil
	}
	var meta struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	w.objects[op.key] = crdObject{version: op.version, resourceVersion: meta.Metadata.ResourceVersion}
	return nil
}

func (w *crdWriter) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.api.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.api.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// waitSynced waits until both kinds' first responses are written.
func (w *crdWriter) waitSynced(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case <-w.synced:
			return
		case <-deadline:
			t.Fatalf("the CRD writer had not written the bridge's resources after %v: %v", timeout, w.failure())
		case <-time.After(200 * time.Millisecond):
			if err := w.failure(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func (w *crdWriter) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// lastWrite is when the last write touching key started.
func (w *crdWriter) lastWrite(key string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes[key]
}

// stats returns object writes and bytes so far.
func (w *crdWriter) stats() (int, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count, w.bytes
}
