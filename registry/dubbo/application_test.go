package dubbo

import (
	"reflect"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestAppMember(t *testing.T) {
	tests := []struct {
		name     string
		port     uint32
		metadata map[string]string
		ports    []registry.Port
		inst     map[string]uint32
		reason   string
	}{
		{
			// The quick-start instance: apache/dubbo-website content/en/docs3-v2/java-sdk/quick-start/brief.md
			name: "one dubbo endpoint",
			port: 20880,
			metadata: map[string]string{
				"dubbo.endpoints":                   `[{"port":20880,"protocol":"dubbo"}]`,
				"dubbo.metadata-service.url-params": `{"connections":"1","version":"1.0.0","dubbo":"2.0.2","release":"3.1.4","side":"provider","port":"20880","protocol":"dubbo"}`,
				"dubbo.metadata.revision":           "871fbc9cb2730caea9b0d858852d5ede",
				"dubbo.metadata.storage-type":       "local",
				"timestamp":                         "1674960780647",
			},
			ports: []registry.Port{{Name: "dubbo", Protocol: "dubbo"}},
			inst:  map[string]uint32{"dubbo": 20880},
		},
		{
			name:     "dubbo and tri",
			port:     20880,
			metadata: map[string]string{"dubbo.endpoints": `[{"port":50051,"protocol":"tri"},{"port":20880,"protocol":"dubbo"}]`},
			ports:    []registry.Port{{Name: "dubbo", Protocol: "dubbo"}, {Name: "tri", Protocol: "tri"}},
			inst:     map[string]uint32{"dubbo": 20880, "tri": 50051},
		},
		{
			name:     "two tri ports and an unroutable one",
			port:     50051,
			metadata: map[string]string{"dubbo.endpoints": `[{"port":50052,"protocol":"tri"},{"port":50051,"protocol":"tri"},{"port":9,"protocol":"injvm"}]`},
			ports:    []registry.Port{{Name: "tri", Protocol: "tri"}, {Name: "tri-50052", Protocol: "tri"}},
			inst:     map[string]uint32{"tri": 50051, "tri-50052": 50052},
		},
		{
			name:  "no endpoints: the instance port speaks dubbo",
			port:  20881,
			ports: []registry.Port{{Name: "dubbo", Protocol: "dubbo"}},
			inst:  map[string]uint32{"dubbo": 20881},
		},
		{name: "endpoints not JSON", port: 1, metadata: map[string]string{"dubbo.endpoints": "20880:dubbo"}, reason: ReasonBadEndpoints},
		{name: "endpoint port 0", port: 1, metadata: map[string]string{"dubbo.endpoints": `[{"port":0,"protocol":"dubbo"}]`}, reason: ReasonBadEndpoints},
		{name: "only unroutable endpoints", port: 1, metadata: map[string]string{"dubbo.endpoints": `[{"port":1,"protocol":"hessian"}]`}, reason: ReasonUnknownProtocol},
		{name: "no endpoints, no port", reason: ReasonBadPort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := AppMember("demo", "10.0.0.1:20880", "10.0.0.1", tt.port, tt.metadata)
			if tt.reason != "" {
				if Reason(err) != tt.reason {
					t.Fatalf("err %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Ports, tt.ports) || !reflect.DeepEqual(m.Instance.Ports, tt.inst) {
				t.Errorf("ports %v / %v, want %v / %v", m.Ports, m.Instance.Ports, tt.ports, tt.inst)
			}
			if m.Instance.Labels["app"] != "demo" || m.Instance.Weight != 100 || !m.Instance.Enabled {
				t.Errorf("instance %+v", m.Instance)
			}
			for _, k := range []string{"dubbo.endpoints", "dubbo.metadata.revision", "timestamp", "dubbo.metadata-service.url-params"} {
				if _, ok := m.Instance.Labels[k]; ok {
					t.Errorf("label %s kept", k)
				}
			}
		})
	}
}

func TestApplicationService(t *testing.T) {
	a, err := AppMember("demo", "10.0.0.1:20880", "10.0.0.1", 20880, map[string]string{"dubbo.endpoints": `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`})
	if err != nil {
		t.Fatal(err)
	}
	b, err := AppMember("demo", "10.0.0.2:20880", "10.0.0.2", 20880, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := ApplicationService("demo", []Member{b, a})
	if s.Kind != registry.KindDubboApplication || s.Name != "demo" || len(s.Ports) != 2 || len(s.Instances) != 2 || s.Instances[0].ID != "10.0.0.1:20880" {
		t.Errorf("got %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseMapping(t *testing.T) {
	if got, want := ParseMapping(" b-app,a-app,,b-app "), []string{"a-app", "b-app"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMapping = %v, want %v", got, want)
	}
	if got := ParseMapping(""); got != nil {
		t.Errorf("ParseMapping(\"\") = %v", got)
	}
}
