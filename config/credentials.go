package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// credential is one credential source the configuration names: a registry.Secret (read as the
// adapter will read it) or a TLS file a registry client loads; path is its YAML path.
type credential struct {
	path   string
	secret registry.Secret
	file   string
}

// credentials lists every credential source of every registry, in file order.
func (c *Config) credentials() []credential {
	var out []credential
	for i, r := range c.Registries {
		p := "registries[" + strconv.Itoa(i) + "]"
		switch {
		case r.ZooKeeper != nil:
			out = append(out, credential{path: p + ".zookeeper.digest", secret: r.ZooKeeper.Digest})
		case r.Nacos != nil:
			n := r.Nacos
			out = append(out,
				credential{path: p + ".nacos.password", secret: n.Password},
				credential{path: p + ".nacos.accessKey", secret: n.AccessKey},
				credential{path: p + ".nacos.secretKey", secret: n.SecretKey})
			if n.TLS.Enabled {
				out = append(out,
					credential{path: p + ".nacos.tls.caFile", file: n.TLS.CAFile},
					credential{path: p + ".nacos.tls.certFile", file: n.TLS.CertFile},
					credential{path: p + ".nacos.tls.keyFile", file: n.TLS.KeyFile})
			}
		}
	}
	kept := out[:0]
	for _, cr := range out {
		if !cr.secret.IsZero() || cr.file != "" {
			kept = append(kept, cr)
		}
	}
	return kept
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
		var err error
		if cr.file != "" {
			err = readable(cr.file)
		} else {
			_, err = cr.secret.Read()
		}
		if err != nil {
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

// readable opens and closes a file: its content is the registry client's to parse.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	return f.Close()
}
