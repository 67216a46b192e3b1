package registries

import (
	"reflect"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/consul"
	"github.com/mcp-bridge/mcp-bridge/registry/eureka"
	"github.com/mcp-bridge/mcp-bridge/registry/file"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
	"github.com/mcp-bridge/mcp-bridge/registry/zookeeper"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Every type decodes into its adapter package's own Config, defaults it, and names its services'
// hosts as docs/registries.md#hosts documents.
func TestTable(t *testing.T) {
	app := &registry.Service{Kind: registry.KindApplication, Name: "Orders", Group: "DEFAULT_GROUP"}
	iface := &registry.Service{Kind: registry.KindDubboInterface, Name: "com.shop.Orders", Group: "g", Version: "1.0"}
	tests := []struct {
		name     string
		block    Block
		optional bool
		appHost  string
	}{
		{"file", &file.Config{}, true, "orders.file"},
		{"zookeeper", &zookeeper.Config{}, false, "orders.zookeeper"},
		{"nacos", &nacos.Config{}, false, "orders.default-group.public.nacos"},
		{"consul", &consul.Config{}, false, "orders.consul"},
		{"eureka", &eureka.Config{}, false, "orders.eureka"},
	}
	if got, want := len(Table()), len(tests); got != want {
		t.Fatalf("table has %d types, the test knows %d: add the new type here", got, want)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, ok := Lookup(tc.name)
			if !ok || Table()[i].Name != tc.name || Names()[i] != tc.name {
				t.Fatalf("type %q is not entry %d of the table", tc.name, i)
			}
			b := typ.NewConfig()
			if reflect.TypeOf(b) != reflect.TypeOf(tc.block) || !reflect.DeepEqual(b, tc.block) {
				t.Errorf("NewConfig() = %#v, want a zero %T", b, tc.block)
			}
			if d := typ.WithDefaults(b); reflect.TypeOf(d) != reflect.TypeOf(tc.block) || reflect.DeepEqual(d, b) {
				t.Errorf("WithDefaults gave %#v: want a defaulted %T", d, tc.block)
			}
			if !reflect.DeepEqual(b, tc.block) {
				t.Error("WithDefaults modified its argument")
			}
			if typ.BlockOptional != tc.optional {
				t.Errorf("BlockOptional = %v, want %v", typ.BlockOptional, tc.optional)
			}
			tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "r", Hosts: typ.Hosts(translate.HostTemplates{})}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				svc  *registry.Service
				want string
			}{{app, tc.appHost}, {iface, "com.shop.orders-g-1-0"}} {
				c := s.svc.Clone()
				c.Registry = "r"
				if got := tr.Host(c); got != s.want {
					t.Errorf("host of %s = %q, want %q", c.Key(), got, s.want)
				}
			}
			// Given templates win over the type's defaults, field by field.
			given := translate.HostTemplates{Application: "{{.Name}}.x"}
			if h := typ.Hosts(given); h.Application != given.Application || h.DubboApplication != typ.DefaultHosts.DubboApplication {
				t.Errorf("Hosts(%+v) = %+v", given, h)
			}
		})
	}
	if _, ok := Lookup("eurka"); ok {
		t.Error("Lookup accepted an unknown type")
	}
}

// New builds a type's adapter from its own block and refuses another type's block or none.
func TestNew(t *testing.T) {
	f, _ := Lookup("file")
	zk, _ := Lookup("zookeeper")
	opts := registry.Options{Name: "r"}
	if a, err := f.New(f.WithDefaults(f.NewConfig()), opts); err != nil || a == nil {
		t.Errorf("file.New = %v, %v", a, err)
	}
	for _, tc := range []struct {
		name  string
		typ   Type
		block Block
	}{
		{"another type's block", zk, f.NewConfig()},
		{"no block", zk, nil},
	} {
		if _, err := tc.typ.New(tc.block, opts); err == nil {
			t.Errorf("%s: New accepted it", tc.name)
		}
	}
}
