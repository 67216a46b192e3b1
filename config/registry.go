package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Registry is one registry to watch: a name, a type and the block for that type.
//
// In YAML the block sits under the key named by the type:
//
//   - name: zk
//     type: zookeeper
//     zookeeper: {servers: [zk:2181]}
//
// The types and their blocks come from registry/registries; a configuration can be compared with
// reflect.DeepEqual (Config holds a pointer to the adapter package's own Config struct).
type Registry struct {
	// Name identifies the registry in logs, metrics, status pages and resource labels. Required;
	// a DNS label (lower-case letters, digits, '-'), unique.
	Name string
	// Type is a registry type of registry/registries (file, zookeeper, nacos); the block of the
	// same name configures it.
	Type string
	// Namespace is the Istio namespace the registry's resources are placed in. Default: the
	// registry's name.
	Namespace string
	// Hosts overrides the host name templates per kind of service. Defaults depend on the type
	// (docs/registries.md#hosts): e.g. Nacos "<service>.<group>.<namespace>.nacos".
	Hosts translate.HostTemplates
	// Config is the block named by Type (e.g. *zookeeper.Config), nil when it is missing.
	Config registries.Block

	// otherBlocks are blocks of other types than Type, which validation reports.
	otherBlocks []string
}

// registryYAML is the struct a registry entry decodes from: the common fields and one pointer
// field per registry type, keyed by the type's name. It is built from the table, so strict
// decoding (unknown and duplicated keys, with their lines) works for every type's block.
func registryYAML() reflect.Type {
	fields := []reflect.StructField{
		{Name: "Name", Type: reflect.TypeFor[string](), Tag: `yaml:"name,omitempty"`},
		{Name: "Type", Type: reflect.TypeFor[string](), Tag: `yaml:"type,omitempty"`},
		{Name: "Namespace", Type: reflect.TypeFor[string](), Tag: `yaml:"namespace,omitempty"`},
		{Name: "Hosts", Type: reflect.TypeFor[translate.HostTemplates](), Tag: `yaml:"hosts,omitempty"`},
	}
	for i, t := range registries.Table() {
		fields = append(fields, reflect.StructField{
			Name: "Block" + strconv.Itoa(i),
			Type: reflect.TypeOf(t.NewConfig()),
			Tag:  reflect.StructTag(`yaml:"` + t.Name + `,omitempty"`),
		})
	}
	return reflect.StructOf(fields)
}

// UnmarshalYAML decodes a registry entry. It uses the decoder's own callback (not yaml.Node.Decode),
// which keeps the strict decoding of unknown fields and the line numbers of errors.
func (r *Registry) UnmarshalYAML(unmarshal func(any) error) error {
	v := reflect.New(registryYAML())
	if err := unmarshal(v.Interface()); err != nil {
		return err
	}
	s := v.Elem()
	*r = Registry{
		Name:      s.Field(0).String(),
		Type:      s.Field(1).String(),
		Namespace: s.Field(2).String(),
		Hosts:     s.Field(3).Interface().(translate.HostTemplates),
	}
	for i, t := range registries.Table() {
		f := s.Field(4 + i)
		switch {
		case f.IsNil():
		case t.Name == r.Type:
			r.Config = f.Interface().(registries.Block)
		default:
			r.otherBlocks = append(r.otherBlocks, t.Name)
		}
	}
	return nil
}

// MarshalYAML writes the entry in the form UnmarshalYAML reads, the block under its type's key.
func (r Registry) MarshalYAML() (any, error) {
	v := reflect.New(registryYAML()).Elem()
	v.Field(0).SetString(r.Name)
	v.Field(1).SetString(r.Type)
	v.Field(2).SetString(r.Namespace)
	v.Field(3).Set(reflect.ValueOf(r.Hosts))
	for i, t := range registries.Table() {
		if t.Name == r.Type && r.Config != nil {
			f := v.Field(4 + i)
			if reflect.TypeOf(r.Config) != f.Type() {
				return nil, fmt.Errorf("registry %q: block is a %T, not a %s block", r.Name, r.Config, t.Name)
			}
			f.Set(reflect.ValueOf(r.Config))
		}
	}
	return v.Interface(), nil
}

// Secrets returns the credentials every registry block refers to, by YAML path
// ("registries[1].nacos.password"), so a caller can check they resolve without connecting.
func (c *Config) Secrets() map[string]registry.Secret {
	out := make(map[string]registry.Secret)
	for i, r := range c.Registries {
		if r.Config == nil {
			continue
		}
		for key, s := range r.Config.Secrets() {
			out["registries["+strconv.Itoa(i)+"]."+r.Type+"."+key] = s
		}
	}
	return out
}

func (r *Registry) applyDefaults() {
	if r.Namespace == "" && isDNSLabel(r.Name) {
		// An invalid name is reported once, as the name, not again as a namespace.
		r.Namespace = r.Name
	}
	t, ok := registries.Lookup(r.Type)
	if !ok {
		return
	}
	if r.Config == nil && t.BlockOptional {
		r.Config = t.NewConfig()
	}
	if r.Config != nil {
		r.Config = t.WithDefaults(r.Config)
	}
}

// translateOptions returns the naming options translate needs, with the type's default hosts.
func (r Registry) translateOptions() translate.RegistryOptions {
	hosts := r.Hosts
	if t, ok := registries.Lookup(r.Type); ok {
		hosts = t.Hosts(hosts)
	}
	return translate.RegistryOptions{Name: r.Name, Namespace: r.Namespace, Hosts: hosts}
}

func (ps *problems) validateRegistry(path string, r Registry) {
	if r.Name == "" {
		ps.add(path+".name", "is required")
	} else if !isDNSLabel(r.Name) {
		ps.add(path+".name", fmt.Sprintf("%q must be a DNS label: lower-case letters, digits and '-', at most 63 characters", r.Name))
	}
	if r.Namespace != "" && !isDNSLabel(r.Namespace) {
		ps.add(path+".namespace", fmt.Sprintf("%q is not a valid Kubernetes namespace name (DNS label)", r.Namespace))
	}
	ps.check(path+".hosts", r.Hosts.Validate())
	for _, b := range r.otherBlocks {
		ps.add(path+"."+b, fmt.Sprintf("block %q does not match type %q", b, r.Type))
	}
	types := strings.Join(registries.Names(), ", ")
	t, ok := registries.Lookup(r.Type)
	switch {
	case r.Type == "":
		ps.add(path+".type", "is required: one of "+types)
		return
	case !ok:
		ps.add(path+".type", fmt.Sprintf("%q is not a known registry type: one of %s", r.Type, types))
		return
	case r.Config == nil:
		ps.add(path+"."+t.Name, fmt.Sprintf("is required for type %q", t.Name))
		return
	}
	ps.check(path+"."+t.Name, r.Config.Validate())
}
