package istio

// Problem is one broken rule of a resource, the one vocabulary of every validator here: where
// (Path, the offending field in YAML form, "ports[1].name"; empty where Detail names the field
// itself), why (Reason, a short low-cardinality code for metrics) and what (Detail, for people).
// As an error it reads "<path>: <detail>".
type Problem struct {
	Path   string
	Reason string
	Detail string
}

func (p *Problem) Error() string {
	if p.Path == "" {
		return p.Detail
	}
	return p.Path + ": " + p.Detail
}

// Reasons of the validation rules (Problem.Reason, and so Invalid.Reason of what they refuse).
const (
	ReasonInvalidName      = "invalid-name"
	ReasonInvalidNamespace = "invalid-namespace"
	ReasonInvalidHost      = "invalid-host"
	ReasonInvalidAddress   = "invalid-address"
	ReasonInvalidPortName  = "invalid-port-name"
	ReasonInvalidProtocol  = "invalid-protocol"
	ReasonInvalidPort      = "invalid-port"
	ReasonDuplicatePort    = "duplicate-port"
	ReasonUndeclaredPort   = "undeclared-endpoint-port"
	ReasonInvalidLabel     = "invalid-label"
	ReasonInvalidSelector  = "invalid-selector"
	ReasonMultipleHostsTCP = "multiple-hosts-tcp"
	ReasonInvalidSpec      = "invalid-spec"
)

// Invalid is a resource a producer did not emit, because Istiod would drop it or because another
// producer emits one of the same name.
type Invalid struct {
	Collection, Namespace, Name string
	Source                      string
	// Reason is a short, low-cardinality code for metrics ("invalid-host", "duplicate-host", ...).
	Reason string
	// Detail says precisely what is wrong.
	Detail string
}

// Warning is something emitted but adjusted: a label dropped, a port moved, a service that fell
// back to inline endpoints. Reason and Detail are as in Invalid.
type Warning struct {
	Collection, Namespace, Name string
	Source                      string
	Reason                      string
	Detail                      string
}
