package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// The document as written. Field types are the package's own (not registry's) so that yaml's
// messages name them, and pointers tell "absent" (default) from an explicit zero.
type document struct {
	Services []serviceDoc `yaml:"services"`
}

type serviceDoc struct {
	Name      string            `yaml:"name"`
	Kind      registry.Kind     `yaml:"kind"`
	Namespace string            `yaml:"namespace"`
	Group     string            `yaml:"group"`
	Version   string            `yaml:"version"`
	Ports     []portDoc         `yaml:"ports"`
	Labels    map[string]string `yaml:"labels"`
	Aliases   []string          `yaml:"aliases"`
	Consumers []string          `yaml:"consumers"`
	Instances []instanceDoc     `yaml:"instances"`
}

type portDoc struct {
	Name     string            `yaml:"name"`
	Protocol registry.Protocol `yaml:"protocol"`
}

type instanceDoc struct {
	ID       string            `yaml:"id"`
	Address  string            `yaml:"address"`
	Ports    map[string]uint32 `yaml:"ports"`
	Weight   *uint32           `yaml:"weight"`
	Healthy  *bool             `yaml:"healthy"`
	Enabled  *bool             `yaml:"enabled"`
	Labels   map[string]string `yaml:"labels"`
	Locality localityDoc       `yaml:"locality"`
}

type localityDoc struct {
	Region  string `yaml:"region"`
	Zone    string `yaml:"zone"`
	Subzone string `yaml:"subzone"`
}

// DefaultWeight is an instance's weight when the file gives none (Dubbo's default).
const DefaultWeight = 100

// maxErrors bounds how many problems one parse reports: enough to fix a file in one go, not a
// wall of text on the status page.
const maxErrors = 10

// knownProtocol reports whether translate can map p to an Istio port; anything else would be
// dropped downstream, so the file rejects it where the operator can see the line.
func knownProtocol(p registry.Protocol) bool { return p.Valid() }

// Error is one problem in a services file. Line is 1-based, 0 when no line applies.
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Errors is every problem Parse found, in file order (at most maxErrors, then a summary).
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// FirstLine is the line of the first problem that has one, 0 if none does.
func (es Errors) FirstLine() int {
	for _, e := range es {
		if e.Line > 0 {
			return e.Line
		}
	}
	return 0
}

// Parse decodes and validates a services file. It is all or nothing: any problem makes the whole
// file invalid (an Errors value), because serving the rest would deregister the service whose
// entry has a typo. An empty file is valid and has no services.
func Parse(data []byte) ([]*registry.Service, error) {
	var doc document
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlErrors(err)
	}
	// A second document would be ignored by the decoder above; say so instead.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, Errors{{Line: extra.Line, Msg: "only one YAML document is allowed"}}
	}
	// The typed decode above has no positions; a node tree of the same bytes gives every value's line.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlErrors(err)
	}
	c := checker{loc: locator{&root}, seen: map[registry.Key]int{}}
	services := make([]*registry.Service, 0, len(doc.Services))
	for i := range doc.Services {
		if svc := c.service(i, &doc.Services[i]); svc != nil {
			services = append(services, svc)
		}
	}
	if len(c.errs) > 0 {
		return nil, c.result()
	}
	return services, nil
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// yamlErrors turns yaml.v3's errors into Errors with their lines, and its unknown-field message
// (which names Go types) into one that names the field.
func yamlErrors(err error) Errors {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	// Longest names first, so "[]file.serviceDoc" is not half-replaced by "file.serviceDoc".
	types := strings.NewReplacer(
		"[]file.serviceDoc", "a list of services", "[]file.instanceDoc", "a list of instances",
		"[]file.portDoc", "a list of ports", "file.document", "a services file (a mapping with services:)",
		"file.serviceDoc", "a service", "file.instanceDoc", "an instance", "file.portDoc", "a port",
		"file.localityDoc", "a locality",
	)
	var out Errors
	for _, m := range msgs {
		m = unknownField.ReplaceAllString(m, `unknown field "$1"`)
		m = types.Replace(m)
		e := &Error{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			e.Line, _ = strconv.Atoi(sub[1])
			e.Msg = sub[2]
		}
		out = append(out, e)
	}
	return out
}

