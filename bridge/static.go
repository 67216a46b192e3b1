package bridge

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"

	yamlv3 "gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/translate"
)

// staticKinds are the Istio kinds a static resource file may hold, by "group/Kind" collection,
// with the spec proto each one decodes into. Istiod reads every version of a kind into the same
// proto, so the file may use v1, v1beta1 or v1alpha3.
var staticKinds = map[string]func() proto.Message{
	"networking.istio.io/VirtualService":    func() proto.Message { return &networking.VirtualService{} },
	"networking.istio.io/DestinationRule":   func() proto.Message { return &networking.DestinationRule{} },
	"networking.istio.io/ServiceEntry":      func() proto.Message { return &networking.ServiceEntry{} },
	"networking.istio.io/WorkloadEntry":     func() proto.Message { return &networking.WorkloadEntry{} },
	"networking.istio.io/WorkloadGroup":     func() proto.Message { return &networking.WorkloadGroup{} },
	"networking.istio.io/Sidecar":           func() proto.Message { return &networking.Sidecar{} },
	"networking.istio.io/Gateway":           func() proto.Message { return &networking.Gateway{} },
	"networking.istio.io/EnvoyFilter":       func() proto.Message { return &networking.EnvoyFilter{} },
	"security.istio.io/AuthorizationPolicy": func() proto.Message { return &security.AuthorizationPolicy{} },
	"security.istio.io/PeerAuthentication":  func() proto.Message { return &security.PeerAuthentication{} },
	"security.istio.io/RequestAuthentication": func() proto.Message {
		return &security.RequestAuthentication{}
	},
}

// LoadStatic reads Istio resources from Kubernetes-style YAML files (several documents per file
// allowed). Every error names the file and the document's line; one bad document fails the load,
// so a typo never silently serves a partial policy.
func LoadStatic(paths []string) ([]*translate.Resource, error) {
	var out []*translate.Resource
	seen := make(map[string]string)
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("static resources: %w", err)
		}
		rs, err := parseStatic(b)
		if err != nil {
			return nil, fmt.Errorf("static resources %s: %w", path, err)
		}
		for _, r := range rs {
			id := r.Collection + " " + r.Namespace + "/" + r.Name
			if prev, dup := seen[id]; dup {
				return nil, fmt.Errorf("static resources %s: %s %s/%s is also defined in %s", path, collectionKind(r.Collection), r.Namespace, r.Name, prev)
			}
			seen[id] = path
			out = append(out, r)
		}
	}
	// The MCP server takes each collection fastest when it arrives sorted by namespace/name.
	slices.SortFunc(out, func(a, b *translate.Resource) int {
		return cmp.Or(cmp.Compare(a.Collection, b.Collection), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

type staticObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

func parseStatic(b []byte) ([]*translate.Resource, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	var out []*translate.Resource
	for {
		var node yamlv3.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
		if len(node.Content) == 0 || (node.Content[0].Kind == yamlv3.ScalarNode && node.Content[0].Value == "") {
			continue // an empty document between '---' separators
		}
		line := node.Content[0].Line
		r, err := decodeStatic(&node)
		if err != nil {
			return nil, fmt.Errorf("document at line %d: %w", line, err)
		}
		out = append(out, r)
	}
}

func decodeStatic(node *yamlv3.Node) (*translate.Resource, error) {
	raw, err := yamlv3.Marshal(node)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, err
	}
	var obj staticObject
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, fmt.Errorf("not a Kubernetes-style object: %w", err)
	}
	group, _, _ := strings.Cut(obj.APIVersion, "/")
	coll := group + "/" + obj.Kind
	newSpec, ok := staticKinds[coll]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q is not an Istio kind the bridge can serve", obj.APIVersion, obj.Kind)
	}
	if obj.Metadata.Name == "" || obj.Metadata.Namespace == "" {
		return nil, fmt.Errorf("%s: metadata.name and metadata.namespace are required", obj.Kind)
	}
	spec := newSpec()
	if len(obj.Spec) > 0 {
		if err := protojson.Unmarshal(obj.Spec, spec); err != nil {
			return nil, fmt.Errorf("%s %s/%s: spec: %w", obj.Kind, obj.Metadata.Namespace, obj.Metadata.Name, err)
		}
	}
	r, err := translate.NewResource(coll, obj.Metadata.Namespace, obj.Metadata.Name, obj.Metadata.Labels, obj.Metadata.Annotations, spec)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", obj.Kind, obj.Metadata.Namespace, obj.Metadata.Name, err)
	}
	r.Source = "static"
	return r, nil
}
