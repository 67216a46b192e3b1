package nacos

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// stallingNaming is a fake for one behaviour no real server here can be made to show: a Nacos
// server that answers the service list but whose subscriptions time out (issue 17's "partial
// answers": e.g. a server whose push/subscription handling is overloaded while its naming list
// still answers). Subscribe fails with the SDK's timeout error while stall is set; the rest is
// fakeNaming.
type stallingNaming struct {
	*fakeNaming
	stall   atomic.Bool
	stalled atomic.Int64 // Subscribe calls that timed out
}

var errSubscribeTimeout = errors.New("request time out, timeout: 1000ms")

func (s *stallingNaming) Subscribe(p *vo.SubscribeParam) error {
	if s.stall.Load() {
		s.stalled.Add(1)
		return errSubscribeTimeout
	}
	return s.fakeNaming.Subscribe(p)
}

type stallingFactory struct{ n *stallingNaming }

func (f stallingFactory) naming(string) (namingClient, error) { return f.n, nil }
func (f stallingFactory) config(string) (configClient, error) {
	return nil, fmt.Errorf("no config client in this fake")
}

// TestSubscriptionsTimeOutListAnswers: while subscriptions time out (resyncs every second drop
// and make them anew, and fail; a newly listed service cannot be subscribed), no service the
// adapter serves flaps: every sink call keeps both known services with all their instances, and
// the new service is not sent empty. Once subscriptions answer again, the new service arrives.
func TestSubscriptionsTimeOutListAnswers(t *testing.T) {
	n := &stallingNaming{fakeNaming: newFakeNaming()}
	n.set(DefaultGroup, "a", inst("10.0.0.1", 8080, 1, nil), inst("10.0.0.2", 8080, 1, nil))
	n.set(DefaultGroup, "b", inst("10.0.1.1", 8080, 1, nil))
	cfg := fakeConfig(t)
	cfg.ResyncInterval = time.Second // the least allowed
	r := startAdapter(t, cfg, stallingFactory{n})
	r.Sink.WaitSynced(t, 5*time.Second)
	r.Sink.WaitService(t, 2*time.Second, nacostest.AppKey("a"), nacostest.InstancesAre("10.0.0.1:8080/100/true/true", "10.0.0.2:8080/100/true/true"))

	from := r.Sink.NEvents()
	n.stall.Store(true)
	n.set(DefaultGroup, "c", inst("10.0.2.1", 8080, 1, nil)) // listed, not subscribable
	testkit.WaitFor(t, 5*time.Second, "several timed-out subscriptions (resyncs and the new service)", func() error {
		if got := n.stalled.Load(); got < 6 {
			return fmt.Errorf("%d Subscribe calls timed out", got)
		}
		return nil
	})
	// The observation window: two resyncs (each drops every subscription and fails to make it
	// anew) and ~25 polls while stalled.
	time.Sleep(2500 * time.Millisecond)
	n.stall.Store(false)
	r.Sink.WaitService(t, 5*time.Second, nacostest.AppKey("c"), nacostest.InstancesAre("10.0.2.1:8080/100/true/true"))

	want := map[registry.Key]int{nacostest.AppKey("a"): 2, nacostest.AppKey("b"): 1}
	for _, e := range r.Sink.EventsSince(from) {
		switch e.Op {
		case "delete":
			for _, k := range e.Keys {
				if _, ok := want[k]; ok || k == nacostest.AppKey("c") {
					t.Errorf("%v: %s deleted while subscriptions timed out", e.At.Format(time.StampMilli), k)
				}
			}
		case "replace", "upsert":
			for _, s := range e.Services {
				if w, ok := want[s.Key()]; ok && len(s.Instances) != w {
					t.Errorf("%v: %s sent with %d instances, want %d (a flap)", e.At.Format(time.StampMilli), s.Key(), len(s.Instances), w)
				}
				if s.Key() == nacostest.AppKey("c") && len(s.Instances) == 0 {
					t.Errorf("%v: the unsubscribable service c sent empty", e.At.Format(time.StampMilli))
				}
			}
			if e.Op == "replace" && !slices.ContainsFunc(e.Services, func(s *registry.Service) bool { return s.Key() == nacostest.AppKey("a") }) {
				t.Errorf("%v: a Replace without service a", e.At.Format(time.StampMilli))
			}
		}
	}
	for k, w := range want {
		if s := r.Sink.Get(k); s == nil || len(s.Instances) != w {
			t.Errorf("%s at the end: %v, want %d instances", k, s, w)
		}
	}
	t.Logf("measure: %d Subscribe calls timed out; %d sink calls meanwhile, none dropping an instance", n.stalled.Load(), len(r.Sink.EventsSince(from)))
}
