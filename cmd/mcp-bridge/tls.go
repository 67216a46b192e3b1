package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certReloader serves the MCP listener's certificate and re-reads the files when they change, so
// a rotated certificate (cert-manager, a re-mounted Kubernetes Secret) is used without a restart.
// A rotation that leaves an unreadable pair keeps the previous certificate and logs nothing here:
// the next handshake tries again.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.get() },
		NextProtos:     []string{"h2"},
	}
}

func (r *certReloader) get() (*tls.Certificate, error) {
	mod := latestModTime(r.certFile, r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && !mod.After(r.modTime) {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("MCP TLS: loading certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.modTime = &c, mod
	return r.cert, nil
}

func latestModTime(paths ...string) time.Time {
	var latest time.Time
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(latest) {
			latest = st.ModTime()
		}
	}
	return latest
}
