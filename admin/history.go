package admin

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/mcp-bridge/mcp-bridge/history"
)

// HistoryPage is /history's content: the versions asked for, newest first, and the store's size.
type HistoryPage struct {
	Kind     string            `json:"kind,omitempty"`
	Name     string            `json:"name,omitempty"`
	Since    string            `json:"since,omitempty"`
	JSONLink template.URL      `json:"-"`
	Versions []history.Version `json:"versions"`
	Stats    *history.Stats    `json:"stats,omitempty"`
}

// ParseSince reads a --since / ?since= value: a duration back from now ("90s", "2h") or an RFC
// 3339 time.
func ParseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: want a duration (90s, 2h) or an RFC 3339 time (2006-01-02T15:04:05Z)", v)
	}
	return t, nil
}

func historyHandler(s Sources) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := HistoryPage{Kind: q.Get("kind"), Name: q.Get("name"), Since: q.Get("since")}
		hq := history.Query{Kind: p.Kind, Name: p.Name, Limit: 100}
		var err error
		if p.Kind != "" && s.CheckKind != nil {
			if hq.Kind, err = s.CheckKind(p.Kind); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		if hq.Since, err = ParseSince(p.Since, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if v := q.Get("limit"); v != "" {
			if hq.Limit, err = strconv.Atoi(v); err != nil || hq.Limit < 1 || hq.Limit > 10000 {
				http.Error(w, fmt.Sprintf("limit %q: want a whole number from 1 to 10000", v), http.StatusBadRequest)
				return
			}
		}
		q.Set("format", "json")
		p.JSONLink = template.URL("/history?" + q.Encode()) // encoded by url.Values: safe in an href
		p.Versions = s.History(hq)
		if p.Versions == nil {
			p.Versions = []history.Version{}
		}
		if s.HistoryStats != nil {
			st := s.HistoryStats()
			p.Stats = &st
		}
		render(w, r, "history.html", p)
	}
}
