// Package registry defines the registry-neutral model every adapter emits and the small interface
// adapters implement. One package per registry lives below it (file, zookeeper, nacos, ...); none of
// them knows about Istio. The merge layer consumes what they send; translate turns it into Istio
// resources.
//
// The contract, in the spirit of Prometheus' discovery packages:
//
//   - An Adapter runs under a context until it is cancelled.
//   - It first sends the full state of its services with Sink.Replace, once it has read them all.
//   - Then it sends changes: Sink.Upsert with each changed service whole (all its instances), and
//     Sink.Delete for services that were really deregistered.
//   - When it loses its registry (error, disconnect, lost session) it calls Sink.Fail and keeps
//     trying; the merge layer then holds the last-known state. The next Sink.Replace ends the failure.
//
// A service that is still registered but has no instances is sent with Upsert and an empty
// instance list, not with Delete: both propagate, but only the former keeps the service's host.
//
// Governance rules (governance.go: Dubbo tag and condition routers, configurators, mesh rules)
// follow the same contract on their own methods, for adapters whose registry holds them:
//
//   - Sink.ReplaceRules sends every rule the registry holds, after each full read (the first and
//     every resync or reconnect), beside the Replace of services; an adapter that reads no rules
//     never calls it. Sink.UpsertRules sends changed rules, each whole; Sink.DeleteRules rules
//     that were really removed from the registry.
//   - A rule that cannot be parsed is reported with Sink.Reject (reason "bad-rule") and not sent:
//     the last good version of it stays where it was, neither replaced nor deleted, until a good
//     version arrives or the rule is removed. A Fail covers rules too: the merge layer holds
//     the last-known rules of a failed registry exactly as it holds its services.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind says what a service is, so translate can name it (docs/registries.md#hosts) and so services from
// different registries that are the same logical service get the same identity.
type Kind string

const (
	// KindApplication is a plain application service: a Spring Cloud service in Nacos, an Eureka
	// application, a Consul service, a Spring Cloud Zookeeper service.
	KindApplication Kind = "application"
	// KindDubboInterface is a Dubbo 2 interface-level service: one per interface + group + version.
	KindDubboInterface Kind = "dubbo-interface"
	// KindDubboApplication is a Dubbo 3 application-level service.
	KindDubboApplication Kind = "dubbo-application"
)

// Protocol is what a port speaks, as the registry says it.
type Protocol string

const (
	ProtocolDubbo  Protocol = "dubbo" // Dubbo's binary protocol over TCP
	ProtocolTriple Protocol = "tri"   // Dubbo 3 Triple: gRPC-compatible HTTP/2
	ProtocolGRPC   Protocol = "grpc"
	ProtocolHTTP   Protocol = "http"
	ProtocolHTTPS  Protocol = "https"
	ProtocolTCP    Protocol = "tcp" // anything else that is plain TCP
)

// Protocols returns every valid Protocol.
func Protocols() []Protocol {
	return []Protocol{ProtocolDubbo, ProtocolTriple, ProtocolGRPC, ProtocolHTTP, ProtocolHTTPS, ProtocolTCP}
}

// Valid reports whether p is one of Protocols.
func (p Protocol) Valid() bool { return slices.Contains(Protocols(), p) }

// Port is one port a service exposes. Name is unique within the service and is how instances
// give their own number for it; by convention it equals the protocol for a service's main port of
// that protocol ("dubbo", "tri", "http") and is something else ("management") for extra ports.
type Port struct {
	Name     string   `json:"name" yaml:"name"`
	Protocol Protocol `json:"protocol" yaml:"protocol"`
}

// VolatileLabelKeys are instance metadata keys whose values change on every restart of an
// unchanged instance (Dubbo's pid and registration timestamps, the Dubbo 3 metadata revision).
// Whatever registry they come from they are never emitted: each would rewrite every endpoint on
// every restart. Adapters drop them when they build labels, and translate drops them by default.
func VolatileLabelKeys() []string {
	return []string{"timestamp", "pid", "remote.timestamp", "dubbo.metadata.revision"}
}

// Locality is where an instance runs, as Istio understands it.
type Locality struct {
	Region  string `json:"region,omitempty" yaml:"region,omitempty"`
	Zone    string `json:"zone,omitempty" yaml:"zone,omitempty"`
	Subzone string `json:"subzone,omitempty" yaml:"subzone,omitempty"`
}

// IsZero reports whether no part of the locality is known.
func (l Locality) IsZero() bool { return l == Locality{} }

// String renders the locality as Istio does: region/zone/subzone, trailing empty parts omitted.
func (l Locality) String() string {
	parts := []string{l.Region, l.Zone, l.Subzone}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "/")
}

