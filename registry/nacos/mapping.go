package nacos

import (
	"context"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// refreshMappings keeps a config listener on the Dubbo 3 interface->application mapping of every
// interface the registry shows (providers: and consumers: services) and of the configured ones.
func (a *Adapter) refreshMappings(ctx context.Context) {
	if !a.cfg.Dubbo.Mapping {
		return
	}
	want := make(map[nsIface]bool)
	for _, ns := range a.namespaces {
		for _, i := range a.cfg.Dubbo.MappingInterfaces {
			want[nsIface{ns, i}] = true
		}
	}
	for _, s := range a.st.subs {
		if s.role == roleProvider || s.role == roleConsumer {
			want[nsIface{s.key.ns, s.dubbo.Interface}] = true
		}
	}
	for k := range want {
		if ctx.Err() != nil {
			return
		}
		if _, ok := a.st.listening[k]; ok {
			continue
		}
		c, err := a.configFor(k.ns)
		if err != nil {
			a.log.Warn("cannot read Dubbo mappings", "namespace", k.ns, "error", err)
			return
		}
		param := &vo.ConfigParam{
			DataId: k.iface,
			Group:  a.cfg.Dubbo.MappingGroup,
			OnChange: func(_, _, _, data string) {
				a.onMapping(k, data)
			},
		}
		// A missing config is an error for some servers and "" for others: both mean no mapping.
		if data, err := c.GetConfig(vo.ConfigParam{DataId: k.iface, Group: a.cfg.Dubbo.MappingGroup}); err == nil {
			a.onMapping(k, data)
		} else {
			a.log.Debug("reading Dubbo mapping failed", "namespace", k.ns, "interface", k.iface, "error", err)
		}
		if err := c.ListenConfig(*param); err != nil {
			a.log.Warn("listening to a Dubbo mapping failed; retrying at the next poll", "namespace", k.ns, "interface", k.iface, "error", err)
			continue
		}
		a.st.listening[k] = param
	}
	for k, param := range a.st.listening {
		if want[k] {
			continue
		}
		if c, ok := a.configs[k.ns]; ok {
			_ = c.CancelListenConfig(*param)
		}
		delete(a.st.listening, k)
		a.onMapping(k, "")
	}
}

// onMapping runs on SDK goroutines: it records the value and wakes the loop.
func (a *Adapter) onMapping(k nsIface, data string) {
	a.mu.Lock()
	a.mappingPending[k] = data
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Adapter) configFor(ns string) (configClient, error) {
	if c, ok := a.configs[ns]; ok {
		return c, nil
	}
	c, err := a.factory.config(ns)
	if err != nil {
		return nil, err
	}
	a.configs[ns] = c
	return c, nil
}
