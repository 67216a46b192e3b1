package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"
)

// runExplain reads every registry once, as render does, and prints for the service with the
// given host (or "<registry>/<key>" source) which rules matched it, which subsets and routes
// they produced, and why: the same view as /debug/rules?host=<host>.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	format := fs.String("format", "text", "output format: text or json")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for every registry's first sync")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 || (*format != "text" && *format != "json") {
		fmt.Fprintln(stderr, "usage: mcp-bridge explain [--config file] [--format text|json] <host>")
		return errUsage
	}
	rendered, err := common.render(ctx, *timeout, stderr)
	if err != nil {
		return err
	}
	xs := rendered.Rules.Status(fs.Arg(0)).Services
	if len(xs) == 0 {
		return fmt.Errorf("no service has host or source %q", fs.Arg(0))
	}
	// The registries' governance rules selecting each service, applied or not, with why.
	for i := range xs {
		xs[i].Governance = rendered.Rules.GovernanceStatus(xs[i].Service).Rules
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(xs)
	}
	for _, x := range xs {
		x.WriteText(stdout)
	}
	return nil
}
