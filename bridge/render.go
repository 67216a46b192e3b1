package bridge

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// RenderOptions control Render.
type RenderOptions struct {
	// Format is "yaml" (documents separated by ---) or "json" (a Kubernetes List).
	Format string
	// Versions adds each resource's content-hash version as metadata.resourceVersion.
	Versions bool
	// Kind keeps only resources of this Istio kind ("ServiceEntry"); "" keeps all.
	Kind string
}

// Render writes resources as Kubernetes-style Istio objects (apiVersion, kind, metadata, spec),
// the form operators know from kubectl, so the output can be read, diffed or applied to a cluster.
func Render(w io.Writer, resources []*istio.Resource, opts RenderOptions) error {
	items := make([]map[string]any, 0, len(resources))
	for _, r := range resources {
		kind := collectionKind(r.Collection)
		if opts.Kind != "" && !strings.EqualFold(opts.Kind, kind) {
			continue
		}
		obj, err := object(r, opts.Versions)
		if err != nil {
			return err
		}
		items = append(items, obj)
	}
	switch opts.Format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	case "yaml", "":
		for i, obj := range items {
			b, err := yaml.Marshal(obj)
			if err != nil {
				return err
			}
			if i > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown output format %q: use yaml or json", opts.Format)
}

func object(r *istio.Resource, withVersion bool) (map[string]any, error) {
	spec, err := r.DecodeSpec()
	if err != nil {
		return nil, fmt.Errorf("rendering: %w", err)
	}
	specJSON, err := protojson.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("rendering %s %s/%s: %w", r.Collection, r.Namespace, r.Name, err)
	}
	var specMap map[string]any
	if err := json.Unmarshal(specJSON, &specMap); err != nil {
		return nil, err
	}
	meta := map[string]any{"name": r.Name, "namespace": r.Namespace}
	if len(r.Labels) > 0 {
		meta["labels"] = r.Labels
	}
	if len(r.Annotations) > 0 {
		meta["annotations"] = r.Annotations
	}
	if withVersion {
		meta["resourceVersion"] = r.Version
	}
	group, _, _ := strings.Cut(r.Collection, "/")
	return map[string]any{
		"apiVersion": group + "/v1",
		"kind":       collectionKind(r.Collection),
		"metadata":   meta,
		"spec":       specMap,
	}, nil
}

// AllResources returns the output's resources followed by the static ones, in a stable order.
func AllResources(out *translate.Output, static []*istio.Resource) []*istio.Resource {
	var all []*istio.Resource
	if out != nil {
		for _, coll := range slices.Sorted(maps.Keys(out.Resources)) {
			all = append(all, out.Resources[coll]...)
		}
	}
	return append(all, static...)
}
