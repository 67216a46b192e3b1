package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// credential is one credential source the configuration names (a registry.Secret: a secret
// file or environment variable, or a TLS file a registry client loads, as the registry table's
// Secrets() lists them); path is its YAML path.
type credential struct {
	path   string
	secret registry.Secret
}

// credentials lists every credential source of every registry, by YAML path.
func (c *Config) credentials() []credential {
	secrets := c.Secrets()
	out := make([]credential, 0, len(secrets))
	for _, path := range slices.Sorted(maps.Keys(secrets)) {
		out = append(out, credential{path: path, secret: secrets[path]})
	}
	return out
}

// rememberCredentialLines records the line of each credential source while the document's node
// tree is at hand, so that CheckCredentials can point at it without keeping the whole tree.
func (c *Config) rememberCredentialLines(doc *yaml.Node) {
	creds := c.credentials()
	if len(creds) == 0 {
		return
	}
	c.credentialLines = make(map[string]int, len(creds))
	for _, cr := range creds {
		c.credentialLines[cr.path] = lineOfPath(doc, cr.path)
	}
}

// CheckCredentials reads every credential source the registries name (secret files, environment
// variables, TLS files) the way the adapters will when they connect, and reports each one that
// cannot be read with its YAML path and line. Values are read and dropped: no error contains one.
//
// Parse does not do this, because a credential may legitimately appear after start-up (a Secret
// mounted late is retried by the adapter, which stays unready meanwhile); `mcp-bridge validate`
// does, so that a configuration whose credentials are missing is not reported as valid.
func (c *Config) CheckCredentials() error {
	var ps problems
	for _, cr := range c.credentials() {
		if _, err := cr.secret.Read(); err != nil {
			ps.add(cr.path, err.Error())
		}
	}
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]error, len(ps))
	for i, p := range ps {
		if line := c.credentialLines[p.path]; line > 0 {
			msgs[i] = fmt.Errorf("line %d: %s: %s", line, p.path, p.msg)
		} else {
			msgs[i] = fmt.Errorf("%s: %s", p.path, p.msg)
		}
	}
	return errors.Join(msgs...)
}
