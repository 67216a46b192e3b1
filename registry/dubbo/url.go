// Package dubbo holds what the bridge knows about Dubbo's registry data, independent of the
// registry that carries it (ZooKeeper, Nacos, Consul):
//
//   - ParseURL / ParseZNodeName: Dubbo URLs ("dubbo://10.0.0.1:20880/com.foo.Bar?version=1.0&...")
//     parsed the way Dubbo's own URLStrParser does, with precise errors.
//   - NewProvider: one provider URL mapped to the registry-neutral model (service key, port,
//     instance); InterfaceService assembles the providers of one service key.
//   - Labels / IsVolatile: which URL parameters become instance labels.
//   - NewConfigurators / Configurators.Apply: Dubbo 2 override:// and absent:// configurator URLs
//     applied to provider URLs (weight, disabled, ...) as a Dubbo consumer would.
//   - ConsumerMatches: whether a consumers/ URL refers to a service key.
//   - ParseEndpoints / AppMember / ApplicationService / ParseMapping: Dubbo 3 application-level
//     discovery (dubbo.endpoints metadata, interface->application mapping values).
//   - Assemble: the ports and instances of a service from its members, for other kinds
//     (Spring Cloud applications) and merged views.
//
// Registries that split a provider URL into metadata (Nacos instance metadata, Consul tags) build
// a URL with URLFromParams and use the same functions.
package dubbo

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxURLLength bounds what is parsed. Real provider URLs are 0.5-10 KB (long method lists); a
// name longer than this is garbage or an attack on the bridge's memory, and is rejected.
const MaxURLLength = 64 << 10

// URL is a parsed Dubbo URL: protocol://[username[:password]@]host[:port]/path?k=v&k=v.
// The password, if any, is dropped at parse time: the bridge never needs it.
type URL struct {
	// Protocol is the scheme: dubbo, tri, rest, http, consumer, override, absent, route, empty, ...
	Protocol string
	// Username is the user part of the authority; Dubbo configurators use it as the application
	// when no application parameter is set.
	Username string
	// Host is an IP address (IPv6 without brackets) or a host name; empty if absent.
	Host string
	// Port is 0 when the URL has none.
	Port uint32
	// Path is the part after the authority, without the leading '/': usually the interface.
	Path string
	// Params are the query parameters. As in Dubbo, a repeated key keeps its last value, a key
	// without '=' has the empty value, and "default.<k>" also sets "<k>" when that is absent.
	Params map[string]string
}

// URLFromParams builds a URL from a registry that stores a provider URL as separate fields (Nacos
// instance ip/port/metadata, Consul address/port/tags). protocol defaults to "dubbo"; path
// defaults to the interface parameter. params is copied.
func URLFromParams(protocol, host string, port uint32, path string, params map[string]string) *URL {
	if protocol == "" {
		protocol = "dubbo"
	}
	p := make(map[string]string, len(params))
	for k, v := range params {
		p[k] = v
	}
	if path == "" {
		path = p["interface"]
	}
	return &URL{Protocol: protocol, Host: strings.Trim(host, "[]"), Port: port, Path: path, Params: p}
}

// Param returns a parameter's value, "" when absent.
func (u *URL) Param(key string) string { return u.Params[key] }

// Interface returns the service interface: the interface parameter, else the path (as Dubbo's
// URL.getServiceInterface).
func (u *URL) Interface() string {
	if v := u.Params["interface"]; v != "" {
		return v
	}
	return u.Path
}

// Address returns host:port, with brackets around an IPv6 host.
func (u *URL) Address() string {
	return net.JoinHostPort(u.Host, strconv.FormatUint(uint64(u.Port), 10))
}

// Key returns the service key the URL refers to (interface, group, version).
func (u *URL) Key() ServiceKey {
	return ServiceKey{Interface: u.Interface(), Group: u.Params["group"], Version: u.Params["version"]}
}

// Clone returns a deep copy.
func (u *URL) Clone() *URL {
	c := *u
	c.Params = make(map[string]string, len(u.Params))
	for k, v := range u.Params {
		c.Params[k] = v
	}
	return &c
}

// ServiceKey identifies a Dubbo service: one interface in one group at one version. Empty group
// and version are distinct values ("no group"), as in Dubbo.
type ServiceKey struct {
	Interface string `json:"interface" yaml:"interface"`
	Group     string `json:"group,omitempty" yaml:"group,omitempty"`
	Version   string `json:"version,omitempty" yaml:"version,omitempty"`
}

// String renders the key as Dubbo does: [group/]interface[:version].
func (k ServiceKey) String() string {
	s := k.Interface
	if k.Group != "" {
		s = k.Group + "/" + s
	}
	if k.Version != "" {
		s += ":" + k.Version
	}
	return s
}

// ParseZNodeName decodes a ZooKeeper child name under providers/, consumers/, configurators/ or
// routers/ (Dubbo writes URL.encode(url.toFullString()), i.e. Java URLEncoder form encoding) and
// parses the URL.
func ParseZNodeName(name string) (*URL, error) {
	if len(name) > 3*MaxURLLength {
		return nil, reasonf(ReasonTooLong, "znode name is %d bytes, more than the %d a Dubbo URL may have", len(name), 3*MaxURLLength)
	}
	raw, err := url.QueryUnescape(name)
	if err != nil {
		return nil, reasonf(ReasonBadEncoding, "znode name is not URL-encoded: %w", err)
	}
	return ParseURL(raw)
}

