package mcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits bound what one MCP client can make the server hold. MCP clients are not authenticated
// (Istiod dials in plaintext or server-side TLS), so everything a request carries is bounded
// before it is kept, logged or shown. The zero value of each field means its default.
//
// Istiod's requests are tiny: type URLs like "networking.istio.io/v1alpha3/ServiceEntry"
// (under 60 bytes), a node id like "sidecar~10.244.0.7~istiod-6d8f9c7b5-x2k4p.istio-system~
// istio-system.svc.cluster.local" (under 200 bytes), wildcard requests without resource names,
// one stream per Istiod subscribing to its 16 config types; a request is under 2 KiB. The
// defaults leave room for many times that and for Delta clients on mid-sized estates.
type Limits struct {
	// MaxRecvMessageBytes is the largest request accepted (gRPC receive limit). A Delta client's
	// initial_resource_versions costs about 80 bytes per resource it holds; raise this (and
	// MaxResourceNameBytesPerStream) for Delta clients on estates above ~40k resources.
	MaxRecvMessageBytes int `yaml:"maxRecvMessageBytes"`
	// MaxTypeURLBytes is the longest type_url accepted.
	MaxTypeURLBytes int `yaml:"maxTypeURLBytes"`
	// MaxNodeIDBytes is the longest node.id accepted.
	MaxNodeIDBytes int `yaml:"maxNodeIDBytes"`
	// MaxDetailBytes is how much of a client's free text is kept, logged and shown: the
	// version_info of an ACK or NACK, a NACK's error_detail.message, identifying node metadata
	// values. Longer text is truncated, not rejected (a NACK's message may legitimately be long).
	MaxDetailBytes int `yaml:"maxDetailBytes"`
	// MaxTypesPerStream bounds the type URLs one stream may subscribe to (Istiod uses 16).
	MaxTypesPerStream int `yaml:"maxTypesPerStream"`
	// MaxResourceNameBytesPerStream bounds the resource names (and Delta initial versions) one
	// stream may ask for, summed over its types. Istiod asks for none (wildcard).
	MaxResourceNameBytesPerStream int `yaml:"maxResourceNameBytesPerStream"`
	// MaxStreams bounds the open MCP streams of the server (every client together).
	MaxStreams int `yaml:"maxStreams"`
	// MaxStreamsPerPeer bounds the open MCP streams from one peer IP address.
	MaxStreamsPerPeer int `yaml:"maxStreamsPerPeer"`
	// SendTimeout ends a stream whose client has not taken a response for this long (HTTP/2
	// flow control: it stopped reading). Until then the stream holds at most one response per
	// type, shared with every other client of that version; the timeout bounds how long a stuck
	// client pins versions the others have moved past.
	SendTimeout time.Duration `yaml:"sendTimeout"`
}

// Default limits; see Limits.
const (
	DefaultMaxRecvMessageBytes           = 4 << 20
	DefaultMaxTypeURLBytes               = 256
	DefaultMaxNodeIDBytes                = 1024
	DefaultMaxDetailBytes                = 1024
	DefaultMaxTypesPerStream             = 64
	DefaultMaxResourceNameBytesPerStream = 4 << 20
	DefaultMaxStreams                    = 256
	DefaultMaxStreamsPerPeer             = 16
	DefaultSendTimeout                   = 2 * time.Minute
)

// WithDefaults fills in the zero fields.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxRecvMessageBytes, DefaultMaxRecvMessageBytes)
	def(&l.MaxTypeURLBytes, DefaultMaxTypeURLBytes)
	def(&l.MaxNodeIDBytes, DefaultMaxNodeIDBytes)
	def(&l.MaxDetailBytes, DefaultMaxDetailBytes)
	def(&l.MaxTypesPerStream, DefaultMaxTypesPerStream)
	def(&l.MaxResourceNameBytesPerStream, DefaultMaxResourceNameBytesPerStream)
	def(&l.MaxStreams, DefaultMaxStreams)
	def(&l.MaxStreamsPerPeer, DefaultMaxStreamsPerPeer)
	if l.SendTimeout == 0 {
		l.SendTimeout = DefaultSendTimeout
	}
	return l
}

