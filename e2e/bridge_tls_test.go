package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// bridgeServerName is the DNS name in the bridge's test certificate (beside IP 127.0.0.1).
const bridgeServerName = "mcp-bridge.e2e.test"

// testPKI is a CA and a server certificate signed by it, as PEM files.
type testPKI struct {
	CAPEM             string
	CAFile            string
	CertFile, KeyFile string
	OtherCAPEM        string // a CA that did not sign the certificate
}

// newTestPKI writes a fresh CA and a server certificate for bridgeServerName and 127.0.0.1 to dir.
func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, caCert, caPEM := newCA(t, "mcp-bridge e2e CA")
	_, _, otherPEM := newCA(t, "unrelated CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: bridgeServerName},
		DNSNames:     []string{bridgeServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{
		CAPEM:      caPEM,
		CAFile:     writeFile(t, dir, "ca.pem", caPEM),
		CertFile:   writeFile(t, dir, "server.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		KeyFile:    writeFile(t, dir, "server-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))),
		OtherCAPEM: otherPEM,
	}
}

func newCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestBridgeTLS is issue 3 test 7: Istiod with configSources[].tlsSettings (mode SIMPLE, the CA,
// subjectAltNames or sni) syncs from a bridge serving MCP over TLS only (a CA and certificate made
// here), and an Istiod that speaks plaintext to it, or does not trust its certificate, exits at
// start-up with the reason.
func TestBridgeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	b := startBridge(t, fmt.Sprintf("mcp: {tls: {certFile: %q, keyFile: %q}}\nregistries:\n  - {name: example, type: file}\n", pki.CertFile, pki.KeyFile))
	tlsSource := func(tls servers.SourceTLS) []servers.ConfigSource {
		return []servers.ConfigSource{{Address: "xds://" + b.MCPAddr, TLSSettings: &tls}}
	}

	t.Run("SIMPLE with the CA syncs", func(t *testing.T) {
		t.Parallel()
		cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: tlsSource(servers.SourceTLS{
			Mode: "SIMPLE", CACertificates: pki.CAPEM, SubjectAltNames: []string{bridgeServerName},
		})})
		view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
		wantEndpoints(t, view, "the example services over TLS", exampleEndpoints(), 20*time.Second)
	})
	t.Run("SIMPLE with SNI syncs", func(t *testing.T) {
		t.Parallel()
		cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: tlsSource(servers.SourceTLS{
			Mode: "SIMPLE", CACertificates: pki.CAPEM, SNI: bridgeServerName,
		})})
		view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
		wantEndpoints(t, view, "the example services over TLS", exampleEndpoints(), 20*time.Second)
	})

	// The refusals. Istiod dials every xds:// source once at start-up and exits if that fails
	// (see TestHarnessIstiodExitsWithoutSource), so each refusal is an exit with the reason.
	refused := func(t *testing.T, sources []servers.ConfigSource, reason string) {
		t.Helper()
		_, err := servers.TryStartIstiod(t, servers.IstiodOptions{API: suite.Cluster(t).API, ConfigSources: sources, ReadyTimeout: 30 * time.Second})
		if err == nil {
			t.Fatal("Istiod became ready")
		}
		if !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), reason) {
			t.Fatalf("want Istiod to exit with %q, got: %v", reason, err)
		}
	}
	t.Run("plaintext is refused", func(t *testing.T) {
		t.Parallel()
		// Istiod's plaintext HTTP/2 preface is not a TLS ClientHello: the bridge's TLS-only
		// listener closes the connection, gRPC reports the missing server preface (as EOF or as
		// "connection reset by peer", depending on timing), and Istiod's first MCP dial failing is
		// fatal.
		refused(t, []servers.ConfigSource{b.ConfigSource()}, `MCP: failed running rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: `)
	})
	t.Run("an unknown CA is refused", func(t *testing.T) {
		t.Parallel()
		refused(t, tlsSource(servers.SourceTLS{Mode: "SIMPLE", CACertificates: pki.OtherCAPEM}), "x509: certificate signed by unknown authority")
	})
	t.Run("a wrong subjectAltName is refused", func(t *testing.T) {
		t.Parallel()
		refused(t, tlsSource(servers.SourceTLS{Mode: "SIMPLE", CACertificates: pki.CAPEM, SubjectAltNames: []string{"someone-else.e2e.test"}}), "no matching SAN found")
	})
	// Istio documents caCertificates as a file path elsewhere (DestinationRule); for configSources
	// it must hold the PEM text itself. deploy/istio/mesh-config.yaml shows a path.
	t.Run("caCertificates must be PEM text, not a path", func(t *testing.T) {
		t.Parallel()
		refused(t, tlsSource(servers.SourceTLS{Mode: "SIMPLE", CACertificates: pki.CAFile}), "failed to add ca certificate from configSource.tlsSettings to pool")
	})
}
