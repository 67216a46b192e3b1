package admin

import (
	"embed"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// Overview is the status page's content, assembled by the caller from the pipeline's parts; the
// admin package only renders it (as HTML, or JSON for scripts).
type Overview struct {
	Version string `json:"version"`
	// Ready and NotReady are /readyz: whether the bridge serves, and when not, why.
	Ready    bool   `json:"ready"`
	NotReady string `json:"notReady,omitempty"`
	// LastPush is when resources were last pushed (zero before the first push).
	LastPush   time.Time      `json:"lastPush,omitzero"`
	Registries []RegistryView `json:"registries"`
	// Clients are the first page of connected MCP clients; ClientsTotal counts all.
	Clients      []ClientView `json:"clients"`
	ClientsTotal int          `json:"clientsTotal"`
	// ShardGaps are clients connected to some MCP shards but not all (mcp.shards), one line each:
	// an Istiod whose configSources lack shards, and so their services.
	ShardGaps []string `json:"shardGaps,omitempty"`
	// Resources served, by kind.
	Resources []KindCount `json:"resources"`
	// Invalid resources (not emitted), Warnings (emitted adjusted), Conflicts (two producers, one
	// name) and Rules (governance rules that could not be translated), each with its reason.
	Invalid   []Problem `json:"invalid"`
	Warnings  []Problem `json:"warnings"`
	Conflicts []Problem `json:"conflicts"`
	Rules     []Problem `json:"rules"`
	// History summarises the resource history's size.
	History any `json:"history,omitempty"`
}

// RegistryView is one registry's line.
type RegistryView struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// State is one word: synced, syncing, failing, stale, protected, withdrawn, missed-initial-sync.
	State     string `json:"state"`
	Synced    bool   `json:"synced"`
	Stale     bool   `json:"stale"`
	Protected bool   `json:"protected"`
	// Protection says why protection holds (empty when not).
	Protection string    `json:"protection,omitempty"`
	LastSync   time.Time `json:"lastSync,omitzero"`
	LastError  string    `json:"lastError,omitempty"`
	Services   int       `json:"services"`
	Instances  int       `json:"instances"`
	Rejected   int       `json:"rejected,omitempty"`
}

// ClientView is one connected MCP client (an Istiod).
type ClientView struct {
	ID       string `json:"id"`
	NodeID   string `json:"nodeId"`
	Peer     string `json:"peer"`
	Protocol string `json:"protocol"`
	// Shard is the MCP shard the client is connected to (mcp.shards > 1), e.g. "shard-2".
	Shard          string     `json:"shard,omitempty"`
	ConnectedSince time.Time  `json:"connectedSince"`
	Types          []TypeView `json:"types"`
}

// TypeView is one subscribed type of a client: version sent, version ACKed, and how long the
// sent version has waited for its ACK (zero when synced).
type TypeView struct {
	Kind       string  `json:"kind"`
	Sent       string  `json:"sent,omitempty"`
	Acked      string  `json:"acked,omitempty"`
	Synced     bool    `json:"synced"`
	Nacked     bool    `json:"nacked"`
	LagSeconds float64 `json:"lagSeconds"`
}

// KindCount is how many resources of a kind are served.
type KindCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// Problem is a resource (or rule) with a reason.
type Problem struct {
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
	Source   string `json:"source,omitempty"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail,omitempty"`
}

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"lag": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
	"lower": strings.ToLower,
	"diffClass": func(line string) string {
		switch {
		case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
			return "h"
		case strings.HasPrefix(line, "@@"):
			return "at"
		case strings.HasPrefix(line, "+"):
			return "add"
		case strings.HasPrefix(line, "-"):
			return "del"
		}
		return ""
	},
	"lines": func(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") },
}).ParseFS(templateFS, "templates/*.html"))

// wantsJSON: Accept: application/json or ?format=json.
func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// render answers with the named template, or data as JSON when asked for.
func render(w http.ResponseWriter, r *http.Request, name string, data any) {
	if wantsJSON(r) {
		jsonHandler(func() any { return data })(w, r)
		return
	}
	var sb strings.Builder
	if err := templates.ExecuteTemplate(&sb, name, data); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(sb.String()))
}