// ParseURL parses a decoded Dubbo URL string the way Dubbo's URLStrParser.parseDecodedStr does,
// but rejects what Dubbo would turn into a broken invoker: no protocol, a port that is not a
// number in 1-65535, a host that is neither an IP address nor a host name, invalid UTF-8 or
// control characters. IPv6 hosts may be bracketed ("[::1]:20880") or bare ("::1:20880", as Java
// Dubbo writes them: the last ':' separates the port).
func ParseURL(s string) (*URL, error) {
	if len(s) > MaxURLLength {
		return nil, reasonf(ReasonTooLong, "URL is %d bytes, more than %d", len(s), MaxURLLength)
	}
	if s == "" {
		return nil, reasonf(ReasonBadURL, "empty URL")
	}
	if !utf8.ValidString(s) {
		return nil, reasonf(ReasonBadEncoding, "URL is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return nil, reasonf(ReasonBadURL, "URL contains control character %U", r)
		}
	}
	body, query, _ := strings.Cut(s, "?")
	if i := strings.IndexByte(body, '#'); i >= 0 {
		body = body[:i]
	}
	proto, rest, ok := strings.Cut(body, "://")
	if !ok {
		return nil, reasonf(ReasonBadURL, "no protocol: %q has no \"://\"", truncate(s, 80))
	}
	if !validScheme(proto) {
		return nil, reasonf(ReasonBadURL, "protocol %q is not a URL scheme", truncate(proto, 40))
	}
	u := &URL{Protocol: proto, Params: parseParams(query)}
	authority, path, _ := strings.Cut(rest, "/")
	u.Path = path
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user := authority[:at]
		if name, _, found := strings.Cut(user, ":"); found {
			user = name
		}
		u.Username = user
		authority = authority[at+1:]
	}
	host, port, err := splitHostPort(authority)
	if err != nil {
		return nil, err
	}
	u.Host, u.Port = host, port
	return u, nil
}

// splitHostPort splits an authority as Dubbo does (last ':' before the path separates the port)
// and also accepts the bracketed IPv6 form.
func splitHostPort(a string) (string, uint32, error) {
	if a == "" {
		return "", 0, nil
	}
	var host, port string
	switch {
	case strings.HasPrefix(a, "["):
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, reasonf(ReasonBadHost, "unterminated '[' in address %q", truncate(a, 80))
		}
		host = a[1:end]
		switch rest := a[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", 0, reasonf(ReasonBadHost, "unexpected %q after ']' in address %q", truncate(rest, 20), truncate(a, 80))
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return "", 0, reasonf(ReasonBadHost, "%q in brackets is not an IPv6 address", truncate(host, 80))
		}
	default:
		i := strings.LastIndexByte(a, ':')
		switch {
		case i < 0:
			host = a
		case strings.IndexByte(a[i:], '%') >= 0:
			// Dubbo: a '%' after the last ':' is an IPv6 zone, not a port.
			host = a
		default:
			host, port = a[:i], a[i+1:]
		}
		if err := checkHost(host); err != nil {
			return "", 0, err
		}
	}
	if port == "" {
		return host, 0, nil
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return "", 0, reasonf(ReasonBadPort, "port %q is not a number in 1-65535", truncate(port, 20))
	}
	return host, uint32(n), nil
}

func checkHost(h string) error {
	if h == "" {
		return nil
	}
	if strings.ContainsRune(h, '%') {
		return reasonf(ReasonBadHost, "address %q has an IPv6 zone, which is meaningless off the provider's own host", truncate(h, 80))
	}
	if strings.ContainsRune(h, ':') {
		if net.ParseIP(h) == nil {
			return reasonf(ReasonBadHost, "address %q is not an IP address", truncate(h, 80))
		}
		return nil
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if !validHostname(h) {
		return reasonf(ReasonBadHost, "address %q is neither an IP address nor a host name", truncate(h, 80))
	}
	return nil
}

// validHostname accepts DNS names and the underscore-bearing names some hosts have; Istio
// resolves the rest.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func validScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// parseParams follows URLStrParser.parseDecodedParams: '&' and ';' separate pairs, the first '='
// separates key and value, values are not decoded again, the last of a repeated key wins, and
// "default.k" also provides "k" (compatibility with Dubbo 2.6 providers).
func parseParams(q string) map[string]string {
	params := make(map[string]string)
	if q == "" {
		return params
	}
	var defaults [][2]string
	for _, pair := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		if k == "" {
			continue
		}
		params[k] = v
		if name, ok := strings.CutPrefix(k, "default."); ok && name != "" {
			defaults = append(defaults, [2]string{name, v})
		}
	}
	for _, d := range defaults {
		if _, ok := params[d[0]]; !ok {
			params[d[0]] = d[1]
		}
	}
	return params
}

// String renders the URL for logs and status pages, parameters sorted, sensitive values hidden.
func (u *URL) String() string {
	var b strings.Builder
	b.WriteString(u.Protocol)
	b.WriteString("://")
	if u.Host != "" {
		if u.Port != 0 {
			b.WriteString(u.Address())
		} else if strings.Contains(u.Host, ":") {
			b.WriteString("[" + u.Host + "]")
		} else {
			b.WriteString(u.Host)
		}
	}
	b.WriteByte('/')
	b.WriteString(u.Path)
	keys := slices.Sorted(maps.Keys(u.Params))
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		v := u.Params[k]
		if IsSensitive(k) {
			v = "***"
		}
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the result stays valid UTF-8.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
