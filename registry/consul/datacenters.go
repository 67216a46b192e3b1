package consul

import (
	"errors"
	"maps"
	"time"

	"github.com/hashicorp/consul/api"
)

// One datacenter failing is not the registry failing. With several datacenters the agent
// forwards the queries of the others to their servers over the WAN; when those servers are gone
// the agent answers 5xx ("rpc error getting client: failed to get conn", "No path to
// datacenter") for that datacenter only. Calling Sink.Fail then would freeze every datacenter's
// services; instead the datacenter's last-known services stay served (its watches keep retrying
// and send what changed once they answer) and the others go on. The registry fails as a whole
// when the agent itself cannot be reached, an ACL refusal, or every watched datacenter failing.

// serverError reports whether the agent answered with a 5xx: it is up, what lies behind it is not.
func serverError(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code >= 500
}

// othersUp reports whether a watched datacenter other than dc is not down.
func (l *loop) othersUp(dc string) bool {
	for _, d := range l.dcs {
		if _, down := l.dcDown[d]; d != dc && !down {
			return true
		}
	}
	return false
}

// datacenterDown marks dc down: its services are held as last read.
func (l *loop) datacenterDown(dc string, err error) {
	if _, down := l.dcDown[dc]; down {
		return
	}
	if l.dcDown == nil {
		l.dcDown = map[string]time.Time{}
	}
	l.dcDown[dc] = time.Now()
	l.a.log.Warn("consul datacenter failed; serving its last-known services, the other datacenters go on", "datacenter", dc, "err", err)
	l.publishDown(dc, err.Error())
}

// datacenterUp clears dc's failure once every watch of dc has answered since it began.
func (l *loop) datacenterUp(dc string) {
	since, down := l.dcDown[dc]
	if !down {
		return
	}
	for k, st := range l.state {
		if k.dc == dc && (!st.have || !st.okAt.After(since) || !st.okAt.After(st.errAt)) {
			return
		}
	}
	delete(l.dcDown, dc)
	l.a.log.Info("consul datacenter recovered", "datacenter", dc, "downFor", time.Since(since).String())
	l.publishDown(dc, "")
}

// publishDown updates what /debug/registries and the metrics show of failed datacenters.
func (l *loop) publishDown(dc, msg string) {
	l.a.m.datacentersDown.Set(float64(len(l.dcDown)))
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	if msg == "" {
		delete(l.a.dcErrs, dc)
		return
	}
	if l.a.dcErrs == nil {
		l.a.dcErrs = map[string]string{}
	}
	l.a.dcErrs[dc] = msg
}

// downDatacenters is Describe's view of failed datacenters; a.mu is held.
func (a *Adapter) downDatacenters() map[string]string {
	if len(a.dcErrs) == 0 {
		return nil
	}
	return maps.Clone(a.dcErrs)
}
