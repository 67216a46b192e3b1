package istio

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Sidecar rules: Istio's ValidateSidecar. Istio's warnings (duplicate egress hosts, HTTP pool
// settings on a TCP port) are not reported.
var sidecarRules = []func(*networking.Sidecar, *specCheck){
	func(s *networking.Sidecar, c *specCheck) {
		if s.WorkloadSelector != nil {
			checkSelectorLabels(c, "workloadSelector.labels", s.WorkloadSelector.Labels)
		}
	},
	func(s *networking.Sidecar, c *specCheck) {
		if len(s.Egress) == 0 && len(s.Ingress) == 0 && s.OutboundTrafficPolicy == nil && s.InboundConnectionPool == nil {
			c.addf("", "sidecar: empty configuration provided")
		}
	},
	sidecarIngress,
	func(s *networking.Sidecar, c *specCheck) {
		checkConnectionPool(c, "inboundConnectionPool", s.InboundConnectionPool)
	},
	sidecarEgress,
	sidecarOutboundTrafficPolicy,
}

// sidecarIngress: each listener with a valid, unique port, a bind IP, a local default endpoint,
// and TLS a sidecar can serve. Stricter than Istio: the default endpoint's port must be plain
// digits.
func sidecarIngress(s *networking.Sidecar, c *specCheck) {
	ports := map[uint32]bool{}
	for i, in := range s.Ingress {
		at := indexPath("ingress", i)
		if in == nil {
			c.addf(at, "sidecar: ingress may not be null")
			continue
		}
		if in.Port == nil {
			c.addf(joinPath(at, "port"), "sidecar: port is required for ingress listeners")
			continue
		}
		checkSidecarPort(c, joinPath(at, "port"), in.Port)
		c.add(joinPath(at, "port.number"), checkPort(in.Port.Number))
		if in.Bind != "" {
			c.add(joinPath(at, "bind"), checkIP(in.Bind))
		}
		if ports[in.Port.Number] {
			c.addf(joinPath(at, "port.number"), "sidecar: ports on IP bound listeners must be unique")
		}
		ports[in.Port.Number] = true
		if in.DefaultEndpoint != "" {
			c.add(joinPath(at, "defaultEndpoint"), checkDefaultEndpoint(in.DefaultEndpoint))
		}
		if in.Tls != nil {
			checkSidecarTLS(c, joinPath(at, "tls"), in.Tls, in.Port.Protocol)
		}
		checkConnectionPool(c, joinPath(at, "connectionPool"), in.ConnectionPool)
	}
}

// checkSidecarPort: targetPort unused, a DNS-1123 name if any, a protocol Istio knows.
func checkSidecarPort(c *specCheck, at string, p *networking.SidecarPort) {
	//lint:ignore SA1019 deprecated: refused as Istio does
	if p.TargetPort > 0 {
		c.addf(joinPath(at, "targetPort"), "targetPort has no impact on Sidecars")
	}
	if p.Name != "" && !IsDNS1123Label(p.Name) {
		c.addf(joinPath(at, "name"), "invalid port name: %s", p.Name)
	}
	c.add(joinPath(at, "protocol"), checkProtocol(p.Protocol))
}

// checkDefaultEndpoint: unix://<absolute path>, or a loopback or unspecified address and a port.
func checkDefaultEndpoint(e string) error {
	if after, ok := strings.CutPrefix(e, "unix://"); ok {
		return checkUnixAddress(after)
	}
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		return err
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		return fmt.Errorf("sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset")
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil || !allDigits(port) {
		return fmt.Errorf("sidecar: defaultEndpoint port (%s) is not a number", port)
	}
	return checkPort(uint32(n))
}

// checkUnixAddress is ValidateUnixAddress: an absolute path to a file, or an abstract socket
// ("@name").
func checkUnixAddress(a string) error {
	switch {
	case a == "":
		return fmt.Errorf("unix address must not be empty")
	case strings.HasPrefix(a, "@"):
		return nil
	case !path.IsAbs(a) || strings.HasSuffix(a, "/"):
		return fmt.Errorf("%s is not an absolute path to a file", a)
	}
	return nil
}

// checkSidecarTLS is the ingress TLS part of ValidateSidecar and validateTLSOptions: a sidecar
// serves its own certificate files (SIMPLE, MUTUAL, OPTIONAL_MUTUAL) or passes TLS through, on a
// TLS or HTTPS port; credentials and Istio's own modes are for gateways.
func checkSidecarTLS(c *specCheck, at string, t *networking.ServerTLSSettings, protocol string) {
	for _, f := range []struct {
		set  bool
		name string
	}{
		{len(t.SubjectAltNames) > 0, "subjectAltNames"}, {t.HttpsRedirect, "httpsRedirect"},
		{t.CredentialName != "", "credentialName"}, {len(t.CredentialNames) > 0, "credentialNames"},
		{len(t.TlsCertificates) > 0, "tlsCertificates"},
	} {
		if f.set {
			c.addf(joinPath(at, f.name), "sidecar: %s is not supported in ingress tls", f.name)
		}
	}
	switch t.Mode {
	case networking.ServerTLSSettings_ISTIO_MUTUAL, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		c.addf(joinPath(at, "mode"), "configuration is invalid: cannot set mode to %s in sidecar ingress tls", t.Mode)
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		if t.CredentialName == "" && len(t.CredentialNames) == 0 && len(t.TlsCertificates) == 0 {
			if t.ServerCertificate == "" {
				c.addf(joinPath(at, "serverCertificate"), "%s TLS requires a server certificate", t.Mode)
			}
			if t.PrivateKey == "" {
				c.addf(joinPath(at, "privateKey"), "%s TLS requires a private key", t.Mode)
			}
		}
		if t.Mode != networking.ServerTLSSettings_SIMPLE && t.CaCertificates == "" && t.CredentialName == "" && len(t.CredentialNames) == 0 {
			c.addf(joinPath(at, "caCertificates"), "%s TLS requires a client CA bundle", t.Mode)
		}
		if t.Mode == networking.ServerTLSSettings_SIMPLE && t.CaCrl != "" {
			c.addf(joinPath(at, "caCrl"), "CRL is not supported with SIMPLE TLS")
		}
	}
	if p := strings.ToLower(protocol); p != "https" && p != "tls" {
		c.addf(at, "server cannot have TLS settings for non HTTPS/TLS ports")
	}
}

// sidecarEgress: each listener with a valid, unique port or unix socket (at most one listener
// without a port, the last), and hosts of the form "<namespace>/<host>". Stricter than Istio: the
// bind of a listener without a port must be an IP too.
func sidecarEgress(s *networking.Sidecar, c *specCheck) {
	ports := map[uint32]bool{}
	sockets := map[string]bool{}
	for i, e := range s.Egress {
		at := indexPath("egress", i)
		if e == nil {
			c.addf(at, "egress listener may not be null")
			continue
		}
		switch {
		case e.Port == nil:
			if i != len(s.Egress)-1 {
				c.addf(at, "sidecar: the egress listener with empty port should be the last listener in the list")
			}
			if e.Bind != "" {
				c.add(joinPath(at, "bind"), checkIP(e.Bind))
			}
		case e.Port.Number == 0:
			checkSidecarPort(c, joinPath(at, "port"), e.Port)
			if after, ok := strings.CutPrefix(e.Bind, "unix://"); !ok {
				c.addf(joinPath(at, "bind"), "sidecar: ports with 0 value must have a unix domain socket bind address")
			} else {
				c.add(joinPath(at, "bind"), checkUnixAddress(after))
			}
			if e.CaptureMode != networking.CaptureMode_DEFAULT && e.CaptureMode != networking.CaptureMode_NONE {
				c.addf(joinPath(at, "captureMode"), "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners")
			}
			if sockets[e.Bind] {
				c.addf(joinPath(at, "bind"), "sidecar: unix domain socket values for listeners must be unique")
			}
			sockets[e.Bind] = true
		default:
			checkSidecarPort(c, joinPath(at, "port"), e.Port)
			c.add(joinPath(at, "port.number"), checkPort(e.Port.Number))
			if e.Bind != "" {
				c.add(joinPath(at, "bind"), checkIP(e.Bind))
			}
			if ports[e.Port.Number] {
				c.addf(joinPath(at, "port.number"), "sidecar: ports on IP bound listeners must be unique")
			}
			ports[e.Port.Number] = true
		}
		if len(e.Hosts) == 0 {
			c.addf(joinPath(at, "hosts"), "sidecar: egress listener must contain at least one host")
		}
		for j, h := range e.Hosts {
			checkEgressHost(c, indexPath(joinPath(at, "hosts"), j), h)
		}
	}
}

// checkEgressHost is agent.ValidateNamespaceSlashWildcardHostname for a sidecar:
// "<namespace>/<host>", the namespace a name, "*", "." or "~"-prefixed, the host "*" or a
// (prefix-wildcard) FQDN, not a short name.
func checkEgressHost(c *specCheck, at, h string) {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		c.addf(at, "host %q must be of form namespace/dnsName", h)
		return
	}
	if ns == "" || host == "" {
		c.addf(at, "config namespace and dnsName in host entry cannot be empty: %q", h)
	}
	if n := strings.TrimPrefix(ns, "~"); n != "" && n != "*" && n != "." && !IsDNS1123Label(n) {
		c.addf(at, "invalid namespace value %q in sidecar", ns)
	}
	if host != "*" && !strings.Contains(host, ".") {
		c.addf(at, "short names (non FQDN) are not allowed: %q", host)
	}
	if err := checkWildcardDomain(host); err != nil {
		c.add(at, err)
	}
	if strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.") {
		c.addf(at, "partial wildcard %q not allowed", host)
	}
}

// sidecarOutboundTrafficPolicy: an egress proxy only with ALLOW_ANY, naming an FQDN and a port.
func sidecarOutboundTrafficPolicy(s *networking.Sidecar, c *specCheck) {
	p := s.OutboundTrafficPolicy
	if p == nil || p.EgressProxy == nil {
		return
	}
	at := "outboundTrafficPolicy.egressProxy"
	if p.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY {
		c.addf(at, "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode")
		return
	}
	c.add(joinPath(at, "host"), CheckFQDN(p.EgressProxy.Host))
	if p.EgressProxy.Port == nil {
		c.addf(joinPath(at, "port"), "sidecar: egress_proxy port must be non-nil")
		return
	}
	checkDestination(c, at, p.EgressProxy)
}
