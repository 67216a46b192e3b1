package dubbo

import (
	"reflect"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func mustURL(t *testing.T, s string) *URL {
	t.Helper()
	u, err := ParseURL(s)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s, err)
	}
	return u
}

func mustProvider(t *testing.T, s string) Provider {
	t.Helper()
	p, err := NewProvider(mustURL(t, s))
	if err != nil {
		t.Fatalf("NewProvider(%q): %v", s, err)
	}
	return p
}

func TestNewProviderWeightAndState(t *testing.T) {
	tests := []struct {
		query   string
		weight  uint32
		enabled bool
		reason  string
	}{
		{"", 100, true, ""},
		{"weight=0", 0, true, ""},
		{"weight=250", 250, true, ""},
		{"weight=", 100, true, ""},
		{"weight=-1", 0, false, ReasonBadWeight},
		{"weight=1.5", 0, false, ReasonBadWeight},
		{"weight=4294967296", 0, false, ReasonBadWeight},
		{"disabled=true", 100, false, ""},
		{"disabled=TRUE", 100, false, ""},
		{"disabled=yes", 100, true, ""}, // Java Boolean.parseBoolean: only "true" is true
		{"disabled=false&enabled=false", 100, true, ""},
		{"enabled=false", 100, false, ""},
		{"deprecated=true", 100, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p, err := NewProvider(mustURL(t, "dubbo://10.0.0.1:20880/com.foo.Bar?"+tt.query))
			if tt.reason != "" {
				if Reason(err) != tt.reason {
					t.Fatalf("err %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Instance.Weight != tt.weight || p.Instance.Enabled != tt.enabled || !p.Instance.Healthy {
				t.Errorf("weight %d enabled %v healthy %v, want %d %v true", p.Instance.Weight, p.Instance.Enabled, p.Instance.Healthy, tt.weight, tt.enabled)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	got := Labels(map[string]string{
		"application": "demo", "dubbo.tag": "gray", "timestamp": "1", "pid": "2", "token": "s3cr3t",
		"access-key": "k", "interface": "com.foo.Bar", "version": "1", "group": "g", "weight": "1",
		"methods": "a,b", "disabled": "false", "release": "3.2.0", "empty": "", "dubbo.endpoints": "[]",
		"dubbo.metadata.storage-type": "local", "env": "prod",
	})
	want := map[string]string{"app": "demo", "dubbo-tag": "gray", "release": "3.2.0", "env": "prod"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Labels = %v, want %v", got, want)
	}
}

func TestProtocol(t *testing.T) {
	for in, want := range map[string]registry.Protocol{"dubbo": "dubbo", "tri": "tri", "TRI": "tri", "rest": "http",
		"http": "http", "grpc": "grpc", "https": "https"} {
		if got, ok := Protocol(in); !ok || got != want {
			t.Errorf("Protocol(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"hessian", "injvm", "consumer", "override", "empty", ""} {
		if _, ok := Protocol(in); ok {
			t.Errorf("Protocol(%q) accepted", in)
		}
	}
}

func TestInterfaceService(t *testing.T) {
	key := ServiceKey{Interface: "com.foo.Bar", Version: "1.0"}
	providers := []Provider{
		// A restarted provider: the old node (older timestamp, weight 50) lingers until its
		// session expires; the new one wins.
		mustProvider(t, "dubbo://10.0.0.1:20880/com.foo.Bar?version=1.0&application=a&timestamp=2000&weight=80"),
		mustProvider(t, "dubbo://10.0.0.1:20880/com.foo.Bar?version=1.0&application=a&timestamp=1000&weight=50"),
		// Port unification: tri on the same address is the same process.
		mustProvider(t, "tri://10.0.0.1:20880/com.foo.Bar?version=1.0&application=a&timestamp=1500"),
		// Another host with a tri port only.
		mustProvider(t, "tri://[2001:db8::7]:50051/com.foo.Bar?version=1.0&application=a&timestamp=1"),
		// Another version: not this service.
		mustProvider(t, "dubbo://10.0.0.9:20880/com.foo.Bar?version=2.0&application=a"),
	}
	got := InterfaceService(key, providers)
	want := &registry.Service{
		Kind: registry.KindDubboInterface, Name: "com.foo.Bar", Version: "1.0",
		Ports:  []registry.Port{{Name: "dubbo", Protocol: "dubbo"}, {Name: "tri", Protocol: "tri"}},
		Labels: map[string]string{"app": "a"},
		Instances: []registry.Instance{
			{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880, "tri": 20880},
				Labels: map[string]string{"app": "a"}, Weight: 80, Healthy: true, Enabled: true},
			{ID: "[2001:db8::7]:50051", Address: "2001:db8::7", Ports: map[string]uint32{"tri": 50051},
				Labels: map[string]string{"app": "a"}, Weight: 100, Healthy: true, Enabled: true},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("InterfaceService\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
	// Mixed applications: no service app label.
	mixed := InterfaceService(ServiceKey{Interface: "com.foo.Bar", Version: "2.0"}, append(providers,
		mustProvider(t, "dubbo://10.0.0.8:20880/com.foo.Bar?version=2.0&application=b")))
	if mixed.Labels != nil {
		t.Errorf("labels %v, want none for providers of two applications", mixed.Labels)
	}
}

func TestInterfaceServiceMergesProcesses(t *testing.T) {
	key := ServiceKey{Interface: "com.foo.Rest"}
	tests := []struct {
		name      string
		providers []string
		want      []registry.Instance
	}{
		{
			// One process exporting rest and dubbo (dubbo-samples-rest's protocol="rest,dubbo").
			name: "one process, two protocols: one endpoint with both ports",
			providers: []string{
				"rest://10.0.0.1:8888/services/com.foo.Rest?interface=com.foo.Rest&pid=42&timestamp=1",
				"dubbo://10.0.0.1:20880/com.foo.Rest?interface=com.foo.Rest&pid=42&timestamp=2&weight=60",
			},
			want: []registry.Instance{{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880, "http": 8888},
				Weight: 60, Healthy: true, Enabled: true}},
		},
		{
			name: "a disabled protocol disables the process's endpoint",
			providers: []string{
				"rest://10.0.0.1:8888/services/com.foo.Rest?interface=com.foo.Rest&pid=42&disabled=true",
				"dubbo://10.0.0.1:20880/com.foo.Rest?interface=com.foo.Rest&pid=42",
			},
			want: []registry.Instance{{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880, "http": 8888},
				Weight: 100, Healthy: true, Enabled: false}},
		},
		{
			name: "two processes on one host stay apart",
			providers: []string{
				"dubbo://10.0.0.1:20880/com.foo.Rest?interface=com.foo.Rest&pid=1",
				"rest://10.0.0.1:8888/com.foo.Rest?interface=com.foo.Rest&pid=2",
			},
			want: []registry.Instance{
				{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880}, Weight: 100, Healthy: true, Enabled: true},
				{ID: "10.0.0.1:8888", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8888}, Weight: 100, Healthy: true, Enabled: true},
			},
		},
		{
			name: "one process, two dubbo ports: two endpoints",
			providers: []string{
				"dubbo://10.0.0.1:20880/com.foo.Rest?interface=com.foo.Rest&pid=1",
				"dubbo://10.0.0.1:20881/com.foo.Rest?interface=com.foo.Rest&pid=1",
			},
			want: []registry.Instance{
				{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880}, Weight: 100, Healthy: true, Enabled: true},
				{ID: "10.0.0.1:20881", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20881}, Weight: 100, Healthy: true, Enabled: true},
			},
		},
		{
			name: "a restarted process replaces its old registration",
			providers: []string{
				"dubbo://10.0.0.1:20880/com.foo.Rest?interface=com.foo.Rest&pid=1&timestamp=100&weight=10",
				"dubbo://10.0.0.1:20880/com.foo.Rest?interface=com.foo.Rest&pid=2&timestamp=200",
				"rest://10.0.0.1:8888/com.foo.Rest?interface=com.foo.Rest&pid=2&timestamp=200",
			},
			want: []registry.Instance{{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880, "http": 8888},
				Weight: 100, Healthy: true, Enabled: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []Provider
			for _, s := range tt.providers {
				ps = append(ps, mustProvider(t, s))
			}
			got := InterfaceService(key, ps).Instances
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("instances\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// An address Istio would drop from the ServiceEntry is rejected where the provider or instance is
// read (reason bad-host), so it shows on the status page instead of vanishing downstream.
func TestAddressesIstioWouldDropAreRejected(t *testing.T) {
	for _, tt := range []struct {
		host string
		ok   bool
	}{
		{"10.0.0.1", true},
		{"provider-1.example.com", true},
		{"10.0.0.300", false}, // a mistyped IP, not a host name
		{"10.0.0", false},
		{"my_host", false}, // ParseURL accepts '_'; Istio's endpoint check does not
	} {
		t.Run(tt.host, func(t *testing.T) {
			_, perr := NewProvider(mustURL(t, "dubbo://"+tt.host+":20880/com.foo.Bar"))
			_, aerr := AppMember("demo", tt.host+":20880", tt.host, 20880, nil)
			for what, err := range map[string]error{"NewProvider": perr, "AppMember": aerr} {
				switch {
				case tt.ok && err != nil:
					t.Errorf("%s: %v", what, err)
				case !tt.ok && Reason(err) != ReasonBadHost:
					t.Errorf("%s: err %v, want reason %s", what, err, ReasonBadHost)
				}
			}
		})
	}
}
