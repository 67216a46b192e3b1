// Package wire holds the JSON messages between the traffic package and the xdsclient process it
// runs, so both sides agree on them.
package wire

// CountPath is the xdsclient HTTP endpoint that runs a batch of RPCs.
const CountPath = "/count"

// CountRequest asks the client to send N unary RPCs to Target.
type CountRequest struct {
	// Target is an xds:///host:port URI (the port is required: Istio names listeners host:port).
	Target string `json:"target"`
	N      int    `json:"n"`
	// Metadata is sent as gRPC request headers, for header-matching routes.
	Metadata map[string]string `json:"metadata,omitempty"`
	// TimeoutMillis bounds each RPC (default 1000).
	TimeoutMillis int `json:"timeoutMillis,omitempty"`
	// WaitForReady makes RPCs wait for a usable backend instead of failing fast.
	WaitForReady bool `json:"waitForReady,omitempty"`
	// Method is the full method path to call ("/<service>/<method>", e.g. a Dubbo Triple path);
	// empty: grpc.testing.TestService/UnaryCall. Backends answer any method alike.
	Method string `json:"method,omitempty"`
}

// CountResponse reports which backend answered each RPC.
type CountResponse struct {
	// Counts is RPCs answered, by the answering backend's ID.
	Counts map[string]int `json:"counts"`
	// Errors is RPCs failed, by error text.
	Errors map[string]int `json:"errors"`
	// ElapsedMillis is the time the batch took.
	ElapsedMillis float64 `json:"elapsedMillis"`
	// Error is set when the batch could not run at all (e.g. the target is not a valid URI).
	Error string `json:"error,omitempty"`
}
