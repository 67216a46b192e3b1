package istio

import (
	"maps"
	"math"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Load balancer rules of a DestinationRule: Istio's validateLoadBalancer,
// agent.ValidateLocalityLbSetting and agent.ValidateZoneAwareLbSetting.

// topologyLabels are the locality labels failoverPriority must not repeat when failover is set.
var topologyLabels = []string{"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}

// checkLoadBalancer is validateLoadBalancer. Stricter than Istio: a warmup minimumPercent below
// 0 and an invalid warmupDurationSecs are refused.
func checkLoadBalancer(c *specCheck, at string, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		chat := joinPath(at, "consistentHash")
		if cookie := ch.GetHttpCookie(); cookie != nil {
			if cookie.Name == "" {
				c.addf(joinPath(chat, "httpCookie.name"), "name required for HttpCookie")
			}
			names := map[string]bool{}
			for i, a := range cookie.Attributes {
				aat := indexPath(joinPath(chat, "httpCookie.attributes"), i)
				switch {
				case a.GetName() == "":
					c.addf(aat, "cookie attribute name cannot be empty")
				case names[a.GetName()]:
					c.addf(aat, "duplicate cookie attribute name: %s", a.GetName())
				}
				names[a.GetName()] = true
			}
		}
		//lint:ignore SA1019 deprecated, still honoured by Istio
		if ch.MinimumRingSize != 0 && ch.HashAlgorithm != nil {
			c.addf(joinPath(chat, "minimumRingSize"), "only one of MinimumRingSize or Maglev/Ringhash can be specified")
		}
		if ml := ch.GetMaglev(); ml != nil {
			switch {
			case ml.TableSize == 0:
				c.addf(joinPath(chat, "maglev.tableSize"), "tableSize must be set for maglev")
			case ml.TableSize >= 5000011:
				c.addf(joinPath(chat, "maglev.tableSize"), "tableSize must be less than 5000011 for maglev")
			case !isPrime(ml.TableSize):
				c.addf(joinPath(chat, "maglev.tableSize"), "tableSize must be a prime number for maglev")
			}
		}
	}
	if lb.LocalityLbSetting != nil && lb.ZoneAwareLbSetting != nil {
		c.addf(at, "only one of localityLbSetting and zoneAwareLbSetting can be set")
	}
	checkLocalityLB(c, joinPath(at, "localityLbSetting"), lb.LocalityLbSetting)
	checkZoneAwareLB(c, joinPath(at, "zoneAwareLbSetting"), lb.ZoneAwareLbSetting)
	if w := lb.Warmup; w != nil {
		wat := joinPath(at, "warmup")
		if w.Duration == nil {
			c.addf(joinPath(wat, "duration"), "duration is required")
		}
		checkDurationAt(c, joinPath(wat, "duration"), w.Duration)
		if v := w.MinimumPercent.GetValue(); w.MinimumPercent != nil && !(v >= 0 && v <= 100) {
			c.addf(joinPath(wat, "minimumPercent"), "minimumPercent value should be between 0 and 100")
		}
		if w.Aggression != nil && !(w.Aggression.GetValue() > 0) {
			c.addf(joinPath(wat, "aggression"), "aggression should be greater than 0")
		}
	}
	//lint:ignore SA1019 deprecated, still honoured by Istio
	checkDurationAt(c, joinPath(at, "warmupDurationSecs"), lb.WarmupDurationSecs)
}

// isPrime is Envoy's test of a Maglev table size.
func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	}
	if x%2 == 0 {
		return false
	}
	for f := uint64(3); f <= uint64(math.Sqrt(float64(x))); f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

