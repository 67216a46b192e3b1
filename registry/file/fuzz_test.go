package file

import (
	"errors"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// FuzzParse: any input either fails with Errors (each with a message, at most maxErrors and a
// summary) or yields services the model accepts, every address one Istio would take. Parse never
// panics and returns nothing alongside an error (a bad file must not be half-applied).
func FuzzParse(f *testing.F) {
	f.Add(Example())
	for _, s := range []string{
		"",
		"services: []\n",
		servicesSeed("10.0.0.1"),
		servicesSeed("10.0.0.300"), // the mistyped IP of issue 9
		servicesSeed("10.0.0"),
		servicesSeed("fe80::1%eth0"),
		servicesSeed("my_host"),
		servicesSeed("orders-1.example.com."),
		"services:\n  - name: a\n    kind: dubbo-application\n    ports: [{name: tri, protocol: tri}]\n    aliases: [x]\n    instances:\n      - {address: \"::1\", ports: {tri: 50051}, weight: 0, locality: {region: r}}\n",
		"services:\n  - name: a\n  - name: a\n",
		"services: {name: a}\n",
		"a: &x [*x, *x]\n",
		"services: []\n---\nservices: []\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return // yaml.v3's cost grows with size; large inputs add time, not coverage
		}
		services, err := Parse(data)
		if err != nil {
			if services != nil {
				t.Fatalf("services returned with an error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 || len(es) > maxErrors+1 {
				t.Fatalf("error %T %v: want 1-%d Errors", err, err, maxErrors+1)
			}
			for _, e := range es {
				if e.Msg == "" || e.Line < 0 {
					t.Fatalf("error without a message or with line %d: %v", e.Line, err)
				}
			}
			return
		}
		for _, s := range services {
			if err := s.Validate(); err != nil {
				t.Fatalf("Parse accepted a service the model rejects: %v", err)
			}
			for _, in := range s.Instances {
				if err := registry.CheckAddress(in.Address); err != nil {
					t.Fatalf("Parse accepted address %q: %v", in.Address, err)
				}
			}
		}
	})
}

func servicesSeed(addr string) string {
	return "services:\n  - name: svc\n    instances:\n      - address: \"" + addr + "\"\n        ports: {http: 8080}\n"
}
