package dubbo

import (
	"testing"
)

func configurators(t *testing.T, urls ...string) Configurators {
	t.Helper()
	var cs []*Configurator
	for _, s := range urls {
		c, err := NewConfigurator(mustURL(t, s))
		if err != nil {
			t.Fatalf("NewConfigurator(%q): %v", s, err)
		}
		cs = append(cs, c)
	}
	return SortConfigurators(cs)
}

func TestConfiguratorsApply(t *testing.T) {
	const provider = "dubbo://10.20.153.10:20880/com.foo.BarService?application=foo&side=provider&timeout=1000"
	tests := []struct {
		name          string
		configurators []string
		provider      string // default: provider
		want          map[string]string
		applied       int
	}{
		{
			name:          "0.0.0.0 applies to every provider of the service",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?category=configurators&dynamic=false&enabled=true&weight=200"},
			want:          map[string]string{"weight": "200"},
			applied:       1,
		},
		{
			name: "ip:port names one provider and wins over 0.0.0.0 (applied after it)",
			configurators: []string{
				"override://10.20.153.10:20880/com.foo.BarService?category=configurators&dynamic=false&weight=300",
				"override://0.0.0.0/com.foo.BarService?category=configurators&dynamic=false&weight=200",
			},
			want:    map[string]string{"weight": "300"},
			applied: 2,
		},
		{
			name:          "ip:port of another provider",
			configurators: []string{"override://10.20.153.11:20880/com.foo.BarService?category=configurators&disabled=true"},
			want:          map[string]string{"disabled": ""},
		},
		{
			// The 2.x user guide's examples carry no port: Dubbo treats such an address as a
			// consumer's, so providers are untouched (and "disbaled" is the guide's own typo).
			name:          "address without port is a consumer address",
			configurators: []string{"override://10.20.153.10/com.foo.BarService?category=configurators&dynamic=false&disbaled=true"},
			want:          map[string]string{"disbaled": "", "disabled": ""},
		},
		{
			name:          "disabled per address",
			configurators: []string{"override://10.20.153.10:20880/com.foo.BarService?category=configurators&dynamic=false&disabled=true"},
			want:          map[string]string{"disabled": "true"},
			applied:       1,
		},
		{
			name:          "a disabled rule does nothing",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?category=configurators&enabled=false&weight=1"},
			want:          map[string]string{"weight": ""},
		},
		{
			// apache/dubbo dubbo-cluster/src/test/java/org/apache/dubbo/rpc/cluster/ConfiguratorTest.java
			name:          "group and version must match the provider's",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?category=configurators&timeout=6666&disabled=true&dynamic=false&enabled=true&group=dubbo&priority=2&version=1.0"},
			want:          map[string]string{"timeout": "1000", "disabled": ""},
		},
		{
			name:          "group and version matching",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?category=configurators&timeout=6666&disabled=true&dynamic=false&enabled=true&group=dubbo&priority=2&version=1.0"},
			provider:      "dubbo://10.20.153.10:20880/com.foo.BarService?application=foo&group=dubbo&version=1.0&timeout=1000",
			want:          map[string]string{"timeout": "6666", "disabled": "true", "group": "dubbo", "version": "1.0", "priority": "2"},
			applied:       1,
		},
		{
			name:          "a rule for one consumer application is not applied",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?category=configurators&application=foo&weight=5"},
			want:          map[string]string{"weight": ""},
		},
		{
			name:          "absent only fills what is missing",
			configurators: []string{"absent://0.0.0.0/com.foo.BarService?timeout=200&retries=3"},
			want:          map[string]string{"timeout": "1000", "retries": "3"},
			applied:       1,
		},
		{
			name: "empty:// clears every configurator",
			configurators: []string{
				"override://0.0.0.0/com.foo.BarService?weight=200",
				"empty://0.0.0.0/com.foo.BarService?category=configurators",
			},
			want: map[string]string{"weight": ""},
		},
		{
			name:          "a rule setting nothing but anyhost means clear",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?anyhost=true"},
			want:          map[string]string{"anyhost": ""},
		},
		{
			name: "same host: higher priority applies last",
			configurators: []string{
				"override://0.0.0.0/com.foo.BarService?weight=9&priority=5",
				"override://0.0.0.0/com.foo.BarService?weight=1&priority=1",
			},
			want:    map[string]string{"weight": "9"},
			applied: 2,
		},
		{
			name:          "providerAddresses restricts",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?providerAddresses=10.20.153.99:20880,10.20.153.98:20880&weight=7"},
			want:          map[string]string{"weight": ""},
		},
		{
			name:          "providerAddresses matching",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?providerAddresses=10.20.153.99:20880,10.20.153.10:20880&weight=7"},
			want:          map[string]string{"weight": "7"},
			applied:       1,
		},
		{
			name:          "tilde condition",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?~timeout=1000&weight=3", "override://0.0.0.0/com.foo.BarService?~timeout=5&weight=4&priority=9"},
			want:          map[string]string{"weight": "3"},
			applied:       1,
		},
		{
			name:          "side=provider rules are the provider's to apply",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?side=provider&weight=3"},
			want:          map[string]string{"weight": ""},
		},
		{
			name:          "2.7 rule for every consumer",
			configurators: []string{"override://0.0.0.0/com.foo.BarService?configVersion=v2.7&side=consumer&weight=11"},
			want:          map[string]string{"weight": "11"},
			applied:       1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.provider
			if p == "" {
				p = provider
			}
			orig := mustURL(t, p)
			before := orig.String()
			got, applied := configurators(t, tt.configurators...).Apply(orig)
			for k, v := range tt.want {
				if got.Params[k] != v {
					t.Errorf("param %s = %q, want %q (URL %s)", k, got.Params[k], v, got)
				}
			}
			if len(applied) != tt.applied {
				t.Errorf("%d configurators applied, want %d", len(applied), tt.applied)
			}
			if orig.String() != before {
				t.Errorf("Apply modified its input: %s", orig)
			}
		})
	}
}

