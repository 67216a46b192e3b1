package admin

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHandler(t *testing.T) {
	ready := false
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "mcp_bridge_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	h := Handler(Sources{
		Ready:      func() (bool, string) { return ready, "waiting for the first sync of registries: zk" },
		Registries: func() any { return map[string]any{"registries": []string{"zk"}} },
		Clients: func(offset, limit int) any {
			return map[string]int{"total": 3, "offset": offset, "limit": limit}
		},
		Invalid: func() any { return map[string]any{"invalid": []any{}} },
		Resources: func(w io.Writer, kind string) error {
			_, err := io.WriteString(w, "kind: "+kind+"\n")
			return err
		},
		CheckKind: func(kind string) (string, error) {
			if strings.EqualFold(kind, "ServiceEntry") {
				return "ServiceEntry", nil
			}
			return "", fmt.Errorf("unknown kind %q: use one of ServiceEntry", kind)
		},
		Gatherer: reg,
	})
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	tests := []struct {
		name, method, path string
		before             func()
		code               int
		want               string
	}{
		{"healthz", "GET", "/healthz", nil, 200, "ok"},
		{"not ready says why", "GET", "/readyz", nil, 503, "zk"},
		{"ready", "GET", "/readyz", func() { ready = true }, 200, "ready"},
		{"metrics", "GET", "/metrics", nil, 200, "mcp_bridge_test_total 1"},
		{"registries as JSON", "GET", "/debug/registries", nil, 200, `"registries": [`},
		{"clients: first page by default", "GET", "/debug/clients", nil, 200, `"limit": 50`},
		{"clients: page asked for", "GET", "/debug/clients?offset=2&limit=7", nil, 200, `"offset": 2`},
		{"clients: page size capped", "GET", "/debug/clients?limit=501", nil, 400, "from 1 to 500"},
		{"clients: bad offset", "GET", "/debug/clients?offset=-1", nil, 400, "offset"},
		{"resources filtered by kind", "GET", "/debug/resources?kind=ServiceEntry", nil, 200, "kind: ServiceEntry"},
		{"kind in its canonical spelling", "GET", "/debug/resources?kind=serviceentry", nil, 200, "kind: ServiceEntry"},
		{"unknown kind is a bad request listing the kinds", "GET", "/debug/resources?kind=Bogus", nil, 400, `unknown kind "Bogus": use one of ServiceEntry`},
		{"index lists the pages", "GET", "/", nil, 200, "/debug/invalid"},
		{"unknown page", "GET", "/debug/nope", nil, 404, ""},
		{"writes are refused", "POST", "/readyz", nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			code, body := get(tt.method, tt.path)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("%s %s = %d %q; want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.want)
			}
		})
	}
}

// TestProfiling: the runtime profiles are served only when admin.profiling asks for them, and
// then behind the token like every other page.
func TestProfiling(t *testing.T) {
	tests := []struct {
		name      string
		profiling bool
		token     bool
		auth      string
		code      int
		want      string
	}{
		{"off by default", false, false, "", 404, ""},
		{"on: a heap profile", true, false, "", 200, "heap profile"},
		{"on, with a token: refused without it", true, true, "", 401, ""},
		{"on, with a token: served with it", true, true, "Bearer s3cret", 200, "heap profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Sources{Profiling: tt.profiling, Gatherer: prometheus.NewRegistry()}
			if tt.token {
				s.Token = func() (string, error) { return "s3cret", nil }
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/debug/pprof/heap?debug=1", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			Handler(s).ServeHTTP(rec, req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("GET /debug/pprof/heap = %d %.200q; want %d containing %q", rec.Code, rec.Body.String(), tt.code, tt.want)
			}
		})
	}
}
