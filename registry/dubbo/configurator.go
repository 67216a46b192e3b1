package dubbo

import (
	"sort"
	"strconv"
	"strings"
)

// Configurator is one Dubbo 2 dynamic configuration URL, as Dubbo Admin and operators write under
// an interface's configurators/ category:
//
//	override://0.0.0.0/com.foo.BarService?category=configurators&dynamic=false&enabled=true&weight=200
//	override://10.20.153.10:20880/com.foo.BarService?category=configurators&dynamic=false&disabled=true
//
// override:// sets parameters on the matching provider URLs, absent:// sets them only where a
// provider lacks them, empty:// clears every configurator of the interface.
type Configurator struct {
	URL      *URL
	absent   bool
	clears   bool
	priority int
}

// isConditionKey reports the keys that select which providers a configurator applies to; they
// are not applied themselves (AbstractConfigurator.genConditionKeys, plus "~key" conditions).
func isConditionKey(k string) bool {
	switch k {
	case "category", "check", "dynamic", "enabled", "group", "version", "application", "side",
		"configVersion", "compatible_config", "interfaces":
		return true
	}
	return strings.HasPrefix(k, "~")
}

// NewConfigurator validates a configurator URL.
func NewConfigurator(u *URL) (*Configurator, error) {
	c := &Configurator{URL: u}
	switch u.Protocol {
	case "override":
	case "absent":
		c.absent = true
	case "empty":
		c.clears = true
		return c, nil
	default:
		return nil, reasonf(ReasonBadConfigurator, "configurator protocol %q is not override, absent or empty", truncate(u.Protocol, 40))
	}
	if u.Host == "" {
		return nil, reasonf(ReasonBadConfigurator, "configurator has no host (0.0.0.0 for every provider, or a provider's ip:port)")
	}
	if p := u.Params["priority"]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, reasonf(ReasonBadConfigurator, "configurator priority %q is not an integer", truncate(p, 20))
		}
		c.priority = n
	}
	return c, nil
}

// Configurators are the configurators of one interface, in the order Dubbo applies them.
type Configurators []*Configurator

// SortConfigurators returns the configurators Dubbo would apply (Configurator.toConfigurators):
// none when one of them is empty://; without those that set nothing but anyhost (they mean
// "clear"); ordered by host, so 0.0.0.0 rules come before address-specific ones and the latter
// win, then by priority.
func SortConfigurators(cs []*Configurator) Configurators {
	out := make(Configurators, 0, len(cs))
	for _, c := range cs {
		if c.clears {
			return nil
		}
		n := len(c.URL.Params)
		if _, ok := c.URL.Params["anyhost"]; ok {
			n--
		}
		if n == 0 {
			continue
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].URL.Host != out[j].URL.Host {
			return out[i].URL.Host < out[j].URL.Host
		}
		return out[i].priority < out[j].priority
	})
	return out
}

// Apply configures a provider URL as a Dubbo consumer would (AbstractConfigurator.configure), and
// returns the configured URL (u itself when nothing applied) and the configurators that applied.
func (cs Configurators) Apply(u *URL) (*URL, []*Configurator) {
	var applied []*Configurator
	out := u
	for _, c := range cs {
		if !c.matches(out) {
			continue
		}
		if out == u {
			out = u.Clone()
		}
		c.configure(out)
		applied = append(applied, c)
	}
	return out, applied
}

func (c *Configurator) matches(p *URL) bool {
	cu := c.URL
	if v, ok := cu.Params["enabled"]; ok && v != "" && !strings.EqualFold(v, "true") {
		return false
	}
	if p.Host == "" {
		return false
	}
	anyHost := cu.Host == "0.0.0.0"
	if cu.Params["configVersion"] != "" {
		// Dubbo 2.7+ rules (converted from the YAML format): a consumer applies side=consumer
		// rules for its own address (0.0.0.0: every consumer); side=provider rules are applied
		// by the provider itself, which re-registers its URL with the result.
		if cu.Params["side"] != "consumer" || !anyHost {
			return false
		}
	} else if cu.Port != 0 {
		// A port names one provider.
		if cu.Port != p.Port || !anyHost && cu.Host != p.Host {
			return false
		}
	} else if !anyHost {
		// An address without a port is a consumer's address: not for providers.
		return false
	}
	if !c.v27Match(p) {
		return false
	}
	// Legacy conditions: "~key=value" must equal the provider's key. Dubbo evaluates them, and
	// the side condition, on the consumer's merged URL, whose side is "consumer": a side=provider
	// rule is applied by the provider itself, which re-registers its URL with the result.
	for k, v := range cu.Params {
		if k == "side" {
			if v != "*" && v != "consumer" {
				return false
			}
			continue
		}
		if name, tilde := strings.CutPrefix(k, "~"); tilde && v != "*" && v != p.Params[name] {
			return false
		}
	}
	return true
}

// v27Match is AbstractConfigurator.isV27ConditionMatchOrUnset.
func (c *Configurator) v27Match(p *URL) bool {
	cu := c.URL
	if list := cu.Params["providerAddresses"]; list != "" {
		addr := p.Address()
		match := false
		for _, a := range strings.Split(list, ",") {
			if a == addr || a == p.Host || a == "0.0.0.0" || a == "0.0.0.0:*" || a == "0.0.0.0:"+strconv.FormatUint(uint64(p.Port), 10) {
				match = true
				break
			}
		}
		if !match {
			return false
		}
	}
	// Dubbo compares the application condition with the consumer's merged URL, whose
	// application is the consumer's: such a rule is for one consumer application, and the mesh
	// cannot weight or disable an endpoint for some callers only. It is not applied.
	if app := firstNonEmpty(cu.Params["application"], cu.Username); app != "" && app != "*" {
		return false
	}
	ck := cu.Key()
	return ck.Interface == "*" || ck == p.Key()
}

func (c *Configurator) configure(p *URL) {
	for k, v := range c.URL.Params {
		if isConditionKey(k) {
			continue
		}
		if _, has := p.Params[k]; c.absent && has {
			continue
		}
		p.Params[k] = v
	}
}

// String names the configurator for status pages (sensitive values hidden).
func (c *Configurator) String() string { return c.URL.String() }

// NotForProviders says why a configurator never applies to any provider URL, "" when it may:
// it is disabled, restricted to one consumer application, names a consumer's address (a host
// without a port), or is a side=provider rule (applied by the provider itself).
func (c *Configurator) NotForProviders() string {
	cu := c.URL
	switch {
	case c.clears:
		return "empty: clears the interface's configurators"
	case cu.Params["enabled"] != "" && !strings.EqualFold(cu.Params["enabled"], "true"):
		return "disabled (enabled=false)"
	case firstNonEmpty(cu.Params["application"], cu.Username) != "" && firstNonEmpty(cu.Params["application"], cu.Username) != "*":
		return "restricted to one consumer application"
	case cu.Params["configVersion"] != "" && (cu.Params["side"] != "consumer" || cu.Host != "0.0.0.0"):
		return "a provider-side or address-specific rule: the provider applies it and re-registers"
	case cu.Params["configVersion"] == "" && cu.Port == 0 && cu.Host != "0.0.0.0":
		return "an address without a port names a consumer"
	case cu.Params["configVersion"] == "" && cu.Params["side"] != "" && cu.Params["side"] != "consumer" && cu.Params["side"] != "*":
		return "a side=provider rule: the provider applies it and re-registers"
	}
	return ""
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
