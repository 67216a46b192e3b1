// Package registries is the table of registry types: the one place that declares a type's name,
// its configuration block (the adapter package's own Config, with its defaults, validation and
// credential references), its constructor and its default host templates. config decodes and
// checks registry entries through it, the wiring builds adapters through it, and translate gets
// its default host templates from the options config builds from it.
//
// Adding a registry type is a package below registry/ and one entry in Table. The table is built
// by a function, not by packages registering themselves, so there is no package-level state and
// the set of types is visible in one place.
package registries

import (
	"fmt"
	"slices"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/consul"
	"github.com/mcp-bridge/mcp-bridge/registry/eureka"
	"github.com/mcp-bridge/mcp-bridge/registry/file"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
	"github.com/mcp-bridge/mcp-bridge/registry/zookeeper"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Table returns every registry type, in the order error messages list them.
func Table() []Type {
	return []Type{
		entry("file", file.New, `{{.Name}}.file`, blockOptional),
		entry("zookeeper", zookeeper.New, `{{.Name}}.zookeeper`, blockRequired),
		// The form of Nacos's own MCP server and Higress, lower-cased: DEFAULT_GROUP -> default-group.
		entry("nacos", nacos.New, `{{.Name}}.{{.Group | default "default-group"}}.{{.Namespace | default "public"}}.nacos`, blockRequired),
		// <service>.<datacenter>.consul; the model's namespace of a Consul service is its datacenter.
		entry("consul", consul.New, `{{.Name}}{{with .Namespace}}.{{.}}{{end}}.consul`, blockRequired),
		// Eureka upper-cases application names; translate lower-cases hosts: ORDERS -> orders.eureka.
		entry("eureka", eureka.New, `{{.Name}}.eureka`, blockRequired),
	}
}

// Block is a registry type's configuration block: a pointer to the adapter package's Config.
// Blocks are plain data, so two configurations compare with reflect.DeepEqual (a reload restarts
// only registries whose block changed).
type Block interface {
	// Validate reports what is wrong with the block (after defaults), naming the field first
	// ("servers: must not be empty").
	Validate() error
	// Secrets returns the credentials the block refers to that are set, by their YAML key within
	// the block ("password", "digest"), so that a caller can check they resolve. Never values.
	Secrets() map[string]registry.Secret
}

// Type is one registry type.
type Type struct {
	// Name is the value of a registry entry's type and the YAML key of its block.
	Name string
	// BlockOptional says a registry of this type may omit its block; it then gets NewConfig's
	// defaults (the file registry serves its embedded example services).
	BlockOptional bool
	// DefaultHosts are the host templates of the type's services, per kind, where the registry
	// entry sets none (docs/registries.md#hosts). The Dubbo interface template is translate's own,
	// the same for every registry, so it is left empty here.
	DefaultHosts translate.HostTemplates

	newConfig    func() Block
	withDefaults func(Block) Block
	newAdapter   func(Block, registry.Options) (registry.Adapter, error)
}

// NewConfig returns a new zero block of the type (a pointer to the adapter's Config), to decode into.
func (t Type) NewConfig() Block { return t.newConfig() }

// WithDefaults returns a copy of the block with unset fields defaulted. The block must come from
// this type's NewConfig.
func (t Type) WithDefaults(b Block) Block { return t.withDefaults(b) }

// New builds the type's adapter from a defaulted, valid block of this type.
func (t Type) New(b Block, opts registry.Options) (registry.Adapter, error) {
	if b == nil {
		return nil, fmt.Errorf("registry type %s: no configuration block", t.Name)
	}
	return t.newAdapter(b, opts)
}

// Hosts returns the registry's host templates: those given, and the type's defaults for the rest.
func (t Type) Hosts(given translate.HostTemplates) translate.HostTemplates {
	if given.Application == "" {
		given.Application = t.DefaultHosts.Application
	}
	if given.DubboInterface == "" {
		given.DubboInterface = t.DefaultHosts.DubboInterface
	}
	if given.DubboApplication == "" {
		given.DubboApplication = t.DefaultHosts.DubboApplication
	}
	return given
}

// Lookup returns the type of the given name.
func Lookup(name string) (Type, bool) {
	tab := Table()
	i := slices.IndexFunc(tab, func(t Type) bool { return t.Name == name })
	if i < 0 {
		return Type{}, false
	}
	return tab[i], true
}

// Names returns the type names in table order.
func Names() []string {
	var names []string
	for _, t := range Table() {
		names = append(names, t.Name)
	}
	return names
}

const (
	blockOptional = true
	blockRequired = false
)

// config is what the table needs of an adapter package's Config type C, through its pointer P.
type config[C any] interface {
	*C
	Block
	WithDefaults() C
}

// entry builds a Type from an adapter package's constructor, so each entry is one line and the
// conversions between Block and the package's own Config type are written once.
func entry[C any, P config[C], A registry.Adapter](name string, newAdapter func(C, registry.Options) (A, error), hostTemplate string, optional bool) Type {
	return Type{
		Name:          name,
		BlockOptional: optional,
		DefaultHosts:  translate.HostTemplates{Application: hostTemplate, DubboApplication: hostTemplate},
		newConfig:     func() Block { return P(new(C)) },
		withDefaults: func(b Block) Block {
			d := b.(P).WithDefaults()
			return P(&d)
		},
		newAdapter: func(b Block, opts registry.Options) (registry.Adapter, error) {
			c, ok := b.(P)
			if !ok {
				return nil, fmt.Errorf("registry type %s: configuration block is a %T", name, b)
			}
			a, err := newAdapter(*c, opts)
			if err != nil {
				return nil, err
			}
			return a, nil
		},
	}
}
