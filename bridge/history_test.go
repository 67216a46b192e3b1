package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/history"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// TestHistoryRecordsVersionsCausesAndDiffs drives a real merge loop through a sequence of
// registry changes and a reload, and checks each resource's versions, their causes (which
// registry, how many events, start-up, reload) and the diffs between them.
func TestHistoryRecordsVersionsCausesAndDiffs(t *testing.T) {
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "shop", Hosts: translate.HostTemplates{Application: "{{.Name}}.file"}}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := merge.New(merge.Options{Registries: []string{"shop"}, Key: tr.Host, Metrics: reg,
		Debounce: merge.Debounce{Quiet: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	store := history.New(history.Options{})
	b := New(Options{Merger: m, Translator: tr, Server: mcp.NewServer(mcp.Options{}), Metrics: reg, History: store})
	pushed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, func(s *merge.Snapshot) { b.Push(s); pushed <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()
	wait := func() {
		t.Helper()
		select {
		case <-pushed:
		case <-time.After(30 * time.Second):
			t.Fatal("no push within 30s")
		}
	}
	sink := m.Sink("shop")
	sink.Replace([]*registry.Service{service("orders", "10.0.0.1"), service("users", "10.0.1.1")})
	wait()
	sink.Upsert([]*registry.Service{service("orders", "10.0.0.1", "10.0.0.2")})
	wait()
	sink.Delete([]registry.Key{service("users").Key()})
	wait()
	b.Reconfigure([]Producer{Translate(tr), Static(nil)}) // same output: nothing recorded
	rs, err := LoadStatic([]string{writeStatic(t, staticGood)})
	if err != nil {
		t.Fatal(err)
	}
	b.Reconfigure([]Producer{Translate(tr), Static(rs)})

	orders := store.Find(history.Query{Kind: "serviceentry", Name: "orders.file"})
	if len(orders) != 2 {
		t.Fatalf("orders has %d versions, want 2: %+v", len(orders), orders)
	}
	if got := orders[0]; got.Change != "changed" || got.Cause.Trigger != "registry" || got.Cause.Registries["shop"] != 1 || got.Cause.Services != 1 ||
		!strings.Contains(got.Diff, "+  - address: 10.0.0.2") || strings.Contains(got.Diff, "-  - address: 10.0.0.1") {
		t.Errorf("orders' second version: %+v\ndiff:\n%s", got, got.Diff)
	}
	if got := orders[1]; got.Change != "created" || got.Cause.Trigger != "start" || !strings.Contains(got.Diff, "+kind: ServiceEntry") {
		t.Errorf("orders' first version: %+v", got)
	}
	if got := orders[0].CauseText; !strings.Contains(got, "registry events shop×1 (1 services changed)") {
		t.Errorf("cause text %q", got)
	}
	users := store.Find(history.Query{Name: "users.file"})
	if len(users) != 2 || users[0].Change != "deleted" || !strings.Contains(users[0].Diff, "-kind: ServiceEntry") {
		t.Fatalf("users: %+v", users)
	}
	vs := store.Find(history.Query{Kind: "VirtualService"})
	if len(vs) != 1 || vs[0].Cause.Trigger != "reload" || vs[0].Name != "orders-split" {
		t.Fatalf("static resource from the reload: %+v", vs)
	}
	// One push, one cause: versions of the same push share its number.
	all := store.Find(history.Query{})
	byPush := map[uint64]int{}
	for _, v := range all {
		byPush[v.Cause.Push]++
	}
	if len(byPush) != 4 || byPush[1] != 2 || byPush[4] != 2 {
		t.Errorf("versions per push %v, want push 1 (start) with 2, push 4 (reload) with 2 static resources", byPush)
	}
}

// TestHistoryAtScale: 10,000 services (workloadEntry mode, 2 instances each) pushed, then every
// service changed 6 times, once without and once with the history. Recording stays a pointer walk
// (nothing is rendered in the push: the pushes cost about the same), the store stays within its
// byte budget, and the newest version of a changed resource renders with its diff.
func TestHistoryAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 services")
	}
	const rounds = 6
	run := func(store *history.Store) (first, later time.Duration, served int) {
		tr, err := translate.New(translateOptions("workloadEntry"))
		if err != nil {
			t.Fatal(err)
		}
		b := New(Options{Translator: tr, Server: mcp.NewServer(mcp.Options{}), History: store})
		services := estate(10000, 2)
		start := time.Now()
		b.Push(&merge.Snapshot{Services: services, Changed: len(services), Generation: 1})
		first = time.Since(start)
		for round := range rounds {
			next := make([]*registry.Service, len(services))
			for i, s := range services {
				c := *s
				c.Instances = slices.Clone(s.Instances)
				c.Instances[0].Weight = uint32(10 + round)
				next[i] = &c
			}
			services = next
			start := time.Now()
			b.Push(&merge.Snapshot{Services: services, Changed: len(services), Generation: uint64(round + 2), Events: map[string]int{"zk": 1}})
			later += time.Since(start)
		}
		return first, later / rounds, len(b.Output().Served())
	}
	firstOff, laterOff, _ := run(nil)
	store := history.New(history.Options{})
	firstOn, laterOn, served := run(store)
	st := store.Stats()
	t.Logf("measure: %d resources; first push %v without history, %v with; a push changing every service %v without, %v with; "+
		"history keeps %d versions in %d MiB accounted (budget %d MiB), %d evicted",
		served, firstOff.Round(time.Millisecond), firstOn.Round(time.Millisecond), laterOff.Round(time.Millisecond), laterOn.Round(time.Millisecond),
		st.Versions, st.Bytes>>20, st.MaxBytes>>20, st.Evicted)
	if st.Bytes > st.MaxBytes {
		t.Fatalf("history holds %d bytes, over its budget %d", st.Bytes, st.MaxBytes)
	}
	if st.Resources != served {
		t.Fatalf("history knows %d resources, want every one of the %d served", st.Resources, served)
	}
	// Generous (a loaded 2-core machine): recording must not double a push; rendering every
	// resource in the push made it ~30 times slower.
	if laterOn > 2*laterOff+time.Second {
		t.Errorf("a push with the history took %v, without %v: recording is not a pointer walk", laterOn, laterOff)
	}
	vs := store.Find(history.Query{Limit: 1})
	if len(vs) != 1 || !strings.Contains(vs[0].Diff, fmt.Sprintf("weight: %d", 10+rounds-1)) || vs[0].Cause.Registries["zk"] != 1 {
		t.Fatalf("newest version: %+v", vs)
	}
}
