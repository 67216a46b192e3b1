package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// runRender reads every registry once, translates, prints the resources Istiod would receive,
// and fails when anything would be lost on the way (a resource dropped as invalid, an endpoint
// left out of its ServiceEntry, an entry a registry adapter rejected) or a registry could not be
// read, so it can gate a change in CI ("would this registry content reach the mesh intact?").
func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	format := fs.String("format", "yaml", "output format: yaml or json")
	kind := fs.String("kind", "", "print only this Istio kind (e.g. ServiceEntry)")
	versions := fs.Bool("versions", false, "include each resource's content-hash version as metadata.resourceVersion")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for every registry's first sync")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "yaml" && *format != "json" {
		fmt.Fprintf(stderr, "mcp-bridge render: --format %q: use yaml or json\n", *format)
		return errUsage
	}
	if *kind != "" {
		k, err := istio.CheckKind(*kind)
		if err != nil {
			fmt.Fprintf(stderr, "mcp-bridge render: --kind: %v\n", err)
			return errUsage
		}
		*kind = k
	}
	rendered, err := common.render(ctx, *timeout, stderr)
	if err != nil {
		return err
	}
	out := rendered.Output
	if err := bridge.Render(stdout, rendered.Resources(), bridge.RenderOptions{Format: *format, Kind: *kind, Versions: *versions}); err != nil {
		return err
	}

	var problems []string
	for _, s := range rendered.Registries {
		if !s.Synced {
			problems = append(problems, fmt.Sprintf("registry %q was not read: %s", s.Name, s.LastError))
		}
		// An entry the adapter rejected (an address Istio would drop, a malformed URL) never
		// reaches the mesh either.
		for _, r := range s.Rejected {
			problems = append(problems, fmt.Sprintf("registry %q rejected %s: %s: %s", s.Name, r.Where, r.Reason, r.Error))
		}
		if n := s.RejectedTotal - len(s.Rejected); n > 0 {
			problems = append(problems, fmt.Sprintf("registry %q rejected %d more entries (see /debug/registries)", s.Name, n))
		}
	}
	for _, inv := range out.Invalid {
		problems = append(problems, fmt.Sprintf("%s %s/%s (from %s) would be dropped: %s: %s", inv.Collection, inv.Namespace, inv.Name, inv.Source, inv.Reason, inv.Detail))
	}
	for _, w := range out.Warnings {
		if translate.DropsEndpoint(w) {
			problems = append(problems, fmt.Sprintf("%s %s/%s (from %s) would be served without an endpoint: %s: %s", w.Collection, w.Namespace, w.Name, w.Source, w.Reason, w.Detail))
			continue
		}
		fmt.Fprintf(stderr, "warning: %s %s/%s (from %s): %s: %s\n", w.Collection, w.Namespace, w.Name, w.Source, w.Reason, w.Detail)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}
