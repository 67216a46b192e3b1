package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/history"
)

func testSources() Sources {
	store := history.New(history.Options{})
	store.Record(time.Now(), history.Cause{Trigger: "registry", Registries: map[string]int{"zk": 2}, Services: 1},
		[]history.Change{{Kind: "ServiceEntry", Namespace: "shop", Name: "orders.zk", Source: "zk/orders", Content: history.Text("a: 1\n")}})
	store.Record(time.Now(), history.Cause{Trigger: "registry", Registries: map[string]int{"zk": 1}, Services: 1},
		[]history.Change{{Kind: "ServiceEntry", Namespace: "shop", Name: "orders.zk", Source: "zk/orders", Content: history.Text("a: 2\n")}})
	return Sources{
		Ready:      func() (bool, string) { return true, "" },
		Registries: func() any { return nil }, Invalid: func() any { return nil },
		Clients: func(int, int) any { return nil },
		Overview: func() Overview {
			return Overview{Version: "v1.2.3", Ready: true,
				Registries: []RegistryView{{Name: "zk-main", Type: "zookeeper", State: "synced", Synced: true, Services: 12, Instances: 34}},
				Clients: []ClientView{{NodeID: "sidecar~10.0.0.9~istiod-abc.istio-system", Peer: "10.0.0.9:5000", Protocol: "delta",
					Types: []TypeView{{Kind: "ServiceEntry", Sent: "v9", Acked: "v8", LagSeconds: 1.5}}}},
				ClientsTotal: 1, Resources: []KindCount{{"ServiceEntry", 12}},
				Invalid: []Problem{{Kind: "ServiceEntry", Resource: "shop/<bad>", Reason: "invalid-host", Detail: "host has <script>"}},
			}
		},
		History: store.Find, HistoryStats: store.Stats,
		CheckKind: func(k string) (string, error) {
			if strings.EqualFold(k, "serviceentry") {
				return "ServiceEntry", nil
			}
			return "", errors.New("unknown kind")
		},
		Gatherer: prometheus.NewRegistry(),
	}
}

func TestStatusAndHistoryPages(t *testing.T) {
	h := Handler(testSources())
	tests := []struct {
		name, path, accept string
		code               int
		want, notWant      []string
	}{
		{"status page as HTML", "/", "", 200,
			[]string{"<!doctype html>", "zk-main", "zookeeper", "synced", ">12<", ">34<", "istiod-abc", "1.5s", "Connected Istiods (1)", "&lt;script&gt;", `name="viewport"`},
			[]string{"<script>"}},
		{"status page as JSON by Accept", "/", "application/json", 200, []string{`"name": "zk-main"`, `"clientsTotal": 1`}, nil},
		{"status page as JSON by format", "/?format=json", "", 200, []string{`"ready": true`}, nil},
		{"history HTML with diff and cause", "/history?kind=serviceentry&name=shop/orders.zk", "", 200,
			[]string{"ServiceEntry", "shop/orders.zk", `<span class="del">-a: 1</span>`, `<span class="add">&#43;a: 2</span>`, `href="/history?format=json&amp;kind=serviceentry&amp;name=shop%2Forders.zk"`, "registry events zk×1 (1 services changed)"}, nil},
		{"history as JSON", "/history?name=orders.zk&format=json", "", 200, []string{`"change": "changed"`, `"trigger": "registry"`, `"versions": [`}, nil},
		{"history since the future is empty", "/history?since=2999-01-01T00:00:00Z&format=json", "", 200, []string{`"versions": []`}, nil},
		{"history: unknown kind", "/history?kind=Bogus", "", 400, []string{"unknown kind"}, nil},
		{"history: bad since", "/history?since=yesterday", "", 400, []string{"RFC 3339"}, nil},
		{"history: bad limit", "/history?limit=0", "", 400, []string{"from 1 to 10000"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.code {
				t.Fatalf("GET %s = %d %s", tt.path, rec.Code, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s: missing %q in\n%s", tt.path, w, body)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("GET %s: unexpected %q", tt.path, w)
				}
			}
			if strings.Contains(rec.Header().Get("Content-Type"), "json") {
				var v any
				if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
					t.Errorf("JSON form does not parse: %v", err)
				}
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	s := testSources()
	token, tokenErr := "s3cret-token", error(nil)
	s.Token = func() (string, error) { return token, tokenErr }
	h := Handler(s)
	tests := []struct {
		name, path, auth string
		broken           bool
		code             int
	}{
		{"status page without a token", "/", "", false, http.StatusUnauthorized},
		{"metrics without a token", "/metrics", "", false, http.StatusUnauthorized},
		{"wrong token", "/debug/registries", "Bearer nope", false, http.StatusUnauthorized},
		{"token without Bearer", "/", "s3cret-token", false, http.StatusUnauthorized},
		{"right token", "/", "Bearer s3cret-token", false, http.StatusOK},
		{"history with the token", "/history", "Bearer s3cret-token", false, http.StatusOK},
		{"probes need none", "/healthz", "", false, http.StatusOK},
		{"readiness needs none", "/readyz", "", false, http.StatusOK},
		{"unreadable token fails closed", "/", "Bearer s3cret-token", true, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokenErr = nil
			if tt.broken {
				tokenErr = errors.New("reading secret file: no such file")
			}
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("GET %s with %q = %d, want %d", tt.path, tt.auth, rec.Code, tt.code)
			}
			if strings.Contains(rec.Body.String(), token) {
				t.Fatalf("response shows the token")
			}
		})
	}
}
