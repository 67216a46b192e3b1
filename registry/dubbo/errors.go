package dubbo

import (
	"errors"
	"fmt"
)

// Reasons are the short, low-cardinality categories of errors this package returns, for
// registry.Sink.Reject and metrics. Reason(err) extracts one.
const (
	ReasonBadEncoding       = "bad-encoding"       // not URL-encoded, not UTF-8
	ReasonBadURL            = "bad-url"            // not a URL at all
	ReasonTooLong           = "too-long"           // longer than MaxURLLength
	ReasonBadHost           = "bad-host"           // address missing or not an IP / host name
	ReasonBadPort           = "bad-port"           // port missing or out of range
	ReasonUnknownProtocol   = "unknown-protocol"   // a scheme the mesh cannot route (hessian, injvm, ...)
	ReasonNoInterface       = "no-interface"       // neither interface parameter nor path
	ReasonBadWeight         = "bad-weight"         // weight not an integer in 0-2^31
	ReasonBadEndpoints      = "bad-endpoints"      // dubbo.endpoints is not the JSON Dubbo writes
	ReasonBadConfigurator   = "bad-configurator"   // a configurators/ URL that is not override:// or absent://
	ReasonInterfaceMismatch = "interface-mismatch" // URL names another interface than its znode
)

// Error is an error with a Reason.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func reasonf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Reason returns the reason of the first *Error in err's chain, or "invalid" when there is none.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "invalid"
}