// Instance is one running copy of a service.
type Instance struct {
	// ID identifies the instance within its service and registry, stably across updates
	// (Eureka instanceId, Nacos ip#port#cluster, "ip:port" otherwise).
	ID string `json:"id" yaml:"id"`
	// Address is an IP address (v4 or v6, without brackets or zone) or a DNS name, as
	// CheckAddress accepts it.
	Address string `json:"address" yaml:"address"`
	// Ports maps a service Port.Name to the number this instance listens on for it. A service port
	// the instance does not serve is absent.
	Ports map[string]uint32 `json:"ports" yaml:"ports"`
	// Labels are the registry's metadata as it gave it; translate sanitises them for Istio.
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Weight is relative to the other instances of the service; 0 means it takes no traffic.
	// Adapters map their registry's notion (Nacos float weights, Dubbo's default 100) onto this.
	Weight uint32 `json:"weight" yaml:"weight"`
	// Healthy is the registry's health verdict (Nacos healthy, Eureka UP, Consul passing).
	Healthy bool `json:"healthy" yaml:"healthy"`
	// Enabled is false where the registry or an operator disabled the instance (Nacos enabled=false,
	// Dubbo disabled=true, Eureka OUT_OF_SERVICE).
	Enabled  bool     `json:"enabled" yaml:"enabled"`
	Locality Locality `json:"locality,omitzero" yaml:"locality,omitempty"`
}

// Key identifies a service within one registry.
type Key struct {
	Kind      Kind   `json:"kind" yaml:"kind"`
	Namespace string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Group     string `json:"group,omitempty" yaml:"group,omitempty"`
	Name      string `json:"name" yaml:"name"`
	Version   string `json:"version,omitempty" yaml:"version,omitempty"`
}

// String renders the key for logs and status pages: kind:namespace/group/name:version.
func (k Key) String() string {
	var b strings.Builder
	b.WriteString(string(k.Kind))
	b.WriteByte(':')
	if k.Namespace != "" {
		b.WriteString(k.Namespace)
		b.WriteByte('/')
	}
	if k.Group != "" {
		b.WriteString(k.Group)
		b.WriteByte('/')
	}
	b.WriteString(k.Name)
	if k.Version != "" {
		b.WriteByte(':')
		b.WriteString(k.Version)
	}
	return b.String()
}

// Service is one logical service and all its instances, as one registry reports it.
type Service struct {
	// Registry is the configured name of the registry that reported the service. Adapters may leave
	// it empty; the merge layer sets it from the sink the service arrived on.
	Registry string `json:"registry" yaml:"registry"`
	Kind     Kind   `json:"kind" yaml:"kind"`
	// Namespace is the registry's own namespace (Nacos namespace id, Consul datacenter), if any.
	Namespace string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	// Group is the Nacos group or the Dubbo group.
	Group string `json:"group,omitempty" yaml:"group,omitempty"`
	// Name is the service, application or interface name exactly as the registry has it.
	Name string `json:"name" yaml:"name"`
	// Version is the Dubbo interface version; empty elsewhere.
	Version string `json:"version,omitempty" yaml:"version,omitempty"`
	// Ports are the ports the service exposes; order is not significant.
	Ports []Port `json:"ports" yaml:"ports"`
	// Labels describe the service itself (application, Dubbo group and version, ...).
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Aliases are Dubbo interface names served by this service: for a Dubbo 3 application, the
	// interfaces that /dubbo/mapping or the Nacos mapping config map to it. Translate gives each
	// the host a dubbo-interface service of that name (no group, no version) would get, as extra
	// hosts of the same ServiceEntry, unless a real dubbo-interface service already owns that host.
	Aliases []string `json:"aliases,omitempty" yaml:"aliases,omitempty"`
	// Consumers names the applications that consume this service, where the registry records it
	// (Dubbo consumers/ nodes); the rules engine scopes Sidecar egress with it.
	Consumers []string   `json:"consumers,omitempty" yaml:"consumers,omitempty"`
	Instances []Instance `json:"instances" yaml:"instances"`
}

// Key returns the service's identity within its registry.
func (s *Service) Key() Key {
	return Key{Kind: s.Kind, Namespace: s.Namespace, Group: s.Group, Name: s.Name, Version: s.Version}
}

