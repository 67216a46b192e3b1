package rules

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
)

// inst renders one instance line of a services document.
func inst(addr, port string, labels string, extra ...string) string {
	s := fmt.Sprintf("      - {address: %s, ports: {%s}", addr, port)
	if labels != "" {
		s += ", labels: {" + labels + "}"
	}
	for _, e := range extra {
		s += ", " + e
	}
	return s + "}\n"
}

func svc(name, kind, ports string, insts ...string) string {
	return fmt.Sprintf("  - name: %s\n    kind: %s\n    ports: [%s]\n    labels: {team: shop}\n    instances:\n%s", name, kind, ports, strings.Join(insts, ""))
}

const (
	grpcPort   = "{name: grpc, protocol: grpc}"
	triDubbo   = "{name: dubbo, protocol: dubbo}, {name: tri, protocol: tri}"
	dubboOnly  = "{name: dubbo, protocol: dubbo}"
	httpPort   = "{name: http, protocol: http}"
	ruleHeader = "apiVersion: rules.mcp-bridge.io/v1alpha1\nkind: TrafficRule\n"
)

func rule(name, spec string) string {
	return ruleHeader + "metadata: {name: " + name + "}\nspec:\n" + spec + "\n---\n"
}

// scenarios: each is rules plus steps of registry state; the golden file has every step's output.
var scenarios = []struct {
	name  string
	rules string
	steps []string
}{
	{"subsets", rule("versions", "  subsets: {labels: [version, env]}"), []string{
		"services:\n" + svc("orders", "application", grpcPort,
			inst("10.0.0.1", "grpc: 9000", "version: v1"), inst("10.0.0.2", "grpc: 9000", "version: v2, env: Prod.EU"), inst("10.0.0.3", "grpc: 9000", "")),
		// v2 leaves: its subset is kept, stale, so that its cluster is there when it comes back.
		"services:\n" + svc("orders", "application", grpcPort,
			inst("10.0.0.1", "grpc: 9000", "version: v1"), inst("10.0.0.3", "grpc: 9000", "")),
	}},
	{"canary", rule("orders-canary", `  selector: {hosts: ["orders.*"]}
  canary:
    stable: {version: v1}
    canary: {version: v2}
    weight: 10
    mirrorPercent: 5
    match:
      - headers: {x-canary: {exact: "yes"}}
      - grpc: {service: shop.Orders, method: Create}
        headers: {x-region: {prefix: eu-}}
      - modulo: "user-id % 100 < 20"
      - sourceLabels: {app: web}`), []string{
		"services:\n" + svc("orders", "application", grpcPort, inst("10.0.0.1", "grpc: 9000", "version: v1"), inst("10.0.0.2", "grpc: 9000", "version: v2")),
		// The canary's last instance goes: all traffic to stable, no weight-0 destination.
		"services:\n" + svc("orders", "application", grpcPort, inst("10.0.0.1", "grpc: 9000", "version: v1"), inst("10.0.0.2", "grpc: 9000", "version: v2", "healthy: false")),
		// It comes back.
		"services:\n" + svc("orders", "application", grpcPort, inst("10.0.0.1", "grpc: 9000", "version: v1"), inst("10.0.0.2", "grpc: 9000", "version: v2")),
	}},
	{"tags", rule("greeter-tags", "  selector: {kinds: [dubbo-application]}\n  tagRouting: {}") +
		rule("forced-tags", "  selector: {hosts: [\"forced*\"]}\n  tagRouting: {force: true, header: x-tag, label: tag}"), []string{
		"services:\n" + svc("greeter", "dubbo-application", triDubbo,
			inst("10.0.1.1", "dubbo: 20880, tri: 50051", ""), inst("10.0.1.2", "dubbo: 20880, tri: 50051", "dubbo.tag: gray")) +
			svc("forced", "application", httpPort, inst("10.0.1.5", "http: 80", "tag: blue"), inst("10.0.1.6", "http: 80", "")),
		// The last gray instance leaves: gray requests fall back to untagged instances.
		"services:\n" + svc("greeter", "dubbo-application", triDubbo, inst("10.0.1.1", "dubbo: 20880, tri: 50051", "")) +
			svc("forced", "application", httpPort, inst("10.0.1.5", "http: 80", "tag: blue"), inst("10.0.1.6", "http: 80", "")),
		// It comes back: the tag route returns.
		"services:\n" + svc("greeter", "dubbo-application", triDubbo,
			inst("10.0.1.1", "dubbo: 20880, tri: 50051", ""), inst("10.0.1.3", "dubbo: 20880, tri: 50051", "dubbo.tag: gray")) +
			svc("forced", "application", httpPort, inst("10.0.1.5", "http: 80", "tag: blue"), inst("10.0.1.6", "http: 80", "")),
	}},
	{"lanes", rule("lanes", "  selector: {labels: {team: shop}}\n  lanes: {}") +
		rule("strict-lanes", "  priority: 5\n  selector: {hosts: [payments.reg]}\n  lanes: {mode: strict}"), []string{
		"services:\n" + svc("web", "application", httpPort, inst("10.0.2.1", "http: 80", "")) +
			svc("orders", "application", grpcPort, inst("10.0.2.2", "grpc: 9000", ""), inst("10.0.2.3", "grpc: 9000", "lane: feature-42")) +
			svc("payments", "application", grpcPort, inst("10.0.2.4", "grpc: 9000", "")),
		// The lane's last instance goes: the lane disappears.
		"services:\n" + svc("web", "application", httpPort, inst("10.0.2.1", "http: 80", "")) +
			svc("orders", "application", grpcPort, inst("10.0.2.2", "grpc: 9000", "")) +
			svc("payments", "application", grpcPort, inst("10.0.2.4", "grpc: 9000", "")),
	}},
	{"locality-resilience", rule("failover", `  selector: {hosts: [orders.reg]}
  locality:
    failover: [{from: eu-west-1, to: eu-central-1}]`) + rule("resilient", `  resilience:
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "unavailable,cancelled"}
    connectionPool: {maxConnections: 100, connectTimeout: 1s, maxPendingRequests: 10, maxRequests: 1000}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s, maxEjectionPercent: 50}
    loadBalancer: {consistentHash: {header: x-user}}`) + rule("distribute", `  selector: {hosts: [payments.reg]}
  locality:
    distribute: [{from: "eu-west-1/*", to: {"eu-west-1/*": 80, "eu-central-1/*": 20}}]`), []string{
		"services:\n" + svc("orders", "application", grpcPort, inst("10.0.3.1", "grpc: 9000", "", "locality: {region: eu-west-1, zone: a}")) +
			svc("payments", "dubbo-interface", dubboOnly, inst("10.0.3.2", "dubbo: 20880", "", "locality: {region: eu-west-1, zone: a}")),
	}},
	{"combined", rule("all-in-one", `  priority: 1
  selector: {hosts: [shop-order.reg]}
  canary: {stable: {version: v1}, canary: {version: v2}, weight: 20}
  tagRouting: {untaggedToAll: false}
  lanes: {}
  resilience: {timeout: 3s}`) + rule("generic-canary", `  canary: {stable: {version: v1}, canary: {version: v3}, weight: 50}
  subsets: {labels: [version]}`), []string{
		"services:\n" + svc("shop-order", "dubbo-application", triDubbo,
			inst("10.0.4.1", "dubbo: 20880, tri: 50051", "version: v1"),
			inst("10.0.4.2", "dubbo: 20880, tri: 50051", "version: v2"),
			inst("10.0.4.3", "dubbo: 20880, tri: 50051", "version: v1, dubbo.tag: gray"),
			inst("10.0.4.4", "dubbo: 20880, tri: 50051", "version: v2, lane: feature-42")),
		// The lane instance leaves and a second tag appears.
		"services:\n" + svc("shop-order", "dubbo-application", triDubbo,
			inst("10.0.4.1", "dubbo: 20880, tri: 50051", "version: v1"),
			inst("10.0.4.2", "dubbo: 20880, tri: 50051", "version: v2"),
			inst("10.0.4.3", "dubbo: 20880, tri: 50051", "version: v1, dubbo.tag: gray"),
			inst("10.0.4.5", "dubbo: 20880, tri: 50051", "version: v1, dubbo.tag: blue")),
	}},
}

// TestGolden runs every scenario step by step (instances coming and going) and compares the
// generated policy and explanations with testdata/golden/<scenario>.txt.
func TestGolden(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			w := newWorld(t, sc.rules)
			var b strings.Builder
			for i, st := range sc.steps {
				res := w.step(services(t, st))
				fmt.Fprintf(&b, "##### step %d\n%s", i+1, w.render(res))
				checkNoWeightZero(t, res)
				checkSubsetsNamed(t, res)
			}
			golden.Compare(t, filepath.Join("testdata", "golden", sc.name+".txt"), []byte(b.String()))
		})
	}
}
