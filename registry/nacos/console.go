package nacos

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// console reads what Nacos serves only over HTTP: the namespace list and the catalog of services
// of every group (the gRPC service list is per group). Requests go to the servers in turn until
// one answers.
type console struct {
	cfg    Config
	bases  []string // scheme://host:port/contextPath
	client *http.Client

	mu          sync.Mutex
	token       string
	tokenExpiry time.Time
}

func newConsole(cfg Config) (*console, error) {
	scheme := "http"
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLS.Enabled {
		scheme = "https"
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = tc
	}
	c := &console{cfg: cfg, client: &http.Client{Transport: transport, Timeout: cfg.Timeout}}
	for _, s := range cfg.Servers {
		host, port, _ := splitServer(s)
		c.bases = append(c.bases, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+strings.TrimSuffix(cfg.ContextPath, "/"))
	}
	return c, nil
}

func tlsConfig(t TLS) (*tls.Config, error) {
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // InsecureSkipVerify is an explicit test option
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.certFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// errNotServed marks an API the server does not have (HTTP 404/501): configuration cannot be
// served by this server, retrying will not help until it is upgraded or replaced.
var errNotServed = errors.New("API not served by this server")

// namespaces lists the namespace ids (GET /v1/console/namespaces); the public namespace, whose
// id is "" before Nacos 2.4, is returned as "public".
func (c *console) namespaces(ctx context.Context) ([]string, error) {
	var resp struct {
		Code int `json:"code"`
		Data []struct {
			Namespace string `json:"namespace"`
		} `json:"data"`
	}
	if err := c.get(ctx, "/v1/console/namespaces", nil, &resp); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	if resp.Code != 0 && resp.Code != http.StatusOK {
		return nil, fmt.Errorf("listing namespaces: response code %d", resp.Code)
	}
	seen := make(map[string]bool)
	var out []string
	for _, n := range resp.Data {
		id := normalizeNamespace(n.Namespace, c.cfg.Flavor)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// catalog lists every service of a namespace, all groups (GET /v1/ns/catalog/services), paged.
func (c *console) catalog(ctx context.Context, namespace string) ([]groupedName, error) {
	var out []groupedName
	seen := make(map[groupedName]bool)
	for page := 1; ; page++ {
		var resp struct {
			Count       int `json:"count"`
			ServiceList []struct {
				Name      string `json:"name"`
				GroupName string `json:"groupName"`
			} `json:"serviceList"`
		}
		q := url.Values{
			"namespaceId":   {namespace},
			"pageNo":        {strconv.Itoa(page)},
			"pageSize":      {strconv.Itoa(c.cfg.PageSize)},
			"withInstances": {"false"},
			"hasIpCount":    {"false"},
		}
		if err := c.get(ctx, "/v1/ns/catalog/services", q, &resp); err != nil {
			return nil, fmt.Errorf("listing services of namespace %q (catalog): %w", namespace, err)
		}
		for _, s := range resp.ServiceList {
			g := groupedName{group: s.GroupName, name: s.Name}
			if g.group == "" {
				g.group = DefaultGroup
			}
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
			}
		}
		if len(resp.ServiceList) < c.cfg.PageSize || len(out) >= resp.Count || page*c.cfg.PageSize >= resp.Count {
			return out, nil
		}
	}
}

// get sends an authenticated GET to the servers in turn and decodes the JSON answer.
func (c *console) get(ctx context.Context, path string, q url.Values, out any) error {
	var errs []error
	for _, base := range c.bases {
		err := c.getOne(ctx, base, path, q, out)
		if err == nil {
			return nil
		}
		if errors.Is(err, errNotServed) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *console) getOne(ctx context.Context, base, path string, q url.Values, out any) error {
	if q == nil {
		q = url.Values{}
	}
	token, err := c.accessToken(ctx, base)
	if err != nil {
		return err
	}
	if token != "" {
		q.Set("accessToken", token)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// The error text may contain the URL and so the token: name the server only.
		return fmt.Errorf("GET %s%s: %w", redactHost(base), path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s%s: reading answer: %w", redactHost(base), path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotImplemented:
		return fmt.Errorf("GET %s%s: HTTP %d: %w", redactHost(base), path, resp.StatusCode, errNotServed)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		c.mu.Lock()
		c.token = "" // expired or revoked: log in again next time
		c.mu.Unlock()
		return fmt.Errorf("GET %s%s: HTTP %d: check username and password", redactHost(base), path, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s%s: HTTP %d: %s", redactHost(base), path, resp.StatusCode, truncate(string(body), 200))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s%s: answer is not the JSON Nacos sends: %w", redactHost(base), path, err)
	}
	return nil
}

// accessToken logs in (POST /v1/auth/login) when a username is configured and caches the token
// for half its lifetime.
func (c *console) accessToken(ctx context.Context, base string) (string, error) {
	if c.cfg.Username == "" {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.tokenExpiry) {
		return c.token, nil
	}
	password, err := c.cfg.Password.Read()
	if err != nil {
		return "", fmt.Errorf("password: %w", err)
	}
	form := url.Values{"username": {c.cfg.Username}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/auth/login", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("logging in to %s: %w", redactHost(base), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("logging in to %s as %q: HTTP %d: check username and password", redactHost(base), c.cfg.Username, resp.StatusCode)
	}
	var login struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    int64  `json:"tokenTtl"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&login); err != nil || login.AccessToken == "" {
		return "", fmt.Errorf("logging in to %s: the answer holds no accessToken", redactHost(base))
	}
	ttl := time.Duration(login.TokenTTL) * time.Second
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	c.token, c.tokenExpiry = login.AccessToken, time.Now().Add(ttl/2)
	return c.token, nil
}

func redactHost(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Scheme + "://" + u.Host
	}
	return "server"
}

// unwrapURLError drops the URL (which carries the access token) from an HTTP client error.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
