// Package rules is the rules engine: operators declare routing intent once (subsets, canary, tag
// routing, lanes, locality, resilience) for services selected by registry, host, kind and labels,
// and the engine keeps the generated DestinationRules and VirtualServices true to the live
// registry data as instances come and go. It is a resource producer beside translate (producer.go)
// and is pure: no I/O, no goroutines, no clocks (files are read by load.go's callers, watch.go).
// docs/rules.md documents every kind and its semantics.
package rules

import "github.com/mcp-bridge/mcp-bridge/registry"

// APIVersion and Kind of a rule document in a rule file.
const (
	APIVersion = "rules.mcp-bridge.io/v1alpha1"
	KindRule   = "TrafficRule"
)

// Rule is one declared rule: a name, where it was declared, and what it asks for.
type Rule struct {
	Name string
	// Origin is where the rule was declared: "<file>:<line>" or "config rules.inline[i]".
	Origin string
	Spec
}

// Spec is a rule's body. Each policy section (Subsets ... Resilience) is optional; a service
// gets each section from the highest-precedence rule that selects it and has that section.
type Spec struct {
	// Priority orders conflicting rules: higher wins. Default 0.
	Priority int      `yaml:"priority"`
	Selector Selector `yaml:"selector"`

	Subsets    *Subsets    `yaml:"subsets"`
	Canary     *Canary     `yaml:"canary"`
	TagRouting *TagRouting `yaml:"tagRouting"`
	Lanes      *Lanes      `yaml:"lanes"`
	Locality   *Locality   `yaml:"locality"`
	Resilience *Resilience `yaml:"resilience"`

	// Conditions are request-level routes made from registry governance rules (Dubbo condition
	// routers and mesh rules); Governance says which registry rule a rule was made from and what
	// it selects. Neither can be declared in a rule file: governance.go sets them.
	Conditions *Conditions `yaml:"-"`
	Governance *GovSpec    `yaml:"-"`
}

// Selector chooses services. Every field given must match (AND); within a list any entry matches
// (OR). An empty selector selects every service.
type Selector struct {
	// Registries are registry names from the configuration.
	Registries []string `yaml:"registries"`
	// Hosts are globs over any of the service's Istio hosts: '*' matches any run of characters
	// (dots included), '?' one character.
	Hosts []string `yaml:"hosts"`
	// HostRegex is an RE2 regular expression that must match a whole host.
	HostRegex string `yaml:"hostRegex"`
	// Kinds are registry service kinds: application, dubbo-interface, dubbo-application.
	Kinds []registry.Kind `yaml:"kinds"`
	// Labels must all be present, with these values, among the service's labels.
	Labels map[string]string `yaml:"labels"`
}

// Subsets makes DestinationRule subsets from instance label keys: one per value present plus a
// base subset for instances without the label.
type Subsets struct {
	Labels []string `yaml:"labels"`
}

// Canary splits traffic between a stable and a canary set of instances.
type Canary struct {
	// Stable and Canary select instances by labels (all must match).
	Stable map[string]string `yaml:"stable"`
	Canary map[string]string `yaml:"canary"`
	// Weight is the percentage of unmatched traffic sent to canary, 0-100.
	Weight uint32 `yaml:"weight"`
	// Match sends requests matching any entry to canary (HTTP, gRPC and Triple ports only).
	Match []CanaryMatch `yaml:"match"`
	// MirrorPercent mirrors this percentage of stable traffic to canary (0-100; 0: no mirror).
	MirrorPercent float64 `yaml:"mirrorPercent"`
}

// CanaryMatch is one match: every field given must hold.
type CanaryMatch struct {
	Headers      map[string]StringMatch `yaml:"headers"`
	GRPC         *GRPCMatch             `yaml:"grpc"`
	SourceLabels map[string]string      `yaml:"sourceLabels"`
	// Modulo is "<header> % <divisor> <op> <n>" (op one of < <= > >= ==; divisor a power of ten
	// from 10 to 1000000): true for requests whose header is a non-negative decimal integer with
	// that remainder. Compiled to an equivalent header regex (modulo.go).
	Modulo string `yaml:"modulo"`
}

// StringMatch is exactly one of Exact, Prefix, Regex (RE2, whole value).
type StringMatch struct {
	Exact  string `yaml:"exact"`
	Prefix string `yaml:"prefix"`
	Regex  string `yaml:"regex"`
}

// GRPCMatch matches a gRPC or Triple call: the fully qualified service ("pkg.Service") and,
// optionally, one method.
type GRPCMatch struct {
	Service string `yaml:"service"`
	Method  string `yaml:"method"`
}

