// Package translate turns the registry-neutral model (registry.Service) into Istio resources:
// ServiceEntries, and WorkloadEntries in workloadEntry mode (docs/registries.md). It is pure: no
// I/O, no goroutines, no clocks. A Translator holds caches and the VIP table, nothing else.
//
// # Incremental by pointer
//
// Translate is called on every push with the full service list. The merge layer never mutates a
// *registry.Service it has handed out and gives a changed service a new pointer, so everything
// derived from one service alone (hosts, ports, endpoints with sanitised labels, each endpoint
// validated and encoded once) is cached by pointer. A service is rendered again only when its
// pointer changes or its context does: the decisions that involve other services (context.go).
// The outputs are kept sorted incrementally (sorted.go). A push after one instance changed costs
// the render of that one service plus linear bookkeeping over pointers (BenchmarkTranslateOneChange).
//
// # Naming
//
// Hosts come from per-registry templates over sanitised fields (options.go). Host identity is the
// lower-cased host: when two services want one host, a service whose primary host it is beats a
// Dubbo 3 application that has it as an alias, and among equals the first by "<registry>/<key>"
// wins; the loser is reported (duplicate-host, or a warning for an alias). A ServiceEntry is named
// after its host; a WorkloadEntry "<ServiceEntry name>.<instance id as a DNS label>".
//
// Aliases: Istio rejects a ServiceEntry with several hosts and a TCP port (there is nothing to tell
// the hosts apart by), so a Dubbo 3 application with a dubbo port gets one extra ServiceEntry per
// alias host, each with its own VIP and the same endpoints or selector; an application with only
// HTTP-family ports (Triple, gRPC, HTTP) carries its aliases as extra hosts of its own ServiceEntry.
//
// # Endpoints and resolution
//
// Only instances that are healthy, enabled and of weight > 0 become endpoints (each filter can be
// turned off). STATIC resolution needs IP addresses: a service whose endpoints are all host names
// resolves by DNS instead; when names and IPs are mixed, the names are dropped with a warning.
// Service ports are fixed per protocol by configuration (dubbo 20880, tri 50051 by default) or are
// the number most instances use; every endpoint carries its own numbers by port name.
//
// # Validation
//
// Istiod drops invalid resources silently and ACKs anyway, so every resource is checked against
// Istio's rules for the fields we emit (package istio: ValidateMeta, ValidateServiceEntryHead,
// ValidateWorkloadEntry); what fails is not emitted and is listed in Output.Invalid with the
// reason code of the rule. Adjustments that still let a resource out (a label dropped, a port
// moved, an endpoint left out) are listed in Output.Warnings. The resource type, the collections
// and the content-hash version are package istio's too: translate only maps the registry model to
// Istio (hosts, names, ports, VIPs, labels, endpoints).
package translate