// Validate reports every negative or unusable value, each prefixed with its field name.
func (l Limits) Validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative; leave it unset for the default", name, v))
		}
	}
	positive("maxRecvMessageBytes", l.MaxRecvMessageBytes)
	positive("maxTypeURLBytes", l.MaxTypeURLBytes)
	positive("maxNodeIDBytes", l.MaxNodeIDBytes)
	positive("maxDetailBytes", l.MaxDetailBytes)
	positive("maxTypesPerStream", l.MaxTypesPerStream)
	positive("maxResourceNameBytesPerStream", l.MaxResourceNameBytesPerStream)
	positive("maxStreams", l.MaxStreams)
	positive("maxStreamsPerPeer", l.MaxStreamsPerPeer)
	if l.SendTimeout < 0 {
		errs = append(errs, fmt.Errorf("sendTimeout: %v is negative; leave it unset for the default", l.SendTimeout))
	}
	if l.MaxRecvMessageBytes > 0 && l.MaxRecvMessageBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("maxRecvMessageBytes: %d is below 65536; Istiod's requests would not fit", l.MaxRecvMessageBytes))
	}
	if l.MaxTypeURLBytes > 0 && l.MaxTypeURLBytes < 128 {
		errs = append(errs, fmt.Errorf("maxTypeURLBytes: %d is below 128; Istio's type URLs would not fit", l.MaxTypeURLBytes))
	}
	if l.MaxNodeIDBytes > 0 && l.MaxNodeIDBytes < 256 {
		errs = append(errs, fmt.Errorf("maxNodeIDBytes: %d is below 256; Istiod's node ids would not fit", l.MaxNodeIDBytes))
	}
	if l.MaxTypesPerStream > 0 && l.MaxTypesPerStream < 16 {
		errs = append(errs, fmt.Errorf("maxTypesPerStream: %d is below 16, the types Istiod subscribes to", l.MaxTypesPerStream))
	}
	if l.MaxStreams > 0 && l.MaxStreamsPerPeer > l.MaxStreams {
		errs = append(errs, fmt.Errorf("maxStreamsPerPeer: %d is above maxStreams (%d)", l.MaxStreamsPerPeer, l.MaxStreams))
	}
	return errors.Join(errs...)
}

// Limit names: the `limit` label of mcp_bridge_mcp_limit_rejections_total, each with its
// configuration key.
const (
	limitRecvMessage   = "recv_message_bytes"
	limitTypeURL       = "type_url_bytes"
	limitNodeID        = "node_id_bytes"
	limitTypes         = "types_per_stream"
	limitResourceNames = "resource_name_bytes_per_stream"
	limitStreams       = "streams"
	limitStreamsPeer   = "streams_per_peer"
	limitSendTimeout   = "send_timeout"
)

// limitKey is the configuration key of a limit, named in errors and logs.
func limitKey(limit string) string {
	switch limit {
	case limitRecvMessage:
		return "mcp.limits.maxRecvMessageBytes"
	case limitTypeURL:
		return "mcp.limits.maxTypeURLBytes"
	case limitNodeID:
		return "mcp.limits.maxNodeIDBytes"
	case limitTypes:
		return "mcp.limits.maxTypesPerStream"
	case limitResourceNames:
		return "mcp.limits.maxResourceNameBytesPerStream"
	case limitStreams:
		return "mcp.limits.maxStreams"
	case limitStreamsPeer:
		return "mcp.limits.maxStreamsPerPeer"
	case limitSendTimeout:
		return "mcp.limits.sendTimeout"
	}
	return "mcp.limits"
}

// truncate returns s cut to at most max bytes on a rune boundary, marked as cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(+" + strconv.Itoa(len(s)-cut) + " bytes)"
}

// logFieldBytes bounds every client-supplied string in a log line.
const logFieldBytes = 256

// peerHost is the IP of a peer address: the per-peer stream limit counts hosts, since each
// connection comes from a new port.
func peerHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// logLimiter lets one line per key through per interval and counts the rest, so a client that
// repeats what gets logged (NACKs, over-limit requests) cannot flood the log. Keys are fixed
// strings chosen by the server, never client input, so the map stays small.
type logLimiter struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	keys     map[string]*logKey
}

type logKey struct {
	last       time.Time
	suppressed int
}

func newLogLimiter(log *slog.Logger, interval time.Duration) *logLimiter {
	return &logLimiter{log: log, interval: interval, keys: map[string]*logKey{}}
}

// warn logs msg unless a line with the same key was logged within the interval; the next line
// that gets through reports how many were suppressed.
func (l *logLimiter) warn(key, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	k := l.keys[key]
	if k == nil {
		k = &logKey{}
		l.keys[key] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.interval {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := k.suppressed
	k.last, k.suppressed = now, 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressedSinceLast", suppressed)
	}
	l.log.Warn(msg, args...)
}