// Port returns the service port with the given name.
func (s *Service) Port(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// Clone returns a deep copy, so a receiver may keep a service while the sender reuses its own.
func (s *Service) Clone() *Service {
	c := *s
	c.Ports = append([]Port(nil), s.Ports...)
	c.Labels = maps.Clone(s.Labels)
	c.Aliases = append([]string(nil), s.Aliases...)
	c.Consumers = append([]string(nil), s.Consumers...)
	c.Instances = make([]Instance, len(s.Instances))
	for i, in := range s.Instances {
		in.Ports = maps.Clone(in.Ports)
		in.Labels = maps.Clone(in.Labels)
		c.Instances[i] = in
	}
	return &c
}

// Validate reports what makes a service unusable as a whole. Adapters call it before sending and
// report a failure as a malformed entry instead of sending the service. An instance whose address
// fails CheckAddress fails the whole service here, so adapters check addresses per instance first
// and reject just that instance (Sink.Reject); this is the backstop that keeps a bad address from
// ever reaching translate, which would drop the endpoint.
func (s *Service) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("service has no name")
	}
	switch s.Kind {
	case KindApplication, KindDubboInterface, KindDubboApplication:
	default:
		return fmt.Errorf("service %q: unknown kind %q", s.Name, s.Kind)
	}
	seen := make(map[string]bool, len(s.Ports))
	for _, p := range s.Ports {
		if p.Name == "" {
			return fmt.Errorf("service %q: a port has no name", s.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("service %q: port name %q is used twice", s.Name, p.Name)
		}
		seen[p.Name] = true
	}
	for _, in := range s.Instances {
		if in.Address == "" {
			return fmt.Errorf("service %q: instance %q has no address", s.Name, in.ID)
		}
		if err := CheckAddress(in.Address); err != nil {
			return fmt.Errorf("service %q: instance %q: address %w", s.Name, in.ID, err)
		}
		for name, n := range in.Ports {
			if !seen[name] {
				return fmt.Errorf("service %q: instance %q has port %q that the service does not declare", s.Name, in.ID, name)
			}
			if n == 0 || n > 65535 {
				return fmt.Errorf("service %q: instance %q: port %q number %d is out of range 1-65535", s.Name, in.ID, name, n)
			}
		}
	}
	return nil
}

// SortInstances orders instances by ID, so equal content compares and hashes equal.
func (s *Service) SortInstances() {
	sort.Slice(s.Instances, func(i, j int) bool { return s.Instances[i].ID < s.Instances[j].ID })
}

// Sink receives what an adapter sees. Implementations are safe for concurrent use, never block for
// long, and take ownership of the services passed in: an adapter must not modify them afterwards.
type Sink interface {
	// Replace sends the registry's full state: every service it has now. Services the sink holds
	// that are missing here were deregistered. It marks the registry synced and ends any failure.
	Replace(services []*Service)
	// Upsert sends services that were added or changed, each whole.
	Upsert(services []*Service)
	// Delete sends services that were really deregistered.
	Delete(keys []Key)
	// Fail says the registry cannot be read right now (unreachable, session lost, bad credentials).
	// The sink keeps the last-known state until the next Replace.
	Fail(err error)
	// Reject reports an entry the adapter could not use (a malformed URL, a bad payload). where
	// names the entry (a znode path, a service name) without credentials; reason is a short,
	// low-cardinality category for metrics ("bad-url", "unknown-protocol", "bad-payload"); err says
	// precisely what is wrong. It is counted, logged and shown on the status page; the adapter goes
	// on with the rest. A later Upsert, Replace or Delete of the same entry does not clear it: call
	// Accept(where) when the entry becomes good or goes away.
	Reject(where, reason string, err error)
	// Accept withdraws an earlier Reject of the entry at where.
	Accept(where string)

	// ReplaceRules sends every governance rule the registry holds now; rules the sink holds that
	// are missing here were removed. Unlike Replace it neither marks the registry synced nor
	// ends a failure: the Replace of services does.
	ReplaceRules(rules []*Rule)
	// UpsertRules sends rules that were added or changed, each whole.
	UpsertRules(rules []*Rule)
	// DeleteRules sends rules that were really removed from the registry.
	DeleteRules(keys []RuleKey)
}

// AddTLSFiles adds a registry client's TLS files (key material it loads) to a Secrets map as
// secret files "tls.caFile", "tls.certFile" and "tls.keyFile", so that `mcp-bridge validate`
// checks them like the other credentials. Unset files are left out.
func AddTLSFiles(secrets map[string]Secret, caFile, certFile, keyFile string) {
	for key, f := range map[string]string{"tls.caFile": caFile, "tls.certFile": certFile, "tls.keyFile": keyFile} {
		if f != "" {
			secrets[key] = Secret{File: f}
		}
	}
}

// Adapter watches one registry.
type Adapter interface {
	// Run watches the registry and reports to sink until ctx is cancelled. It returns nil on
	// cancellation; an error only for a problem retrying cannot mend (such as a bad configuration).
	Run(ctx context.Context, sink Sink) error
}

// Describer is implemented by adapters that have more to say on the status page than the sink
// sees (session age, znodes watched, subscriptions). The result must be JSON-encodable and must
// never contain credentials.
type Describer interface {
	Describe() map[string]any
}

// Options are what every adapter constructor receives besides its own configuration.
type Options struct {
	// Name is the registry's configured name; it labels logs, metrics and the status page.
	Name string
	// Logger already carries the registry name.
	Logger *slog.Logger
	// Metrics is where the adapter registers its own collectors; it is already wrapped with a
	// constant "registry" label, so collectors must not declare that label themselves.
	Metrics prometheus.Registerer
}
