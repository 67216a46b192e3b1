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
	"sigs.k8s.io/yaml"

	yamlv3 "gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// staticGroup and staticVersions are what a static resource's apiVersion may be: Istiod reads
// every version of a kind into the same proto, so v1, v1beta1 and v1alpha3 are all fine.
const staticGroup = istio.GroupNetworking

var staticVersions = []string{"v1", "v1beta1", "v1alpha3"}

// LoadStatic reads Istio resources from Kubernetes-style YAML files (several documents per file
// allowed). The kinds are those translate can validate (istio.SpecCollections); every spec
// is validated by Istio's rules (istio.NewResource), because Istiod drops an invalid resource
// silently. Any problem fails the whole load, so a typo never serves a partial policy; the error
// lists every bad document, each with its file, line, kind, namespace/name and all its problems.
func LoadStatic(paths []string) ([]*istio.Resource, error) {
	var out []*istio.Resource
	var errs []error
	seen := make(map[string]string)
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("static resources: %w", err))
			continue
		}
		rs, docErrs := parseStatic(b)
		for _, err := range docErrs {
			errs = append(errs, fmt.Errorf("static resources %s: %w", path, err))
		}
		for _, r := range rs {
			id := r.Collection + " " + r.Namespace + "/" + r.Name
			if prev, dup := seen[id]; dup {
				errs = append(errs, fmt.Errorf("static resources %s: %s %s/%s is also defined in %s", path, collectionKind(r.Collection), r.Namespace, r.Name, prev))
				continue
			}
			seen[id] = path
			out = append(out, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The MCP server takes each collection fastest when it arrives sorted by namespace/name.
	slices.SortFunc(out, func(a, b *istio.Resource) int {
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

// parseStatic decodes every document of a file: the resources of the good ones, and one error
// per bad one. A YAML syntax error ends the file, since nothing after it can be trusted.
func parseStatic(b []byte) ([]*istio.Resource, []error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	var out []*istio.Resource
	var errs []error
	for {
		var node yamlv3.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out, errs
		}
		if err != nil {
			return out, append(errs, fmt.Errorf("not valid YAML: %w", err))
		}
		if len(node.Content) == 0 || (node.Content[0].Kind == yamlv3.ScalarNode && node.Content[0].Value == "") {
			continue // an empty document between '---' separators
		}
		line := node.Content[0].Line
		r, err := decodeStatic(&node)
		if err != nil {
			errs = append(errs, fmt.Errorf("document at line %d: %w", line, err))
			continue
		}
		out = append(out, r)
	}
}

func decodeStatic(node *yamlv3.Node) (*istio.Resource, error) {
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
	group, version, _ := strings.Cut(obj.APIVersion, "/")
	coll := group + "/" + obj.Kind
	spec, ok := istio.NewSpec(coll)
	if !ok || group != staticGroup {
		return nil, fmt.Errorf("apiVersion %q kind %q is not a kind the bridge serves from static files; supported: %s (apiVersion %s/%s)",
			obj.APIVersion, obj.Kind, supportedKinds(), staticGroup, strings.Join(staticVersions, ", "+staticGroup+"/"))
	}
	if !slices.Contains(staticVersions, version) {
		return nil, fmt.Errorf("apiVersion %q: %s has versions %s", obj.APIVersion, obj.Kind, strings.Join(staticVersions, ", "))
	}
	if obj.Metadata.Name == "" || obj.Metadata.Namespace == "" {
		return nil, fmt.Errorf("%s: metadata.name and metadata.namespace are required", obj.Kind)
	}
	if len(obj.Spec) > 0 {
		if err := protojson.Unmarshal(obj.Spec, spec); err != nil {
			return nil, fmt.Errorf("%s %s/%s: spec: %w", obj.Kind, obj.Metadata.Namespace, obj.Metadata.Name, err)
		}
	}
	// The error names the kind, namespace/name and every problem.
	r, err := istio.NewResource(coll, obj.Metadata.Namespace, obj.Metadata.Name, obj.Metadata.Labels, obj.Metadata.Annotations, spec)
	if err != nil {
		return nil, err
	}
	r.Source = sourceStatic
	return r, nil
}

// supportedKinds lists the kinds of istio.SpecCollections, e.g. "DestinationRule, ServiceEntry".
func supportedKinds() string {
	var kinds []string
	for _, c := range istio.SpecCollections() {
		kinds = append(kinds, collectionKind(c))
	}
	return strings.Join(kinds, ", ")
}
