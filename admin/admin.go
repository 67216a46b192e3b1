// Package admin serves the bridge's HTTP admin endpoints: health, readiness, Prometheus metrics and
// the debug pages. It renders what other packages report; it holds no state of its own. It listens
// on 127.0.0.1 by default because the debug pages show the whole service estate.
package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcp-bridge/mcp-bridge/history"
)

// Sources are the functions the handlers call for their content. Each must be safe for
// concurrent use and must never return credentials.
type Sources struct {
	// Ready reports readiness and, when not ready, why.
	Ready func() (bool, string)
	// Registries and Invalid return JSON-encodable status.
	Registries func() any
	Invalid    func() any
	// Rules returns the rules engine's status; query ("" = all) limits it to one service by host.
	Rules func(query string) any
	// Governance returns the registry governance rules' status; query ("" = all) limits it.
	Governance func(query string) any
	// Scopes returns the Sidecar scopes: each consumer application, what it was seen consuming,
	// its Sidecars.
	Scopes func() any
	// Config returns the running configuration (credentials masked) and the reload history.
	Config func() any
	// Clients returns one page of the connected MCP clients, JSON-encodable: at most limit
	// clients from offset on, with the total count.
	Clients func(offset, limit int) any
	// Resources writes the current resources as YAML (kind filters by Istio kind, "" = all).
	Resources func(w io.Writer, kind string) error
	// CheckKind returns the canonical spelling of a kind or an error listing the valid ones;
	// a request for an unknown kind is answered 400 with that error instead of an empty list.
	// Nil: any kind is passed on.
	CheckKind func(kind string) (string, error)
	// Overview is the status page's content (nil: / lists the pages as text).
	Overview func() Overview
	// History answers /history; nil: no history page.
	History      func(q history.Query) []history.Version
	HistoryStats func() history.Stats
	// Token returns the bearer token every page but /healthz and /readyz requires; nil: none.
	// An error (an unreadable token file) refuses the request: the admin pages fail closed.
	Token func() (string, error)
	// Profiling serves Go's runtime profiles under /debug/pprof/ (admin.profiling): off by
	// default, since a CPU profile or trace costs the process while it runs and a heap profile
	// shows its internals.
	Profiling bool
	Gatherer  prometheus.Gatherer
	Logger    *slog.Logger
}

// Handler returns the admin mux.
func Handler(s Sources) http.Handler {
	mux := http.NewServeMux()
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := s.Ready()
		if !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{ErrorLog: slogErrorLog{s.Logger}}))
	mux.HandleFunc("GET /debug/registries", jsonHandler(s.Registries))
	mux.HandleFunc("GET /debug/clients", func(w http.ResponseWriter, r *http.Request) {
		offset, limit, err := page(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		jsonHandler(func() any { return s.Clients(offset, limit) })(w, r)
	})
	mux.HandleFunc("GET /debug/invalid", jsonHandler(s.Invalid))
	if s.Rules != nil {
		mux.HandleFunc("GET /debug/rules", func(w http.ResponseWriter, r *http.Request) {
			jsonHandler(func() any { return s.Rules(r.URL.Query().Get("host")) })(w, r)
		})
	}
	if s.Governance != nil {
		mux.HandleFunc("GET /debug/governance", func(w http.ResponseWriter, r *http.Request) {
			jsonHandler(func() any { return s.Governance(r.URL.Query().Get("q")) })(w, r)
		})
	}
	if s.Scopes != nil {
		mux.HandleFunc("GET /debug/scopes", jsonHandler(s.Scopes))
	}
	if s.Config != nil {
		mux.HandleFunc("GET /debug/config", jsonHandler(s.Config))
	}
	mux.HandleFunc("GET /debug/resources", func(w http.ResponseWriter, r *http.Request) {
		kind := r.URL.Query().Get("kind")
		if kind != "" && s.CheckKind != nil {
			k, err := s.CheckKind(kind)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			kind = k
		}
		w.Header().Set("Content-Type", "application/yaml")
		if err := s.Resources(w, kind); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	// The plain-text index of every page, for people with curl and for tests that must cover
	// every page (a page added later is listed here, or the index test fails).
	serveIndex := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.TrimLeft(index, "\n"))
	}
	mux.HandleFunc("GET /debug/{$}", serveIndex)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if s.Overview == nil {
			serveIndex(w, r)
			return
		}
		render(w, r, "status.html", s.Overview())
	})
	if s.History != nil {
		mux.HandleFunc("GET /history", historyHandler(s))
	}
	if s.Profiling {
		// Registered by hand on this mux: importing net/http/pprof also registers its handlers on
		// http.DefaultServeMux, which no listener of ours serves.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if s.Token == nil {
		return mux
	}
	return requireToken(mux, s.Token, s.Logger)
}

const index = `
mcp-bridge admin
  /                    status page (HTML; ?format=json or Accept: application/json for JSON)
  /debug/              this index
  /history             resource history with diffs (?kind=&name=&since=)
  /healthz             liveness
  /readyz              readiness: every registry synced (or failed with protection engaged), MCP listener(s) up, first push done on every shard
  /metrics             Prometheus metrics
  /debug/registries    per-registry sync state, protection, rejected entries, duplicates
  /debug/clients       connected MCP clients (Istiods; their shard with mcp.shards): per type, last version sent, ACK, NACK (?offset=0&limit=50)
  /debug/resources     served resources as YAML (?kind=ServiceEntry)
  /debug/invalid       resources not emitted because Istiod would reject them, with reasons
  /debug/rules         rules engine: rules, conflicts, and per service what they made and why (?host=)
  /debug/governance    registry governance rules: applied, reported, untranslatable clauses and why (?q=)
  /debug/scopes        Sidecar scopes: each consumer application, what it consumes, its Sidecars
  /debug/config        running configuration (credentials masked), last reload and its error, options awaiting a restart
  /debug/pprof/        Go runtime profiles (heap, CPU, goroutines), only with admin.profiling: true
`

func jsonHandler(f func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}
}

// Page sizes of /debug/clients: every stream's state is bounded by the MCP limits, and a page
// bounds how many are rendered at once.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// page reads ?offset= and ?limit= (default DefaultPageSize, at most MaxPageSize).
func page(r *http.Request) (offset, limit int, err error) {
	q := r.URL.Query()
	offset, limit = 0, DefaultPageSize
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("offset %q: want a whole number >= 0", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxPageSize {
			return 0, 0, fmt.Errorf("limit %q: want a whole number from 1 to %d", v, MaxPageSize)
		}
	}
	return offset, limit, nil
}

type slogErrorLog struct{ l *slog.Logger }

func (e slogErrorLog) Println(v ...any) {
	if e.l != nil {
		e.l.Error("metrics handler", "error", fmt.Sprint(v...))
	}
}
