package mcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PacingMode says what a stream waits for before it sends a newer version of a type.
type PacingMode string

const (
	// PacingDigest waits for the client's ACK, then for Istiod to show that it has digested the
	// response: a new push context built after the ACK (see Pacing). It degrades to PacingAck
	// while the signal is unavailable.
	PacingDigest PacingMode = "digest"
	// PacingAck waits for the client's ACK only. Istiod ACKs a response once it has stored it,
	// before its debounce and push have run, so this can feed it faster than it digests.
	PacingAck PacingMode = "ack"
)

// Defaults of Pacing.
const (
	DefaultPacingMetricsPort = 15014
	DefaultPacingInterval    = 20 * time.Millisecond
	DefaultPacingMaxWait     = 5 * time.Second
	// pacingRetryAfter is how long a client whose digest signal failed is paced by ACK only
	// before the signal is tried again.
	pacingRetryAfter = time.Minute
)

// DigestMetric is the Istiod metric whose count shows a push context was built: Istiod builds
// one for every debounced push (full or endpoint-only, with or without proxies connected), after
// the config events of the responses it has stored. docs/istiod-mcp.md says how this was found.
const DigestMetric = "pilot_pushcontext_init_seconds_count"

// Pacing is mcp.pacing: how fast a stream feeds a client newer versions of what it has. A
// response the client asked for (a new subscription, a reconnect) is never held; what is held is
// a newer version of a type the client already has, and everything that changes meanwhile is
// coalesced into the one response sent when the wait ends.
//
// With mode digest, after the client ACKs a response the stream reads Istiod's Prometheus
// endpoint (DigestMetric) and sends the next version once a push context built after the ACK
// exists, or after MaxWait. If the endpoint cannot be read, the stream falls back to ACK pacing
// for a minute and logs it.
type Pacing struct {
	// Mode is "digest" (default) or "ack".
	Mode PacingMode `yaml:"mode"`
	// MetricsPort is Istiod's monitoring port, read on the client's own IP (the peer address of
	// its stream). Default 15014.
	MetricsPort int `yaml:"metricsPort"`
	// MetricsURL, when set, is read instead (for example when Istiod reaches the bridge through a
	// NAT or proxy and its peer address is not its own): http://host:port/metrics.
	MetricsURL string `yaml:"metricsURL"`
	// Interval is how often Istiod's metrics are read while waiting. Default 20ms.
	Interval time.Duration `yaml:"interval"`
	// MaxWait bounds the wait for the digest signal after an ACK; then the next version goes out
	// anyway. Default 5s.
	MaxWait time.Duration `yaml:"maxWait"`
}

// WithDefaults fills in the zero values.
func (p Pacing) WithDefaults() Pacing {
	if p.Mode == "" {
		p.Mode = PacingDigest
	}
	if p.MetricsPort == 0 {
		p.MetricsPort = DefaultPacingMetricsPort
	}
	if p.Interval == 0 {
		p.Interval = DefaultPacingInterval
	}
	if p.MaxWait == 0 {
		p.MaxWait = DefaultPacingMaxWait
	}
	return p
}

// Validate checks the values (zero values mean defaults), naming fields by their YAML keys.
func (p Pacing) Validate() error {
	var errs []error
	switch p.Mode {
	case "", PacingDigest, PacingAck:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not digest or ack", p.Mode))
	}
	if p.MetricsPort < 0 || p.MetricsPort > 65535 {
		errs = append(errs, fmt.Errorf("metricsPort: %d is not a port number", p.MetricsPort))
	}
	if p.MetricsURL != "" && !strings.HasPrefix(p.MetricsURL, "http://") && !strings.HasPrefix(p.MetricsURL, "https://") {
		errs = append(errs, fmt.Errorf("metricsURL: %q is not an http:// or https:// URL", p.MetricsURL))
	}
	if p.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: must not be negative"))
	}
	if p.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("maxWait: must not be negative"))
	}
	return errors.Join(errs...)
}

// pacer reads the digest signal for the streams of one Server.
type pacer struct {
	cfg    Pacing
	client *http.Client
	mu     sync.Mutex
	// failedUntil: per metrics URL, until when the signal is considered unavailable.
	failedUntil map[string]time.Time
}

func newPacer(cfg Pacing) *pacer {
	cfg = cfg.WithDefaults()
	return &pacer{cfg: cfg, failedUntil: map[string]time.Time{},
		client: &http.Client{Timeout: time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}}
}

// url is where the digest signal of the client at peer (host:port) is read.
func (p *pacer) url(peer string) string {
	if p.cfg.MetricsURL != "" {
		return p.cfg.MetricsURL
	}
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(p.cfg.MetricsPort)) + "/metrics"
}

// available reports whether the signal at url may be tried now.
func (p *pacer) available(url string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return now.After(p.failedUntil[url])
}

// fail marks url unavailable for a while; it reports whether it was available until now, so the
// caller logs the change once.
func (p *pacer) fail(url string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := now.After(p.failedUntil[url])
	p.failedUntil[url] = now.Add(pacingRetryAfter)
	return was
}

// read fetches url and returns the value of DigestMetric (summed over label sets).
func (p *pacer) read(ctx context.Context, url string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("digest signal: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("digest signal: reading Istiod's metrics (mcp.pacing.metricsPort / metricsURL): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return 0, fmt.Errorf("digest signal: %s answered %s", url, resp.Status)
	}
	return parseDigestMetric(io.LimitReader(resp.Body, 64<<20))
}