func TestNewConfiguratorRejects(t *testing.T) {
	for _, s := range []string{
		"route://0.0.0.0/com.foo.BarService?rule=x",
		"override:///com.foo.BarService?weight=1",
		"override://0.0.0.0/com.foo.BarService?priority=high",
	} {
		if _, err := NewConfigurator(mustURL(t, s)); Reason(err) != ReasonBadConfigurator {
			t.Errorf("NewConfigurator(%q) = %v, want reason %s", s, err, ReasonBadConfigurator)
		}
	}
}

func TestConsumerMatches(t *testing.T) {
	key := ServiceKey{Interface: "com.foo.Bar", Group: "g1", Version: "1.0"}
	for _, tt := range []struct {
		consumer string
		want     bool
	}{
		{"consumer://10.0.0.5/com.foo.Bar?application=c&group=g1&version=1.0", true},
		{"consumer://10.0.0.5/com.foo.Bar?application=c&group=*&version=*", true},
		{"consumer://10.0.0.5/com.foo.Bar?application=c&group=g0,g1&version=1.0", true},
		{"consumer://10.0.0.5/com.foo.Bar?application=c&version=1.0", false},
		{"consumer://10.0.0.5/com.foo.Bar?application=c&group=g1&version=2.0", false},
		{"consumer://10.0.0.5/com.foo.Other?application=c&group=g1&version=1.0", false},
		{"consumer://10.0.0.5/x?interface=com.foo.Bar&group=g1&version=1.0", true},
	} {
		if got := ConsumerMatches(mustURL(t, tt.consumer), key); got != tt.want {
			t.Errorf("ConsumerMatches(%s) = %v, want %v", tt.consumer, got, tt.want)
		}
	}
}
