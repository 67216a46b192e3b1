package eureka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// maxAnswer bounds one answer: 500 MB is far beyond any Eureka registry (10k instances are ~20 MB
// of JSON), and keeps a broken server from exhausting memory.
const maxAnswer = 500 << 20

// client talks to the servers of one Eureka cluster, sticking to the one that answered last
// and moving on to the next in order when it fails (Netflix's RetryableEurekaHttpClient).
type client struct {
	servers  []string
	username string
	password func() (string, error)
	http     *http.Client

	mu      sync.Mutex
	current int // index of the server in use
	bytes   int64
}

func newClient(cfg Config, password func() (string, error)) (*client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	if cfg.TLS.CAFile != "" || cfg.TLS.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLS.CAFile != "" {
			pem, err := os.ReadFile(cfg.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tls.caFile: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.caFile: %s holds no PEM certificate", cfg.TLS.CAFile)
			}
		}
		if cfg.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls.certFile: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		servers[i] = strings.TrimRight(s, "/")
	}
	return &client{
		servers:  servers,
		username: cfg.Username,
		password: password,
		http:     &http.Client{Transport: tr, Timeout: cfg.Timeout},
	}, nil
}

// server returns the server in use.
func (c *client) server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[c.current]
}

// fetched returns the answer bytes read so far.
func (c *client) fetched() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// get fetches path from the server in use, then from each other server in order, and returns
// the first good answer. The error of a total failure names every server's reason.
func (c *client) get(ctx context.Context, path string) (apps, error) {
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	var errs []error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		a, err := c.getFrom(ctx, c.servers[idx], path)
		if err == nil {
			c.mu.Lock()
			c.current = idx
			c.mu.Unlock()
			return a, nil
		}
		if ctx.Err() != nil {
			return apps{}, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.servers[idx], err))
	}
	return apps{}, fmt.Errorf("no Eureka server answered %s: %w", path, errors.Join(errs...))
}

func (c *client) getFrom(ctx context.Context, server, path string) (apps, error) {
	body, ct, err := c.do(ctx, server+path)
	if err != nil {
		return apps{}, err
	}
	a, err := decode(ct, body)
	if err != nil {
		return apps{}, fmt.Errorf("GET %s: %w", path, err)
	}
	return a, nil
}

func (c *client) do(ctx context.Context, url string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	// JSON first; a server that only writes XML answers XML, which decode reads as well.
	req.Header.Set("Accept", "application/json, application/xml;q=0.9")
	if c.username != "" {
		pw, err := c.password()
		if err != nil {
			return nil, "", fmt.Errorf("password: %w", err)
		}
		req.SetBasicAuth(c.username, pw)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	c.mu.Lock()
	c.bytes += int64(len(body))
	c.mu.Unlock()
	if err != nil {
		return nil, "", fmt.Errorf("reading answer: %w", err)
	}
	if len(body) > maxAnswer {
		return nil, "", fmt.Errorf("answer exceeds %d bytes", maxAnswer)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, "", fmt.Errorf("HTTP %d: check username and password", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// probe checks that some server answers HTTP at all, cheaply: an unknown application's
// 404 is an answer. Used by the refresh loop to notice recovery before the backoff ends.
func (c *client) probe(ctx context.Context) error {
	var errs []error
	for _, s := range c.servers {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s+"/apps/MCP-BRIDGE-PROBE", nil)
		if err != nil {
			cancel()
			return err
		}
		resp, err := c.http.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
