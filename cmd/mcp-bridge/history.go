package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/admin"
	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/history"
)

// adminFlags reach a running bridge's admin listener.
type adminFlags struct {
	addr      string
	tokenFile string
}

func (a *adminFlags) register(fs *flag.FlagSet, usage string) {
	fs.StringVar(&a.addr, "admin", "", usage)
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding admin.token (default: $MCP_BRIDGE_ADMIN_TOKEN when set)")
}

// get fetches path from the admin listener, with the token when there is one.
func (a *adminFlags) get(ctx context.Context, path string) ([]byte, error) {
	base := a.addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--admin %q: %w", a.addr, err)
	}
	token := os.Getenv("MCP_BRIDGE_ADMIN_TOKEN")
	if a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimRight(string(b), "\r\n")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the bridge at %s: %w", a.addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s%s: %w", a.addr, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s%s: %s: %s", a.addr, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// runHistory prints a running bridge's resource history: each version newest first, with its
// time, cause and diff.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs, "admin address of the running bridge (host:port), required")
	kind := fs.String("kind", "", "only this Istio kind (e.g. ServiceEntry)")
	name := fs.String("name", "", "only this resource: name or namespace/name")
	since := fs.String("since", "", "only versions since: a duration back from now (90s, 2h) or an RFC 3339 time")
	limit := fs.Int("limit", 100, "at most this many versions")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if a.addr == "" {
		fmt.Fprintln(stderr, "mcp-bridge history: --admin is required (the running bridge's admin address, e.g. 127.0.0.1:18849)")
		return errUsage
	}
	if _, err := admin.ParseSince(*since, time.Now()); err != nil {
		fmt.Fprintf(stderr, "mcp-bridge history: --%v\n", err)
		return errUsage
	}
	q := url.Values{"format": {"json"}, "limit": {fmt.Sprint(*limit)}}
	for k, v := range map[string]string{"kind": *kind, "name": *name, "since": *since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	body, err := a.get(ctx, "/history?"+q.Encode())
	if err != nil {
		return err
	}
	var page admin.HistoryPage
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("the bridge's /history answer is not the expected JSON: %w", err)
	}
	for _, v := range page.Versions {
		fmt.Fprintf(stdout, "# %s %s %s %s/%s: %s", v.At.Format(time.RFC3339Nano), v.Change, v.Kind, v.Namespace, v.Name, v.CauseText)
		if v.Source != "" {
			fmt.Fprintf(stdout, " (from %s)", v.Source)
		}
		if v.PreviousEvicted {
			fmt.Fprint(stdout, " [previous version no longer kept]")
		}
		fmt.Fprintf(stdout, "\n%s\n", v.Diff)
	}
	if len(page.Versions) == 0 {
		fmt.Fprintln(stderr, "no versions match")
	}
	return nil
}

// runDiff renders two configurations (or one against the running bridge) and prints the
// resource diff, so a configuration change can be reviewed in CI before it ships.
func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var configs multiFlag
	fs.Var(&configs, "config", "configuration file; give it twice (old, then new), or once with --admin")
	var a adminFlags
	a.register(fs, "compare against the running bridge at this admin address (the old side) instead of a second --config")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for every registry's first sync")
	exitCode := fs.Bool("exit-code", false, "exit 1 when the resources differ (like diff(1))")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !(len(configs) == 2 && a.addr == "") && !(len(configs) == 1 && a.addr != "") {
		fmt.Fprintln(stderr, "mcp-bridge diff: give --config OLD --config NEW, or --admin ADDR --config NEW")
		return errUsage
	}
	var old, next map[string]string
	var oldLabel string
	var err error
	if a.addr != "" {
		oldLabel = "running"
		body, err := a.get(ctx, "/debug/resources")
		if err != nil {
			return err
		}
		if old, err = splitResources(body); err != nil {
			return fmt.Errorf("the bridge's /debug/resources: %w", err)
		}
	} else {
		oldLabel = configs[0]
		if old, err = renderConfig(ctx, configs[0], *timeout, stderr); err != nil {
			return err
		}
	}
	newLabel := configs[len(configs)-1]
	if next, err = renderConfig(ctx, newLabel, *timeout, stderr); err != nil {
		return err
	}
	keys := make([]string, 0, len(old)+len(next))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range next {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var created, changed, deleted int
	for _, k := range keys {
		o, n := old[k], next[k]
		if o == n {
			continue
		}
		switch {
		case o == "":
			created++
		case n == "":
			deleted++
		default:
			changed++
		}
		fmt.Fprint(stdout, history.Unified(o, n, oldLabel+": "+k, newLabel+": "+k))
	}
	fmt.Fprintf(stderr, "%d resources: %d created, %d changed, %d deleted\n", len(keys), created, changed, deleted)
	if *exitCode && created+changed+deleted > 0 {
		return errDiffers
	}
	return nil
}

// errDiffers: diff --exit-code found differences (exit status 1, no message).
var errDiffers = fmt.Errorf("resources differ")

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// renderConfig renders a configuration's resources, keyed "Kind namespace/name".
func renderConfig(ctx context.Context, path string, timeout time.Duration, stderr io.Writer) (map[string]string, error) {
	common := commonFlags{configPath: path, logLevel: "warn"}
	rendered, err := common.render(ctx, timeout, stderr)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := bridge.Render(&buf, rendered.Resources(), bridge.RenderOptions{Format: "yaml"}); err != nil {
		return nil, err
	}
	return splitResources(buf.Bytes())
}

// splitResources splits a YAML stream of resources into documents keyed "Kind namespace/name",
// without metadata.resourceVersion (a content hash: the diff shows the content itself).
func splitResources(stream []byte) (map[string]string, error) {
	out := map[string]string{}
	for i, doc := range strings.Split(string(stream), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		lines := strings.Split(strings.TrimSuffix(doc, "\n"), "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "  resourceVersion: ") })
		out[obj.Kind+" "+obj.Metadata.Namespace+"/"+obj.Metadata.Name] = strings.Join(lines, "\n") + "\n"
	}
	return out, nil
}
