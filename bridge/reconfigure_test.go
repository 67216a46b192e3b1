package bridge

import (
	"slices"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
)

// namedProducer records, in a shared log, each push it runs in.
type namedProducer struct {
	name string
	log  *[]string
}

func (p namedProducer) Name() string { return p.name }
func (p namedProducer) Produce(*merge.Snapshot) *Production {
	*p.log = append(*p.log, p.name)
	return &Production{}
}

// TestReconfigureWithRunsBuildUnderThePushLock: a push arriving while the new producer list is
// being built (producers rewired to follow each other) waits, and runs with the new list after
// the reconfigured push: no push sees the rewiring half done.
func TestReconfigureWithRunsBuildUnderThePushLock(t *testing.T) {
	var log []string // appended under pushMu only
	br := New(Options{Producers: []Producer{namedProducer{"old", &log}}, Server: mcp.NewServer(mcp.Options{})})
	br.Push(&merge.Snapshot{})
	pushed := make(chan struct{})
	br.ReconfigureWith(func() []Producer {
		go func() { br.Push(&merge.Snapshot{}); close(pushed) }()
		select {
		case <-pushed:
			t.Error("a push ran while ReconfigureWith was building the producer list")
		case <-time.After(20 * time.Millisecond): // it cannot: the push lock is held
		}
		return []Producer{namedProducer{"new", &log}}
	})
	<-pushed
	br.pushMu.Lock()
	got := append([]string(nil), log...)
	br.pushMu.Unlock()
	want := []string{"old", "new", "new"}
	if !slices.Equal(got, want) {
		t.Errorf("producers run by the pushes: %v, want %v (the initial push, the reconfigured one, the waiting one)", got, want)
	}
}