// locator finds the line of a value in the node tree by its path of mapping keys and sequence
// indexes. A path that does not exist resolves to its deepest existing ancestor, which is where
// a missing field belongs.
type locator struct{ root *yaml.Node }

func (l locator) line(path ...any) int {
	n := l.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		next := child(n, p)
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

func child(n *yaml.Node, p any) *yaml.Node {
	switch p := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && p < len(n.Content) {
			return n.Content[p]
		}
	}
	return nil
}

type checker struct {
	loc     locator
	seen    map[registry.Key]int // service key -> line first defined
	errs    Errors
	omitted int
}

func (c *checker) errorf(line int, format string, args ...any) {
	if len(c.errs) >= maxErrors {
		c.omitted++
		return
	}
	c.errs = append(c.errs, &Error{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) result() Errors {
	if c.omitted > 0 {
		return append(c.errs, &Error{Msg: fmt.Sprintf("and %d more problems", c.omitted)})
	}
	return c.errs
}

// service checks one entry and builds its registry.Service; nil when it has problems (they are
// recorded in c.errs).
func (c *checker) service(i int, d *serviceDoc) *registry.Service {
	before := len(c.errs) + c.omitted
	at := func(path ...any) int { return c.loc.line(append([]any{"services", i}, path...)...) }
	field := fmt.Sprintf("services[%d]", i)
	if d.Name != "" {
		field = fmt.Sprintf("service %q", d.Name)
	}

	svc := &registry.Service{
		Kind: d.Kind, Namespace: d.Namespace, Group: d.Group, Name: d.Name, Version: d.Version,
		Labels: d.Labels, Aliases: d.Aliases, Consumers: d.Consumers,
	}
	if svc.Kind == "" {
		svc.Kind = registry.KindApplication
	}
	if d.Name == "" {
		c.errorf(at(), "%s: name is required", field)
	}
	switch svc.Kind {
	case registry.KindApplication, registry.KindDubboInterface, registry.KindDubboApplication:
	default:
		c.errorf(at("kind"), "%s: kind %q is not one of application, dubbo-interface, dubbo-application", field, d.Kind)
	}
	if d.Version != "" && svc.Kind != registry.KindDubboInterface {
		c.errorf(at("version"), "%s: version applies only to kind dubbo-interface", field)
	}
	if len(d.Aliases) > 0 && svc.Kind != registry.KindDubboApplication {
		c.errorf(at("aliases"), "%s: aliases apply only to kind dubbo-application", field)
	}
	if first, dup := c.seen[svc.Key()]; dup && d.Name != "" {
		c.errorf(at(), "%s: the same service (%s) is already defined at line %d", field, svc.Key(), first)
	} else {
		c.seen[svc.Key()] = at()
	}

	svc.Ports = c.ports(d, field, at)
	declared := make(map[string]bool, len(svc.Ports))
	for _, p := range svc.Ports {
		declared[p.Name] = true
	}
	ids := map[string]int{}
	for j := range d.Instances {
		in, ok := c.instance(d, j, field, svc.Ports, declared, at)
		if !ok {
			continue
		}
		if first, dup := ids[in.ID]; dup {
			c.errorf(at("instances", j), "%s: instance id %q is already used at line %d", field, in.ID, first)
			continue
		}
		ids[in.ID] = at("instances", j)
		svc.Instances = append(svc.Instances, in)
	}
	if len(c.errs)+c.omitted > before {
		return nil
	}
	// The checks above should cover the model's own; this keeps the two from drifting apart.
	if err := svc.Validate(); err != nil {
		c.errorf(at(), "%v", err)
		return nil
	}
	svc.SortInstances()
	return svc
}

// ports returns the service's declared ports, or infers the single port of the shorthand: a
// service without a ports list whose instances all use one port named after its protocol.
func (c *checker) ports(d *serviceDoc, field string, at func(...any) int) []registry.Port {
	if len(d.Ports) > 0 {
		ports := make([]registry.Port, 0, len(d.Ports))
		lines := map[string]int{}
		for j, p := range d.Ports {
			switch {
			case p.Name == "":
				c.errorf(at("ports", j), "%s: ports[%d]: name is required", field, j)
			case lines[p.Name] != 0:
				c.errorf(at("ports", j), "%s: port name %q is already used at line %d", field, p.Name, lines[p.Name])
			case p.Protocol == "":
				c.errorf(at("ports", j), "%s: port %q: protocol is required (dubbo, tri, grpc, http, https, tcp)", field, p.Name)
			case !knownProtocol(p.Protocol):
				c.errorf(at("ports", j, "protocol"), "%s: port %q: protocol %q is not one of dubbo, tri, grpc, http, https, tcp", field, p.Name, p.Protocol)
			}
			lines[p.Name] = at("ports", j)
			ports = append(ports, registry.Port{Name: p.Name, Protocol: p.Protocol})
		}
		return ports
	}
	used := map[string]bool{}
	for _, in := range d.Instances {
		for name := range in.Ports {
			used[name] = true
		}
	}
	switch len(used) {
	case 0:
		return nil
	case 1:
		for name := range used {
			if !knownProtocol(registry.Protocol(name)) {
				c.errorf(at(), "%s: declare its ports: the instances' port %q is not a protocol name (dubbo, tri, grpc, http, https, tcp), so its protocol cannot be inferred", field, name)
				return nil
			}
			return []registry.Port{{Name: name, Protocol: registry.Protocol(name)}}
		}
	}
	c.errorf(at(), "%s: declare its ports: the instances use %d port names, and only a single port can be inferred", field, len(used))
	return nil
}

func (c *checker) instance(d *serviceDoc, j int, field string, ports []registry.Port, declared map[string]bool, at func(...any) int) (registry.Instance, bool) {
	doc := &d.Instances[j]
	before := len(c.errs) + c.omitted
	where := fmt.Sprintf("%s: instances[%d]", field, j)
	if doc.Address == "" {
		c.errorf(at("instances", j), "%s: address is required", where)
	} else if err := registry.CheckAddress(doc.Address); err != nil {
		// Istio's rule, shared by every adapter: an address it would drop fails the file here,
		// with its line, instead of vanishing from the ServiceEntry.
		c.errorf(at("instances", j, "address"), "%s: address: %v", where, err)
	}
	names := make([]string, 0, len(doc.Ports))
	for name := range doc.Ports {
		names = append(names, name)
	}
	sort.Strings(names) // report in a stable order
	for _, name := range names {
		n := doc.Ports[name]
		if !declared[name] {
			c.errorf(at("instances", j, "ports", name), "%s: port %q is not declared by the service", where, name)
		} else if n == 0 || n > 65535 {
			c.errorf(at("instances", j, "ports", name), "%s: port %q: number %d is out of range 1-65535", where, name, n)
		}
	}
	if len(c.errs)+c.omitted > before {
		return registry.Instance{}, false
	}
	in := registry.Instance{
		ID:       doc.ID,
		Address:  doc.Address,
		Ports:    doc.Ports,
		Labels:   doc.Labels,
		Weight:   DefaultWeight,
		Healthy:  true,
		Enabled:  true,
		Locality: registry.Locality(doc.Locality),
	}
	if doc.Weight != nil {
		in.Weight = *doc.Weight
	}
	if doc.Healthy != nil {
		in.Healthy = *doc.Healthy
	}
	if doc.Enabled != nil {
		in.Enabled = *doc.Enabled
	}
	if in.ID == "" {
		in.ID = defaultID(in.Address, ports, in.Ports)
	}
	return in, true
}

// defaultID is "address:port" for the common single-port instance, "address:p1,p2" (in the
// service's port order) otherwise, and the bare address for an instance without ports.
func defaultID(addr string, ports []registry.Port, nums map[string]uint32) string {
	var parts []string
	for _, p := range ports {
		if n, ok := nums[p.Name]; ok {
			parts = append(parts, strconv.FormatUint(uint64(n), 10))
		}
	}
	if len(parts) == 0 {
		return addr
	}
	return net.JoinHostPort(addr, strings.Join(parts, ","))
}