// parseDigestMetric finds DigestMetric in Prometheus text format. Missing is an error: an Istiod
// without it (another version, metrics off) cannot pace on it.
func parseDigestMetric(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	found, sum := false, 0.0
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) < len(DigestMetric) || string(line[:len(DigestMetric)]) != DigestMetric {
			continue
		}
		rest := string(line[len(DigestMetric):])
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue // a longer name with this prefix
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("digest signal: %s has value %q: %w", DigestMetric, fields[0], err)
		}
		found, sum = true, sum+v
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("digest signal: reading metrics: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("digest signal: Istiod's metrics have no %s", DigestMetric)
	}
	return sum, nil
}

// digestState is a stream's wait for Istiod's digest signal. Guarded by conn.mu.
type digestState struct {
	waiting     bool
	since       time.Time
	seq         uint64 // identifies the current wait; a stale waiter's end is ignored
	degraded    bool   // the last attempt found the signal unavailable: ACK pacing
	waits       int
	timeouts    int
	failures    int
	last, total time.Duration
}

// startDigest begins waiting for Istiod to digest the push being sent. The baseline is read now,
// before Istiod can have stored the response: read after the ACK, on a loaded machine it could
// already include the push context built for this very response (Istiod's debounce is only
// 100 ms), and the wait would run to maxWait. The stream waits for the ACK as well (paced), so
// the digest wait only ever adds to the ACK wait. Callers hold c.mu. A wait already running
// covers this push too: the push context it waits for is built after everything stored so far.
func (c *conn) startDigest(ackAt time.Time) {
	p := c.s.pacer
	if p.cfg.Mode != PacingDigest || c.digest.waiting {
		return
	}
	url := p.url(c.peer)
	if !p.available(url, ackAt) {
		c.digest.degraded = true
		return
	}
	c.digest.degraded = false
	c.digest.waiting, c.digest.since = true, ackAt
	c.digest.seq++
	go c.awaitDigest(c.digest.seq, url, ackAt)
}

// awaitDigest reads the digest signal until a push context newer than the ACK exists, MaxWait
// passes, or the signal cannot be read, then lets the stream send again.
func (c *conn) awaitDigest(seq uint64, url string, start time.Time) {
	p := c.s.pacer
	ctx, cancel := context.WithTimeout(c.ctx, p.cfg.MaxWait)
	defer cancel()
	outcome, err := "digested", error(nil)
	base, err := p.read(ctx, url)
	if err == nil {
		tick := time.NewTicker(p.cfg.Interval)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case <-c.s.stop:
				return
			case <-tick.C:
			}
			var v float64
			if v, err = p.read(ctx, url); err != nil || v > base {
				break wait
			}
		}
	}
	switch {
	case c.ctx.Err() != nil:
		return // the stream is gone
	case ctx.Err() != nil:
		outcome, err = "timeout", nil
	case err != nil:
		outcome = "unavailable"
	}
	c.endDigest(seq, outcome, url, start, err)
}

func (c *conn) endDigest(seq uint64, outcome, url string, start time.Time, err error) {
	now := time.Now()
	waited := now.Sub(start)
	c.s.m.digestWait.WithLabelValues(outcome).Observe(waited.Seconds())
	if err != nil && c.s.pacer.fail(url, now) {
		c.s.logs.warn("digest-signal", "mcp: cannot read Istiod's digest signal; pacing this client by its ACKs for a minute "+
			"(set mcp.pacing.metricsPort or metricsURL to Istiod's monitoring port, or mcp.pacing.mode: ack)",
			"client", c.id, "node", truncate(c.node(), logFieldBytes), "url", url, "err", err)
	}
	c.mu.Lock()
	if seq == c.digest.seq && c.digest.waiting {
		d := &c.digest
		d.waiting, d.last = false, waited
		d.total += waited
		d.waits++
		switch outcome {
		case "timeout":
			d.timeouts++
		case "unavailable":
			d.failures++
			d.degraded = true
		}
	}
	c.mu.Unlock()
	c.poke()
}

// paced reports whether a newer version of st must wait (for the client's ACK of the last
// response, or Istiod's digest of it), and if so when to look again. A response the client
// asked for (pending) waits only for the ACK rule.
func (c *conn) paced(st *typeState, now time.Time) (bool, time.Duration) {
	if wait, left := c.waitingForAck(st, now); wait {
		return true, left
	}
	if st.pending || !c.digest.waiting {
		return false, 0
	}
	// The waiter pokes when it ends; this is only a backstop.
	left := c.s.pacer.cfg.MaxWait - now.Sub(c.digest.since) + c.s.pacer.cfg.Interval
	return true, max(left, c.s.pacer.cfg.Interval)
}

// pacingStatus is the stream's pacing for ClientStatus. Callers hold c.mu.
func (c *conn) pacingStatus() PacingStatus {
	d := c.digest
	ps := PacingStatus{Mode: c.s.pacer.cfg.Mode, Signal: "digest", WaitingForDigest: d.waiting,
		Waits: d.waits, Timeouts: d.timeouts, Failures: d.failures,
		LastWaitSeconds: d.last.Seconds(), TotalWaitSeconds: d.total.Seconds()}
	if d.waiting {
		ps.WaitingSince = d.since
	}
	if ps.Mode == PacingAck || d.degraded {
		ps.Signal = "ack"
	}
	return ps
}

// recordPush accounts for a push of snap on st: the versions it coalesced, and once it is
// written, the time from the oldest change it carries. Callers hold c.mu.
func (st *typeState) recordPush(m *metrics, collection string, snap *snapshot) (oldest time.Time) {
	if st.sentSeq == 0 || snap.seq <= st.sentSeq {
		return time.Time{}
	}
	if n := int(snap.seq - st.sentSeq - 1); n > 0 {
		st.coalesced += n
		m.coalesced.WithLabelValues(collection).Add(float64(n))
	}
	return snap.changedAfter(st.sentSeq)
}
