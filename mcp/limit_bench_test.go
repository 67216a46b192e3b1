package mcp

import (
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// BenchmarkPhysicalLimit compares, in one run and alternating op by op, a full push through this
// package with the least any MCP server could do for it (docs/benchmarks.md "Against the
// physical limit"):
//
//   - ours: Server.Set of a generation in which every resource differs (so every envelope is
//     marshalled again), until a loopback gRPC client (rawads: it reads the bytes, decodes
//     nothing) has the whole response: envelopes, version hash, response assembly, gRPC and
//     HTTP/2 framing and flow control, the kernel's loopback, and the client's gRPC receive.
//   - limit: plain proto.Marshal of each resource into its istio.mcp.v1alpha1.Resource envelope
//     and that into its Any, the bytes appended into one buffer, then written to a loopback TCP
//     connection whose other end reads them all.
//
// It reports both wall times and ours/limit (goal: within 1.5), the process CPU time spent in each
// half and its ratio (steadier than wall time on a shared machine; the garbage one half makes is
// partly collected during the other), and the bytes each moved. The client dials with Istiod's
// windows (istiodWindows).
func BenchmarkPhysicalLimit(b *testing.B) {
	for _, fx := range benchFixtures() {
		b.Run(fx.name, func(b *testing.B) {
			p := newMCPPusher(b, fx, true)
			c := startRawClient(b, p.addr(), fx.typeURL, istiodWindows()...)
			c.wait(b)
			w, r := loopbackPair(b)
			read := make(chan error, 1)
			var buf []byte
			var ours, limit, oursCPU, limitCPU time.Duration
			var oursBytes, limitBytes int
			gen := 0
			for b.Loop() {
				gen ^= 1
				start, cpu := time.Now(), cpuTime()
				p.push(gen, fx.gens[gen], nil)
				oursBytes += c.wait(b)
				ours += time.Since(start)
				oursCPU += cpuTime() - cpu

				start, cpu = time.Now(), cpuTime()
				buf = buf[:0]
				for _, res := range fx.gens[gen] {
					buf = appendPlain(b, buf, res)
				}
				n := len(buf)
				go func() {
					_, err := io.CopyN(io.Discard, r, int64(n))
					read <- err
				}()
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := <-read; err != nil {
					b.Fatal(err)
				}
				limit += time.Since(start)
				limitCPU += cpuTime() - cpu
				limitBytes += n
			}
			nOps := float64(b.N)
			b.ReportMetric(float64(ours.Microseconds())/1e3/nOps, "ours-ms/op")
			b.ReportMetric(float64(limit.Microseconds())/1e3/nOps, "limit-ms/op")
			b.ReportMetric(float64(ours)/float64(limit), "ours/limit")
			b.ReportMetric(float64(oursCPU.Microseconds())/1e3/nOps, "ours-cpu-ms/op")
			b.ReportMetric(float64(limitCPU.Microseconds())/1e3/nOps, "limit-cpu-ms/op")
			b.ReportMetric(float64(oursCPU)/float64(limitCPU), "ours/limit-cpu")
			b.ReportMetric(float64(oursBytes)/nOps, "ours-B/op")
			b.ReportMetric(float64(limitBytes)/nOps, "limit-B/op")
		})
	}
}

// istiodWindows are the flow-control windows Istiod's MCP client dials with (istio pkg/adsc:
// 1 MiB per stream and per connection, fixed, so no BDP estimation): the client's windows decide
// how fast a server can send, so the benchmark's client uses Istiod's.
func istiodWindows() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(1 << 20)}
}

// appendPlain appends res as DiscoveryResponse.resources carries it: its envelope, in an Any,
// each by plain proto.Marshal.
func appendPlain(b *testing.B, buf []byte, res *Resource) []byte {
	env, err := proto.Marshal(&mcpapi.Resource{
		Metadata: &mcpapi.Metadata{Name: res.Namespace + "/" + res.Name, Version: res.Version, Labels: res.Labels, Annotations: res.Annotations},
		Body:     res.Body,
	})
	if err != nil {
		b.Fatal(err)
	}
	buf, err = proto.MarshalOptions{}.MarshalAppend(buf, &anypb.Any{TypeUrl: istio.MCPResourceTypeURL, Value: env})
	if err != nil {
		b.Fatal(err)
	}
	return buf
}

// loopbackPair is a connected loopback TCP pair: w to write, r to read.
func loopbackPair(b *testing.B) (w, r net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	w, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r = <-acc
	if r == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() { w.Close(); r.Close() })
	return w, r
}
