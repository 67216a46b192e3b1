// Package istio is what the bridge knows of Istio resources, whoever produces them (translate,
// static files, the rules engine): the Resource type with its deterministic body and content-hash
// Version; the one table of kinds, collections and type URLs by Istio version (kinds.go), which
// the mcp server, translate and static loading all read; and validation as data, mirroring
// Istio's pkg/config/validation so that nothing Istiod would silently drop is ever emitted.
//
// Every rule reports a Problem (field path, reason code, detail): translate counts Invalid by the
// reason, static loading prints the path and detail. It knows nothing of registries, of the merge
// layer or of MCP.
package istio
