package nacos

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// logSnapshots logs every snapshot the pipeline translates (debugging).
const logSnapshots = false

// serviceEntryType is what Istiod >= 1.24 asks for.
const serviceEntryType = "networking.istio.io/v1/ServiceEntry"

// pipeline is the bridge's path from an adapter to Istiod: the merge layer, translate, the MCP
// server, and an ADS client subscribed to ServiceEntries as Istiod's MCP client is.
type pipeline struct {
	sink registry.Sink // hand this to the adapter
	ads  *adsClient
}

// nacosHosts are the Nacos type's default host templates (registry/registries, which imports this
// package, so the test cannot ask it).
var nacosHosts = translate.HostTemplates{
	Application:      `{{.Name}}.{{.Group | default "default-group"}}.{{.Namespace | default "public"}}.nacos`,
	DubboApplication: `{{.Name}}.{{.Group | default "default-group"}}.{{.Namespace | default "public"}}.nacos`,
}

func startPipeline(t testing.TB) *pipeline {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "nacos", Hosts: nacosHosts}}})
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	m, err := merge.New(merge.Options{Key: tr.Host})
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	srv := mcp.NewServer(mcp.Options{})
	g := grpc.NewServer(mcp.ServerOptions()...)
	srv.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, func(snap *merge.Snapshot) {
			out := tr.Translate(snap.Services)
			for i, inv := range out.Invalid {
				if i == 3 {
					t.Logf("translate: %d invalid resources in all", len(out.Invalid))
					break
				}
				t.Logf("translate: invalid %s %s: %s: %s", inv.Collection, inv.Source, inv.Reason, inv.Detail)
			}
			state := map[string][]*mcp.Resource{}
			for coll, rs := range out.Resources {
				list := make([]*mcp.Resource, 0, len(rs))
				for _, r := range rs {
					list = append(list, &mcp.Resource{Namespace: r.Namespace, Name: r.Name, Version: r.Version, Labels: r.Labels, Annotations: r.Annotations, Body: r.Body})
				}
				state[coll] = list
			}
			srv.Set(state)
			if logSnapshots {
				t.Logf("snapshot %d: %d services, %d ServiceEntries, %d invalid", snap.Generation, len(snap.Services), len(out.Resources[istio.CollectionServiceEntry]), len(out.Invalid))
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		g.Stop()
	})
	return &pipeline{sink: m.Sink("nacos"), ads: startADS(t, l.Addr().String())}
}

// adsClient keeps the ServiceEntries an MCP server sends, by host, and ACKs every response.
type adsClient struct {
	mu      sync.Mutex
	entries map[string]*networking.ServiceEntry // by first host
	updated map[string]time.Time                // when an entry last changed
	err     error
}

func startADS(t testing.TB, addr string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{entries: map[string]*networking.ServiceEntry{}, updated: map[string]time.Time{}}
	node := &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: serviceEntryType}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			c.apply(resp)
			if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: serviceEntryType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close()
	})
	return c
}

