package translate

import (
	"maps"
	"testing"
)

// TestSuccessorKeepsVIPs: after a reload (Successor with other options) every host keeps the VIP
// it had, even where a fresh translator would have given it another one. The small range makes
// hosts that arrived later probe past earlier ones; a fresh translator, seeing them all at once,
// allocates in sorted order instead and moves some of them.
func TestSuccessorKeepsVIPs(t *testing.T) {
	o := Options{VIPCIDR: "240.3.0.0/28", Registries: []RegistryOptions{{Name: "zk", Hosts: zookeeperHosts}}}
	all := dubboServices(12)
	tr := mustNew(t, o)
	// Arrival in reverse order, one at a time: collisions resolve in the order hosts arrived.
	for i := len(all) - 1; i >= 0; i-- {
		tr.Translate(all[i:])
	}
	before := vipsOf(t, tr.Translate(all))

	next := o
	next.WorkloadTLSMode = TLSModeIstio // a reload that changes a translate option
	succ, err := tr.Successor(next)
	if err != nil {
		t.Fatal(err)
	}
	after := vipsOf(t, succ.Translate(all))
	if !maps.Equal(before, after) {
		for h, v := range before {
			if after[h] != v {
				t.Errorf("%s moved from %s to %s across the reload", h, v, after[h])
			}
		}
	}

	// Without the inherited table the same reload would move VIPs: the test exercises that case.
	fresh := vipsOf(t, mustNew(t, next).Translate(all))
	if maps.Equal(before, fresh) {
		t.Fatal("a fresh translator gives every host the same VIP: the arrival order did not matter, so this test proves nothing")
	}

	// vipCIDR cannot change while running.
	moved := next
	moved.VIPCIDR = "240.4.0.0/28"
	if _, err := tr.Successor(moved); err == nil {
		t.Error("Successor accepted a new vipCIDR")
	}
}