// TagRouting is Dubbo's tag router: a request header selects instances labelled with its tag.
type TagRouting struct {
	// Label is the instance label carrying the tag; default "dubbo.tag".
	Label string `yaml:"label"`
	// Header is the request header carrying the tag; default "dubbo-tag" (Dubbo's attachment
	// dubbo.tag arrives under this name over Triple).
	Header string `yaml:"header"`
	// Force fails a tagged request when no live instance carries its tag, instead of falling
	// back to untagged instances.
	Force bool `yaml:"force"`
	// UntaggedToAll sends untagged requests to every instance, tagged or not; default false
	// (untagged requests reach untagged instances only, as Dubbo does).
	UntaggedToAll bool `yaml:"untaggedToAll"`
	// ForceHeader, when set, is a request header that, with the value "true", fails a tagged
	// request whose tag no live instance carries (Dubbo's per-request attachment dubbo.force.tag).
	// Set only on rules made from Dubbo tag rules.
	ForceHeader string `yaml:"-"`
}

// Lanes are full-link gray lanes, discovered from instance labels.
type Lanes struct {
	// Label is the instance label naming the lane; default "lane".
	Label string `yaml:"label"`
	// Header is the request header naming the lane; default "x-lane".
	Header string `yaml:"header"`
	// Mode is "permissive" (default: a service without instances in the lane serves the request
	// from its baseline) or "strict" (it fails the request with HTTP 503 / gRPC UNAVAILABLE).
	Mode string `yaml:"mode"`
}

// Lane modes.
const (
	LaneModePermissive = "permissive"
	LaneModeStrict     = "strict"
)

// Locality is Istio's localityLbSetting; failover needs outlier detection, which the engine adds
// when the rule (or the resilience section) gives none.
type Locality struct {
	Failover         []LocalityFailover   `yaml:"failover"`
	Distribute       []LocalityDistribute `yaml:"distribute"`
	FailoverPriority []string             `yaml:"failoverPriority"`
}

// LocalityFailover sends traffic from region From to region To when From has no healthy endpoint.
type LocalityFailover struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// LocalityDistribute spreads traffic from locality From ("region/zone/*") over To (locality -> weight, summing to 100).
type LocalityDistribute struct {
	From string            `yaml:"from"`
	To   map[string]uint32 `yaml:"to"`
}

// Resilience is per-service timeouts, retries, connection limits, outlier detection and load
// balancing. Durations are Go durations ("1.5s", "250ms").
type Resilience struct {
	Timeout          string            `yaml:"timeout"`
	Retries          *Retries          `yaml:"retries"`
	ConnectionPool   *ConnectionPool   `yaml:"connectionPool"`
	OutlierDetection *OutlierDetection `yaml:"outlierDetection"`
	LoadBalancer     *LoadBalancer     `yaml:"loadBalancer"`
}

// Retries of a route.
type Retries struct {
	Attempts      int32  `yaml:"attempts"`
	PerTryTimeout string `yaml:"perTryTimeout"`
	RetryOn       string `yaml:"retryOn"`
}

// ConnectionPool limits.
type ConnectionPool struct {
	MaxConnections           int32  `yaml:"maxConnections"`
	ConnectTimeout           string `yaml:"connectTimeout"`
	MaxPendingRequests       int32  `yaml:"maxPendingRequests"`
	MaxRequests              int32  `yaml:"maxRequests"`
	MaxRequestsPerConnection int32  `yaml:"maxRequestsPerConnection"`
	MaxRetries               int32  `yaml:"maxRetries"`
}

// OutlierDetection ejects failing endpoints.
type OutlierDetection struct {
	Consecutive5xxErrors uint32 `yaml:"consecutive5xxErrors"`
	Interval             string `yaml:"interval"`
	BaseEjectionTime     string `yaml:"baseEjectionTime"`
	MaxEjectionPercent   int32  `yaml:"maxEjectionPercent"`
}

// LoadBalancer is a simple policy or a consistent hash.
type LoadBalancer struct {
	// Simple is ROUND_ROBIN, LEAST_REQUEST, RANDOM or PASSTHROUGH.
	Simple         string          `yaml:"simple"`
	ConsistentHash *ConsistentHash `yaml:"consistentHash"`
}

// ConsistentHash hashes on one of a header, a cookie or the source IP.
type ConsistentHash struct {
	Header   string `yaml:"header"`
	Cookie   string `yaml:"cookie"`
	SourceIP bool   `yaml:"sourceIP"`
}
