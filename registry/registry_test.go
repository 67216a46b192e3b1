package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func validService() *Service {
	return &Service{
		Kind: KindDubboApplication, Name: "shop",
		Ports: []Port{{Name: "dubbo", Protocol: ProtocolDubbo}, {Name: "tri", Protocol: ProtocolTriple}},
		Instances: []Instance{{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880, "tri": 50051},
			Labels: map[string]string{"v": "1"}, Weight: 100, Healthy: true, Enabled: true}},
	}
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Service)
		want   string // "" = valid
	}{
		{"valid", func(*Service) {}, ""},
		{"no name", func(s *Service) { s.Name = "" }, "no name"},
		{"unknown kind", func(s *Service) { s.Kind = "rpc" }, `unknown kind "rpc"`},
		{"unnamed port", func(s *Service) { s.Ports[1].Name = "" }, "a port has no name"},
		{"port name twice", func(s *Service) { s.Ports[1].Name = "dubbo" }, `port name "dubbo" is used twice`},
		{"instance without address", func(s *Service) { s.Instances[0].Address = "" }, `instance "a" has no address`},
		{"instance with a mistyped IP", func(s *Service) { s.Instances[0].Address = "10.0.0.300" }, `instance "a": address "10.0.0.300" is not a valid IPv4 address`},
		{"instance with an address Istio rejects", func(s *Service) { s.Instances[0].Address = "my_host" }, `label "my_host"`},
		{"instance port the service lacks", func(s *Service) { s.Instances[0].Ports["http"] = 80 }, `port "http" that the service does not declare`},
		{"port number 0", func(s *Service) { s.Instances[0].Ports["tri"] = 0 }, "out of range"},
		{"port number too large", func(s *Service) { s.Instances[0].Ports["tri"] = 70000 }, "70000 is out of range"},
		{"no instances is valid", func(s *Service) { s.Instances = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validService()
			tt.mutate(s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	s := validService()
	s.Labels = map[string]string{"app": "shop"}
	s.Aliases = []string{"com.example.Cart"}
	c := s.Clone()
	c.Ports[0].Name = "x"
	c.Labels["app"] = "x"
	c.Aliases[0] = "x"
	c.Instances[0].Ports["dubbo"] = 1
	c.Instances[0].Labels["v"] = "x"
	if s.Ports[0].Name != "dubbo" || s.Labels["app"] != "shop" || s.Aliases[0] != "com.example.Cart" ||
		s.Instances[0].Ports["dubbo"] != 20880 || s.Instances[0].Labels["v"] != "1" {
		t.Fatalf("changing the clone changed the original: %+v", s)
	}
}

func TestKeyAndLocalityStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{Key{Kind: KindDubboInterface, Group: "g", Name: "com.example.Greeter", Version: "1.0.0"}.String(), "dubbo-interface:g/com.example.Greeter:1.0.0"},
		{Key{Kind: KindApplication, Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}.String(), "application:public/DEFAULT_GROUP/orders"},
		{Locality{Region: "r", Zone: "z", Subzone: "s"}.String(), "r/z/s"},
		{Locality{Region: "r"}.String(), "r"},
		{Locality{Region: "r", Subzone: "s"}.String(), "r//s"},
		{Locality{}.String(), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "password")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCP_BRIDGE_TEST_SECRET", "from-env")
	tests := []struct {
		name    string
		secret  Secret
		want    string
		wantErr string
	}{
		{"unset reads empty", Secret{}, "", ""},
		{"file, trailing newline trimmed", Secret{File: good}, "s3cret", ""},
		{"env", Secret{Env: "MCP_BRIDGE_TEST_SECRET"}, "from-env", ""},
		{"missing file", Secret{File: filepath.Join(dir, "nope")}, "", "reading secret file"},
		{"empty file", Secret{File: empty}, "", "is empty"},
		{"unset env", Secret{Env: "MCP_BRIDGE_TEST_UNSET"}, "", "MCP_BRIDGE_TEST_UNSET is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.secret.Read()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatal("an error shows the secret")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Read() = %q, %v; want %q", got, err, tt.want)
			}
			if strings.Contains(tt.secret.String(), tt.want) && tt.want != "" {
				t.Fatalf("String() %q shows the value", tt.secret.String())
			}
		})
	}
	if err := (Secret{File: good, Env: "X"}).Validate(); err == nil {
		t.Error("a secret with both file and env validated")
	}
}

func TestProtocolValid(t *testing.T) {
	for _, tc := range []struct {
		p    Protocol
		want bool
	}{
		{ProtocolDubbo, true}, {ProtocolTriple, true}, {ProtocolGRPC, true}, {ProtocolHTTP, true},
		{ProtocolHTTPS, true}, {ProtocolTCP, true}, {"thrift", false}, {"", false}, {"HTTP", false},
	} {
		if got := tc.p.Valid(); got != tc.want {
			t.Errorf("Protocol(%q).Valid() = %v, want %v", tc.p, got, tc.want)
		}
	}
}
