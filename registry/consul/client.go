package consul

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// transport is the only way the adapter's requests reach Consul. It sets exactly the configured
// token, namespace and partition (the Consul client library would otherwise pick up the Consul
// CLI's CONSUL_HTTP_TOKEN, CONSUL_NAMESPACE, ... environment), fails over between addresses, and
// counts requests so that /debug/registries and the tests can see what blocking queries cost.
type transport struct {
	base      http.RoundTripper
	addrs     []string // host:port
	token     atomic.Pointer[string]
	namespace string
	partition string
	requests  atomic.Int64
	count     func() // the requests metric

	mu   sync.Mutex
	next int // index into addrs of the address in use
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.requests.Add(1)
	if t.count != nil {
		t.count()
	}
	r := req.Clone(req.Context())
	r.Header.Del("X-Consul-Token")
	if tok := t.token.Load(); tok != nil && *tok != "" {
		r.Header.Set("X-Consul-Token", *tok)
	}
	q := r.URL.Query()
	q.Del("ns")
	q.Del("partition")
	q.Del("token")
	if t.namespace != "" {
		q.Set("ns", t.namespace)
	}
	if t.partition != "" {
		q.Set("partition", t.partition)
	}
	r.URL.RawQuery = q.Encode()
	t.mu.Lock()
	i := t.next
	t.mu.Unlock()
	// An address that refuses the connection (an agent stopped, a host gone) is passed over at
	// once: the request never reached it, so it is safe to send to the next one, and the
	// registry does not fail while another address answers. Any other error (a reset in the
	// middle of a blocking query) fails this request, which its watch retries from index 0
	// after a backoff; the next request goes to the next address either way.
	for tries := 0; ; tries++ {
		r.URL.Host, r.Host = t.addrs[i], t.addrs[i]
		resp, err := t.base.RoundTrip(r)
		if err == nil || len(t.addrs) == 1 || req.Context().Err() != nil {
			return resp, err
		}
		t.mu.Lock()
		if t.next == i {
			t.next = (i + 1) % len(t.addrs)
		}
		i = t.next
		t.mu.Unlock()
		if !dialError(err) || tries+1 >= len(t.addrs) {
			return resp, err
		}
	}
}

// dialError reports whether err is a failure to connect, before any of the request was sent.
func dialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// current returns the address requests go to now.
func (t *transport) current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addrs[t.next]
}

// newClient builds the Consul API client over the adapter's transport.
func newClient(cfg Config) (*api.Client, *transport, error) {
	scheme := "http"
	var addrs []string
	for _, a := range cfg.Address {
		s, hp, err := parseAddress(a)
		if err != nil {
			return nil, nil, fmt.Errorf("address: %w", err)
		}
		if s == "https" {
			scheme = "https"
		}
		addrs = append(addrs, hp)
	}
	if cfg.TLS.Enabled {
		scheme = "https"
	}
	base := cleanhttp.DefaultPooledTransport()
	if scheme == "https" {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, nil, err
		}
		base.TLSClientConfig = tc
	}
	// Blocking queries hold connections open for up to wait + wait/16 (Consul's jitter); more
	// than the pool default of idle connections keeps one per watched service reusable.
	base.MaxIdleConnsPerHost = 1024
	base.ResponseHeaderTimeout = cfg.Wait + cfg.Wait/16 + 30*time.Second
	t := &transport{base: base, addrs: addrs, namespace: cfg.Namespace, partition: cfg.Partition}
	c, err := api.NewClient(&api.Config{
		Address:    addrs[0],
		Scheme:     scheme,
		HttpClient: &http.Client{Transport: t},
		WaitTime:   cfg.Wait,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("consul client: %w", err)
	}
	return c, t, nil
}

func tlsConfig(c TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile: %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.certFile/keyFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// describeError turns a Consul API error into an actionable one. An ACL refusal names the
// token's source (never the token) and the permission the request needed.
func describeError(err error, what, permission string, token registry.Secret) error {
	var se api.StatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if se.Code == http.StatusTooManyRequests {
		return fmt.Errorf("%s: the agent refused the connection (HTTP 429): each watched service holds one blocking query, "+
			"and the agent allows limits.http_max_conns_per_client (default 200) connections per client address; raise it above "+
			"the number of watched services, or select fewer with include/exclude/tags: %w", what, err)
	}
	if se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized {
		src := "no token configured (the agent's default or anonymous token was used)"
		if !token.IsZero() {
			src = "the token from " + token.String()
		}
		body := se.Body
		if strings.Contains(body, "ACL not found") {
			return fmt.Errorf("%s: ACL denied: Consul does not know %s (ACL not found); check consul.token: %w", what, src, errACL)
		}
		return fmt.Errorf("%s: ACL denied: %s lacks permission %s (Consul: %s): %w", what, src, permission, truncate(body, 200), errACL)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// errACL marks ACL refusals, which the adapter re-reads the token for.
var errACL = errors.New("ACL permission denied")

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