func (c *adsClient) apply(resp *discovery.DiscoveryResponse) {
	now := time.Now()
	next := map[string]*networking.ServiceEntry{}
	for _, a := range resp.Resources {
		var env mcpapi.Resource
		if err := a.UnmarshalTo(&env); err != nil {
			c.setErr(fmt.Errorf("MCP envelope: %w", err))
			return
		}
		var se networking.ServiceEntry
		if err := env.Body.UnmarshalTo(&se); err != nil {
			c.setErr(fmt.Errorf("ServiceEntry body of %s: %w", env.Metadata.GetName(), err))
			return
		}
		if len(se.Hosts) > 0 {
			next[se.Hosts[0]] = &se
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, se := range next {
		if old, ok := c.entries[h]; !ok || old.String() != se.String() {
			c.updated[h] = now
		}
	}
	for h := range c.entries {
		if _, ok := next[h]; !ok {
			c.updated[h] = now
		}
	}
	c.entries = next
}

func (c *adsClient) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// entry returns the ServiceEntry of a host and when it last changed.
func (c *adsClient) entry(host string) (*networking.ServiceEntry, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[host], c.updated[host], c.err
}

// endpoints renders the endpoints of a host's ServiceEntry as "address:port/weight" sorted, or
// "absent".
func (c *adsClient) endpoints(host string) string {
	se, _, _ := c.entry(host)
	if se == nil {
		return "absent"
	}
	var out []string
	for _, e := range se.Endpoints {
		var ports []string
		for name, p := range e.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", name, p))
		}
		out = append(out, fmt.Sprintf("%s[%s]w%d", e.Address, strings.Join(ports, ","), e.Weight))
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

// waitEndpoints waits until a host's endpoints render as want.
func (c *adsClient) waitEndpoints(t testing.TB, timeout time.Duration, host, want string) {
	t.Helper()
	waitFor(t, timeout, "MCP client to see "+host+" = "+want, func() error {
		if got := c.endpoints(host); got != want {
			_, _, err := c.entry(host)
			return fmt.Errorf("have %s (stream error: %v)", got, err)
		}
		return nil
	})
}

// teeSink sends every call to several sinks.
type teeSink []registry.Sink

func (t teeSink) Replace(s []*registry.Service) {
	for i, k := range t {
		if i < len(t)-1 {
			k.Replace(cloneAll(s))
		} else {
			k.Replace(s)
		}
	}
}

func (t teeSink) Upsert(s []*registry.Service) {
	for i, k := range t {
		if i < len(t)-1 {
			k.Upsert(cloneAll(s))
		} else {
			k.Upsert(s)
		}
	}
}

func (t teeSink) Delete(keys []registry.Key) {
	for _, k := range t {
		k.Delete(keys)
	}
}

func (t teeSink) Fail(err error) {
	for _, k := range t {
		k.Fail(err)
	}
}

func (t teeSink) Reject(where, reason string, err error) {
	for _, k := range t {
		k.Reject(where, reason, err)
	}
}

func (t teeSink) Accept(where string) {
	for _, k := range t {
		k.Accept(where)
	}
}

// Rules are immutable once sent, so every sink may share them.
func (t teeSink) ReplaceRules(rules []*registry.Rule) {
	for _, k := range t {
		k.ReplaceRules(rules)
	}
}

func (t teeSink) UpsertRules(rules []*registry.Rule) {
	for _, k := range t {
		k.UpsertRules(rules)
	}
}

func (t teeSink) DeleteRules(keys []registry.RuleKey) {
	for _, k := range t {
		k.DeleteRules(keys)
	}
}

// cloneAll copies services: each sink owns what it is given.
func cloneAll(in []*registry.Service) []*registry.Service {
	out := make([]*registry.Service, len(in))
	for i, s := range in {
		out[i] = s.Clone()
	}
	return out
}

// resources translates services of the registry "nacos" with the default options, as the bridge
// does, and renders every resource with its spec for golden files.
func resources(t testing.TB, services []*registry.Service) []map[string]any {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "nacos", Hosts: nacosHosts}}})
	if err != nil {
		t.Fatal(err)
	}
	in := cloneAll(services)
	for _, s := range in {
		s.Registry = "nacos"
	}
	out := tr.Translate(in)
	for _, inv := range out.Invalid {
		t.Errorf("translate left out %s %s/%s (%s): %s: %s", inv.Collection, inv.Namespace, inv.Name, inv.Source, inv.Reason, inv.Detail)
	}
	var rendered []map[string]any
	for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry} {
		for _, r := range out.Resources[coll] {
			msg, err := r.DecodeSpec()
			if err != nil {
				t.Fatal(err)
			}
			// protojson's spacing is deliberately unstable: go through encoding/json.
			b, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			var spec any
			if err := json.Unmarshal(b, &spec); err != nil {
				t.Fatal(err)
			}
			rendered = append(rendered, map[string]any{
				"collection": coll, "namespace": r.Namespace, "name": r.Name,
				"labels": r.Labels, "annotations": r.Annotations, "spec": spec,
			})
		}
	}
	return rendered
}
