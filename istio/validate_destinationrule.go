package istio

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// DestinationRule rules: Istio's ValidateDestinationRule and validateTrafficPolicy.
var destinationRuleRules = []func(*networking.DestinationRule, *specCheck){
	func(dr *networking.DestinationRule, c *specCheck) { c.add("host", checkWildcardDomain(dr.Host)) },
	func(dr *networking.DestinationRule, c *specCheck) {
		checkTrafficPolicy(c, "trafficPolicy", dr.TrafficPolicy)
	},
	drSubsets,
	func(dr *networking.DestinationRule, c *specCheck) {
		kind := exportConfig
		if dr.WorkloadSelector != nil {
			kind = exportDestinationWithSelector
		}
		checkExportTo(c, "exportTo", dr.ExportTo, kind)
	},
	func(dr *networking.DestinationRule, c *specCheck) {
		if dr.WorkloadSelector != nil {
			checkSelectorLabels(c, "workloadSelector.matchLabels", dr.WorkloadSelector.MatchLabels)
		}
	},
}

// drSubsets: each subset non-null, with a unique DNS-1123 name, valid labels and traffic policy.
func drSubsets(dr *networking.DestinationRule, c *specCheck) {
	names := map[string]bool{}
	for i, s := range dr.Subsets {
		at := indexPath("subsets", i)
		if s == nil {
			c.addf(at, "subset may not be null")
			continue
		}
		if names[s.Name] {
			c.addf(joinPath(at, "name"), "duplicate subset names: %s", s.Name)
		}
		names[s.Name] = true
		c.add(joinPath(at, "name"), checkSubsetName(s.Name))
		checkLabelsAt(c, joinPath(at, "labels"), s.Labels)
		checkTrafficPolicy(c, joinPath(at, "trafficPolicy"), s.TrafficPolicy)
	}
}

// checkTrafficPolicy is validateTrafficPolicy. Stricter than Istio: port-level settings need a
// valid, unique port number, and a retry budget a percent in 0..100 and a valid interval.
func checkTrafficPolicy(c *specCheck, at string, p *networking.TrafficPolicy) {
	if p == nil {
		return
	}
	if p.OutlierDetection == nil && p.ConnectionPool == nil && p.LoadBalancer == nil && p.Tls == nil &&
		len(p.PortLevelSettings) == 0 && p.Tunnel == nil && p.ProxyProtocol == nil && p.RetryBudget == nil {
		c.addf(at, "traffic policy must have at least one field")
		return
	}
	if p.Tunnel != nil && p.ProxyProtocol != nil {
		c.addf(at, "tunnel and proxyProtocol must not be set together")
	}
	checkOutlierDetection(c, joinPath(at, "outlierDetection"), p.OutlierDetection)
	checkConnectionPool(c, joinPath(at, "connectionPool"), p.ConnectionPool)
	checkLoadBalancer(c, joinPath(at, "loadBalancer"), p.LoadBalancer)
	checkClientTLS(c, joinPath(at, "tls"), p.Tls)
	ports := map[uint32]bool{}
	for i, pl := range p.PortLevelSettings {
		pat := indexPath(joinPath(at, "portLevelSettings"), i)
		if pl == nil {
			c.addf(pat, "traffic policy may not be null")
			continue
		}
		if pl.Port == nil {
			c.addf(joinPath(pat, "port"), "portTrafficPolicy must have valid port")
		} else {
			c.add(joinPath(pat, "port.number"), checkPort(pl.Port.Number))
			if ports[pl.Port.Number] {
				c.addf(joinPath(pat, "port.number"), "port %d already has settings", pl.Port.Number)
			}
			ports[pl.Port.Number] = true
		}
		if pl.OutlierDetection == nil && pl.ConnectionPool == nil && pl.LoadBalancer == nil && pl.Tls == nil {
			c.addf(pat, "port traffic policy must have at least one field")
			continue
		}
		checkOutlierDetection(c, joinPath(pat, "outlierDetection"), pl.OutlierDetection)
		checkConnectionPool(c, joinPath(pat, "connectionPool"), pl.ConnectionPool)
		checkLoadBalancer(c, joinPath(pat, "loadBalancer"), pl.LoadBalancer)
		checkClientTLS(c, joinPath(pat, "tls"), pl.Tls)
	}
	if t := p.Tunnel; t != nil {
		tat := joinPath(at, "tunnel")
		if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
			c.addf(joinPath(tat, "protocol"), `tunnel protocol must be "CONNECT" or "POST"`)
		}
		if CheckFQDN(t.TargetHost) != nil && !isIP(t.TargetHost) {
			c.addf(joinPath(tat, "targetHost"), "tunnel target host must be valid FQDN or IP address: %q", t.TargetHost)
		}
		c.add(joinPath(tat, "targetPort"), checkPort(t.TargetPort))
	}
	if pp := p.ProxyProtocol; pp != nil && pp.Version != networking.TrafficPolicy_ProxyProtocol_V1 && pp.Version != networking.TrafficPolicy_ProxyProtocol_V2 {
		c.addf(joinPath(at, "proxyProtocol.version"), "proxy protocol version is invalid: %d", pp.Version)
	}
	if rb := p.RetryBudget; rb != nil {
		if v := rb.GetPercent().GetValue(); rb.Percent != nil && !(v >= 0 && v <= 100) {
			c.addf(joinPath(at, "retryBudget.percent"), "retry budget percent %v is not in range 0..100", v)
		}
		checkDurationAt(c, joinPath(at, "retryBudget.budgetInterval"), rb.BudgetInterval)
	}
}