// checkLocalityLB is agent.ValidateLocalityLbSetting. Stricter than Istio: overlapping
// localities are refused in any order (Istio's check depends on the order, and for the "to" map
// of distribute on Go's random map order), and every problem is reported.
func checkLocalityLB(c *specCheck, at string, lb *networking.LocalityLoadBalancerSetting) {
	if lb == nil {
		return
	}
	if len(lb.Distribute) > 0 && len(lb.Failover) > 0 {
		c.addf(at, "can not simultaneously specify 'distribute' and 'failover'")
	}
	if len(lb.Failover) > 0 {
		for i, l := range lb.FailoverPriority {
			if slices.Contains(topologyLabels, l) {
				c.addf(indexPath(joinPath(at, "failoverPriority"), i), "can not simultaneously set 'failover' and topology label '%s' in 'failover_priority'", l)
			}
		}
	}
	var from []string
	for i, d := range lb.Distribute {
		dat := indexPath(joinPath(at, "distribute"), i)
		from = append(from, d.GetFrom())
		var total uint64
		for _, loc := range slices.Sorted(maps.Keys(d.GetTo())) {
			if w := d.To[loc]; w < 1 || w > 100 {
				c.addf(keyPath(joinPath(dat, "to"), loc), "locality weight must be in range [1, 100]")
			}
			total += uint64(d.To[loc])
		}
		if total != 100 {
			c.addf(joinPath(dat, "to"), "total locality weight %v != 100", total)
		}
		checkLocalities(c, joinPath(dat, "to"), slices.Sorted(maps.Keys(d.GetTo())))
	}
	checkLocalities(c, joinPath(at, "distribute"), from)
	for i, f := range lb.Failover {
		checkFailover(c, indexPath(joinPath(at, "failover"), i), f.GetFrom(), f.GetTo())
	}
}

// checkZoneAwareLB is agent.ValidateZoneAwareLbSetting.
func checkZoneAwareLB(c *specCheck, at string, lb *networking.ZoneAwareLoadBalancerSetting) {
	if lb == nil {
		return
	}
	for i, l := range lb.FailoverPriority {
		if slices.Contains(topologyLabels, l) {
			c.addf(indexPath(joinPath(at, "failoverPriority"), i), "'failover_priority' for zone aware lb must not use topology label '%s'", l)
		}
	}
	for i, f := range lb.Failover {
		checkFailover(c, indexPath(joinPath(at, "failover"), i), f.GetFrom(), f.GetTo())
	}
}

// checkFailover: a failover goes from one region to another, named without '/' or '*'.
func checkFailover(c *specCheck, at, from, to string) {
	if from == to {
		c.addf(at, "failover settings must specify different regions")
	}
	if strings.Contains(from, "/") || strings.Contains(to, "/") {
		c.addf(at, "failover only specifies regions")
	}
	if strings.Contains(from, "*") || strings.Contains(to, "*") {
		c.addf(at, "failover region should not contain '*' wildcard")
	}
}

// checkLocalities: each "region[/zone[/subzone]]" with no empty part and at most one '*', at
// its end; no locality covering another ("us" covers "us/east", "us/*" and "*" too).
func checkLocalities(c *specCheck, at string, localities []string) {
	var ok [][]string
	for _, l := range localities {
		if n := strings.Count(l, "*"); n > 1 || n == 1 && !strings.HasSuffix(l, "*") {
			c.addf(at, "locality %s wildcard '*' number can not exceed 1 and must be in the end", l)
			continue
		}
		parts := strings.SplitN(l, "/", 3)
		if slices.Contains(parts, "") {
			c.addf(at, "locality %s must not contain empty region/zone/subzone info", l)
			continue
		}
		for _, o := range ok {
			if coversLocality(o, parts) || coversLocality(parts, o) {
				c.addf(at, "locality %s overlap with previous specified ones", l)
				break
			}
		}
		ok = append(ok, parts)
	}
}

// coversLocality reports whether every locality b names is also named by a.
func coversLocality(a, b []string) bool {
	for i, p := range a {
		if p != "*" && (i >= len(b) || p != b[i]) {
			return false
		}
	}
	return true
}
