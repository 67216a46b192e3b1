package pipeline

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// ConfigStatus is /debug/config: the running configuration (credentials masked) and the reload
// history.
type ConfigStatus struct {
	// Running is the configuration being served, as YAML would give it, every default filled in.
	Running any `json:"running"`
	// LastReload is the last attempt to apply a new configuration; absent before the first.
	LastReload *ReloadStatus `json:"lastReload,omitempty"`
	// LastSuccess is when the running configuration was loaded (at start or by a reload).
	LastSuccess time.Time `json:"lastSuccess"`
	// RestartRequired lists options the configuration file changes that only a restart applies.
	RestartRequired []string `json:"restartRequired,omitempty"`
	// AwaitingSync are registries a reload added and waits for before removing others.
	AwaitingSync []string `json:"awaitingSync,omitempty"`
	// Labels says which label mode runs, which keys rules keep, and which keys were dropped from
	// how many endpoints (translate.labels).
	Labels translate.LabelStats `json:"labels"`
}

// ReloadStatus is one reload attempt.
type ReloadStatus struct {
	Time time.Time `json:"time"`
	// Result is success, unchanged or failure.
	Result string `json:"result"`
	// Error says why a failed reload was rejected (the running configuration stayed).
	Error string `json:"error,omitempty"`
	Plan  *Plan  `json:"plan,omitempty"`
}

// ConfigStatus returns /debug/config.
func (p *Pipeline) ConfigStatus() ConfigStatus {
	s := p.reload
	s.statMu.Lock()
	defer s.statMu.Unlock()
	out := ConfigStatus{Running: masked(p.Config()), LastSuccess: s.lastSuccess,
		RestartRequired: s.pendingRestart, AwaitingSync: s.waitingFor, Labels: p.LabelStats()}
	if !s.lastAttempt.IsZero() {
		out.LastReload = &ReloadStatus{Time: s.lastAttempt, Result: s.lastResult, Error: s.lastError, Plan: s.lastPlan}
	}
	return out
}

// sensitiveKey matches keys whose scalar values must never be shown. Credentials in the
// configuration are references ({file: ...} or {env: ...}), which are shown; a plain value under
// such a key (a future option, a mistake) is masked all the same.
var sensitiveKey = regexp.MustCompile(`(?i)(password|secret|token|credential|accesskey|digest|auth)`)

// userinfo matches credentials in a URL ("scheme://user:pass@host").
var userinfo = regexp.MustCompile(`(://)[^/@\s]+@`)

const maskedValue = "<masked>"

// masked renders the configuration as generic JSON-able data with credentials masked.
func masked(c *config.Config) any {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return map[string]string{"error": fmt.Sprintf("rendering the configuration: %v", err)}
	}
	maskNode(&doc, false)
	var out any
	if err := doc.Decode(&out); err != nil {
		return map[string]string{"error": fmt.Sprintf("rendering the configuration: %v", err)}
	}
	return out
}

// maskNode masks, below n, every scalar under a sensitive key unless it is a secret reference's
// file or env, and credentials in URLs anywhere.
func maskNode(n *yaml.Node, sensitive bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			maskNode(c, sensitive)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if sensitive && (k.Value == "file" || k.Value == "env") && v.Kind == yaml.ScalarNode {
				continue // a reference to the secret, not the secret
			}
			maskNode(v, sensitive || sensitiveKey.MatchString(k.Value))
		}
	case yaml.ScalarNode:
		switch {
		case sensitive && n.Value != "":
			n.Value, n.Tag, n.Style = maskedValue, "!!str", 0
		case strings.Contains(n.Value, "://"):
			n.Value = userinfo.ReplaceAllString(n.Value, "${1}"+maskedValue+"@")
		}
	}
}
