package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestServeShards: with mcp.shards every shard is its own listener with the same TLS and health
// service: each answers readiness over the configured transport (and a plaintext client is
// refused by a TLS shard), and a shard's port in use stops serve with the shard named.
func TestServeShards(t *testing.T) {
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", "services:\n  - name: orders\n    instances:\n      - {address: 10.0.0.1, ports: {http: 8080}}\n")
	certFile, keyFile, pool := selfSigned(t, dir)
	tests := []struct {
		name   string
		shards int
		tls    bool
	}{
		{"three plaintext shards", 3, false},
		{"two TLS shards", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.tls {
				extra = fmt.Sprintf("mcp:\n  tls: {certFile: %q, keyFile: %q}\n", certFile, keyFile)
			}
			cfg := writeFile(t, t.TempDir(), "config.yaml", extra+fmt.Sprintf("registries:\n  - {name: shop, type: file, file: {path: %q}}\n", services))
			addrs := make([]string, tt.shards)
			for i := range addrs {
				addrs[i] = freeAddr(t)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{"serve", "--config", cfg, "--mcp-shard-addrs", strings.Join(addrs, ","), "--admin-addr", freeAddr(t)}, io.Discard, io.Discard)
			}()
			defer func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("serve exited %d", code)
				}
			}()
			creds := insecure.NewCredentials()
			if tt.tls {
				creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})
			}
			for i, a := range addrs {
				deadline := time.Now().Add(20 * time.Second)
				for {
					err := checkReady(a, creds)
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("shard %d (%s) not ready after 20s: %v", i, a, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
				if tt.tls {
					if err := checkReady(a, insecure.NewCredentials()); err == nil {
						t.Errorf("shard %d (%s) answered a plaintext client with mcp.tls set", i, a)
					}
				}
			}
		})
	}

	t.Run("a shard's port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := writeFile(t, t.TempDir(), "config.yaml", fmt.Sprintf("registries:\n  - {name: shop, type: file, file: {path: %q}}\n", services))
		code, _, stderr := runCLI(t, "serve", "--config", cfg, "--mcp-shard-addrs", freeAddr(t)+","+l.Addr().String(), "--admin-addr", freeAddr(t))
		if code != 1 || !strings.Contains(stderr, "MCP listener of shard 1 on "+l.Addr().String()) {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
}

func checkReady(addr string, creds credentials.TransportCredentials) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("readiness %v", resp.Status)
	}
	return nil
}

// selfSigned writes a self-signed certificate for localhost and returns its files and a pool
// trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "tls.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, "tls.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
