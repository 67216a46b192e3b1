// Command mcp-bridge serves the services of Nacos, ZooKeeper and file registries to Istiod as
// ServiceEntry and WorkloadEntry resources over MCP-over-xDS.
//
//	mcp-bridge [serve] [--config FILE] [--mcp-addr ADDR] [--admin-addr ADDR]
//	mcp-bridge render  [--config FILE] [--format yaml|json] [--timeout D]
//	mcp-bridge validate [--config FILE]
//	mcp-bridge version
//
// With no --config it serves the embedded example services of the file registry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// buildVersion is set by the release build: -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion string

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: mcp-bridge [command] [flags]

Commands:
  serve     watch the registries and serve Istiod over MCP (the default)
  render    read the registries once and print the resources Istiod would receive;
            exits 1 if any would be dropped as invalid or a registry could not be read
  validate  check a configuration file and exit
  explain   show which rules match a service (by host), what they generate, and why
  history   print a running bridge's resource history: versions, causes, diffs
  diff      render two configurations (or one against the running bridge) and print the
            resource diff, for reviewing a change in CI
  version   print the version

Run 'mcp-bridge <command> -h' for the command's flags. With no --config, the bridge serves
the embedded example services (a file registry), so it runs with nothing else installed.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stderr)
	case "render":
		err = runRender(ctx, args, stdout, stderr)
	case "validate":
		err = runValidate(args, stdout, stderr)
	case "explain":
		err = runExplain(ctx, args, stdout, stderr)
	case "history":
		err = runHistory(ctx, args, stdout, stderr)
	case "diff":
		err = runDiff(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "mcp-bridge", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mcp-bridge: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errDiffers):
		return 1
	}
	fmt.Fprintln(stderr, "mcp-bridge:", err)
	return 1
}

var errUsage = errors.New("usage")

// commonFlags are the flags every command that reads a configuration shares.
type commonFlags struct {
	configPath string
	logLevel   string
	logFormat  string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", "", "configuration file (default: the embedded example services)")
	fs.StringVar(&c.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "", "override log.format: text, json")
}

func (c *commonFlags) load() (*config.Config, error) {
	cfg := config.Default()
	if c.configPath != "" {
		var err error
		if cfg, err = config.Load(c.configPath); err != nil {
			return nil, err
		}
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	if c.logFormat != "" {
		cfg.Log.Format = c.logFormat
	}
	return cfg, nil
}

// render loads the configuration and reads every registry once (waiting at most timeout for
// each one's first sync) through the same pipeline serve runs: what render, explain and diff
// print.
func (c *commonFlags) render(ctx context.Context, timeout time.Duration, stderr io.Writer) (*pipeline.Rendered, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return nil, err
	}
	return pipeline.Render(ctx, cfg, pipeline.Options{Logger: log}, timeout)
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "mcp-bridge %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	mcpAddr := fs.String("mcp-addr", "", "override mcp.address, the MCP listener (host:port)")
	adminAddr := fs.String("admin-addr", "", "override admin.address, the admin HTTP listener (host:port)")
	shardAddrs := fs.String("mcp-shard-addrs", "", "override mcp.shardAddresses: one MCP listener per shard (host:port,host:port,...)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// load is also how a reload reads the file: the flags override it every time, so they never
	// show as changed options.
	load := func() (*config.Config, error) {
		cfg, err := common.load()
		if err != nil {
			return nil, err
		}
		if *mcpAddr != "" {
			cfg.MCP.Address = *mcpAddr
		}
		if *adminAddr != "" {
			cfg.Admin.Address = *adminAddr
		}
		if *shardAddrs != "" {
			cfg.MCP.ShardAddresses = strings.Split(*shardAddrs, ",")
			cfg.MCP.Shards = len(cfg.MCP.ShardAddresses)
		}
		if err := cfg.CheckListeners(); err != nil {
			return nil, fmt.Errorf("config %s: %w", common.configPath, err)
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	if common.configPath == "" {
		log.Info("no --config given: serving the embedded example services (file registry \"example\")")
	}
	return serve(ctx, cfg, common.configPath, load, log)
}

func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := common.load()
	if err != nil {
		return err
	}
	if err := cfg.CheckListeners(); err != nil {
		return fmt.Errorf("config %s: %w", common.configPath, err)
	}
	// A credential that cannot be read leaves serve unready until it appears; validate says so
	// now, naming the field (never the value).
	if err := cfg.CheckCredentials(); err != nil {
		return fmt.Errorf("config %s: credentials:\n%w", common.configPath, err)
	}
	// Building the pipeline runs every constructor's own checks (templates, CIDRs, credentials
	// sources) without connecting to anything.
	if _, err := pipeline.New(cfg, pipeline.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "configuration is valid: %d registries (%s)\n", len(cfg.Registries), strings.Join(cfg.RegistryNames(), ", "))
	for _, n := range cfg.Translate.Notices() {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return nil
}

func newLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", c.Format)
}

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