// checkOutlierDetection is validateOutlierDetection.
func checkOutlierDetection(c *specCheck, at string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	checkDurationAt(c, joinPath(at, "baseEjectionTime"), o.BaseEjectionTime)
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		c.addf(joinPath(at, "consecutiveLocalOriginFailures"), "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")
	}
	checkDurationAt(c, joinPath(at, "interval"), o.Interval)
	c.add(joinPath(at, "maxEjectionPercent"), checkPercentInt(o.MaxEjectionPercent))
	c.add(joinPath(at, "minHealthPercent"), checkPercentInt(o.MinHealthPercent))
}

// checkConnectionPool is validateConnectionPool. Stricter than Istio: a tcp idleTimeout is 0 (no
// timeout) or at least 1ms (Istio also lets a sub-millisecond one through).
func checkConnectionPool(c *specCheck, at string, p *networking.ConnectionPoolSettings) {
	if p == nil {
		return
	}
	if p.Http == nil && p.Tcp == nil {
		c.addf(at, "connection pool must have at least one field")
		return
	}
	if h := p.Http; h != nil {
		hat := joinPath(at, "http")
		for _, f := range []struct {
			name string
			v    int32
		}{
			{"http1MaxPendingRequests", h.Http1MaxPendingRequests}, {"http2MaxRequests", h.Http2MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection}, {"maxRetries", h.MaxRetries},
			{"maxConcurrentStreams", h.MaxConcurrentStreams},
		} {
			if f.v < 0 {
				c.addf(joinPath(hat, f.name), "must be non-negative")
			}
		}
		checkDurationAt(c, joinPath(hat, "idleTimeout"), h.IdleTimeout)
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			c.addf(joinPath(hat, "useClientProtocol"), "use client protocol must not be true when H2UpgradePolicy is UPGRADE")
		}
		if ka := h.Http2KeepAlive; ka != nil {
			kat := joinPath(hat, "http2KeepAlive")
			if ka.Interval == nil {
				c.addf(joinPath(kat, "interval"), "http2 keepalive interval is required")
			}
			if ka.Timeout == nil {
				c.addf(joinPath(kat, "timeout"), "http2 keepalive timeout is required")
			}
			checkDurationAt(c, joinPath(kat, "interval"), ka.Interval)
			checkDurationAt(c, joinPath(kat, "timeout"), ka.Timeout)
		}
	}
	if t := p.Tcp; t != nil {
		tat := joinPath(at, "tcp")
		if t.MaxConnections < 0 {
			c.addf(joinPath(tat, "maxConnections"), "must be non-negative")
		}
		checkDurationAt(c, joinPath(tat, "connectTimeout"), t.ConnectTimeout)
		checkDurationAt(c, joinPath(tat, "maxConnectionDuration"), t.MaxConnectionDuration)
		if t.IdleTimeout != nil && (t.IdleTimeout.Seconds != 0 || t.IdleTimeout.Nanos != 0) {
			checkDurationAt(c, joinPath(tat, "idleTimeout"), t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			checkDurationAt(c, joinPath(tat, "tcpKeepalive.time"), ka.Time)
			checkDurationAt(c, joinPath(tat, "tcpKeepalive.interval"), ka.Interval)
		}
	}
}

// checkClientTLS is agent.ValidateTLS. Stricter than Istio: modes DISABLE and ISTIO_MUTUAL, which
// use no files of their own, refuse certificate fields (Istio ignores them), and a
// configmap:// credential must be exactly "configmap://<namespace>/<name>".
func checkClientTLS(c *specCheck, at string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if after, ok := strings.CutPrefix(t.CredentialName, "configmap://"); ok {
		ns, name, _ := strings.Cut(after, "/")
		if ns == "" || name == "" || strings.Contains(name, "/") {
			c.addf(joinPath(at, "credentialName"), "invalid configmap:// credentialName %q: want configmap://<namespace>/<name>", t.CredentialName)
		} else if ns != c.namespace {
			c.addf(joinPath(at, "credentialName"), "invalid configmap:// credentialName: namespace must match the configuration namespace %q", c.namespace)
		}
	}
	switch t.Mode {
	case networking.ClientTLSSettings_DISABLE, networking.ClientTLSSettings_ISTIO_MUTUAL:
		if t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CredentialName != "" || t.CaCrl != "" {
			c.addf(at, "mode %s uses no certificates: clientCertificate, privateKey, caCertificates, credentialName and caCrl must not be set", t.Mode)
		}
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		switch {
		case t.Mode == networking.ClientTLSSettings_SIMPLE && (t.CaCertificates != "" || t.CredentialName != "" || len(t.SubjectAltNames) > 0):
			c.addf(joinPath(at, "insecureSkipVerify"), "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true")
		case t.Mode == networking.ClientTLSSettings_MUTUAL && (t.CaCertificates != "" || len(t.SubjectAltNames) > 0):
			c.addf(joinPath(at, "insecureSkipVerify"), "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true")
		}
	}
	if t.CredentialName != "" {
		// SIMPLE or MUTUAL: the credential holds the certificates.
		if t.ClientCertificate != "" || t.CaCertificates != "" || t.PrivateKey != "" || t.CaCrl != "" {
			c.addf(at, "cannot specify client certificates or CA certificate or CA CRL If credentialName is set")
		}
		return
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if t.ClientCertificate == "" {
			c.addf(joinPath(at, "clientCertificate"), "client certificate required for mutual tls")
		}
		if t.PrivateKey == "" {
			c.addf(joinPath(at, "privateKey"), "private key required for mutual tls")
		}
	}
}
