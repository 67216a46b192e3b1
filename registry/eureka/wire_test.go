package eureka

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestDecodeShapes reads the three shapes Eureka servers write: Jackson JSON (captured from the
// Polaris server the live tests run), XStream/Jettison JSON (strings for numbers, a single
// object for a list of one, lower-case overriddenstatus, no instanceId) and XML.
func TestDecodeShapes(t *testing.T) {
	tests := []struct {
		file, contentType string
		want              apps
	}{
		{"polaris-apps.json", "application/json", apps{HashCode: "DOWN_1_UP_1_", Apps: []app{{Name: "ORDERS", Instances: []instance{
			{ID: "10.0.0.2:orders:8080", App: "ORDERS", IPAddr: "10.0.0.2", HostName: "10.0.0.2", Status: "DOWN", OverriddenStatus: "UNKNOWN",
				VIPAddress: "orders-vip", Port: 8080, PortEnabled: true, SecurePort: 443, DataCenter: "Amazon",
				Metadata: `{"protocol":"HTTP"}`, Action: "ADDED"},
			{ID: "10.0.0.1:orders:8080", App: "ORDERS", IPAddr: "10.0.0.1", HostName: "10.0.0.1", Status: "UP", OverriddenStatus: "UNKNOWN",
				VIPAddress: "orders", Port: 8080, PortEnabled: true, SecurePort: 8443, SecurePortEnable: true, DataCenter: "MyOwn",
				Metadata: `{"campus":"","management.port":"8081","protocol":"HTTP","region":"","version":"v1","zone":"zone-a"}`, Action: "ADDED"},
		}}}}},
		{"xstream-apps.json", "application/json", apps{HashCode: "OUT_OF_SERVICE_1_UP_1_", Apps: []app{{Name: "PAYMENTS", Instances: []instance{
			{ID: "pay-1", App: "PAYMENTS", HostName: "payments-1.internal.example.com", Status: "UP", OverriddenStatus: "UNKNOWN",
				VIPAddress: "payments,payments-v2", Port: 8080, PortEnabled: false, SecurePort: 8443, SecurePortEnable: true,
				DataCenter: "Amazon", AvailabilityZone: "eu-west-1b", Action: "ADDED"},
			{ID: "10.1.0.7", App: "PAYMENTS", IPAddr: "10.1.0.7", HostName: "10.1.0.7", Status: "OUT_OF_SERVICE",
				VIPAddress: "payments", Port: 8080, PortEnabled: true, SecurePort: 443, DataCenter: "MyOwn",
				Metadata: `{"version":"v2","weight":"3","zone":"zone-b"}`, Action: "MODIFIED"},
		}}}}},
		// No content type: sniffed.
		{"apps.xml", "", apps{HashCode: "DOWN_1_UP_1_", Apps: []app{
			{Name: "ORDERS", Instances: []instance{{ID: "10.0.0.1:orders:8080", App: "ORDERS", IPAddr: "10.0.0.1", HostName: "10.0.0.1",
				Status: "UP", OverriddenStatus: "UNKNOWN", VIPAddress: "orders", Port: 8080, PortEnabled: true, SecurePort: 8443, SecurePortEnable: true,
				DataCenter: "MyOwn", Metadata: `{"management.port":"8081","version":"v1","zone":"zone-a"}`, Action: "ADDED"}}},
			{Name: "INVENTORY", Instances: []instance{{ID: "inv-1", App: "INVENTORY", IPAddr: "10.0.0.9", HostName: "10.0.0.9",
				Status: "DOWN", OverriddenStatus: "UNKNOWN", VIPAddress: "inventory", Port: 9090, PortEnabled: true, SecurePort: 443,
				DataCenter: "Amazon", AvailabilityZone: "us-east-1c", Action: "DELETED"}}},
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decode(tc.contentType, b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decode =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDecodeMissingAndBroken(t *testing.T) {
	tests := []struct {
		name, ct, body string
		missing        bool
		wantErr        bool
	}{
		{"empty body", "application/json", "  ", true, false},
		{"json without applications", "application/json", `{"foo":1}`, true, false},
		{"json null applications", "application/json", `{"applications":null}`, true, false},
		{"empty list", "application/json", `{"applications":{"apps__hashcode":"","application":[]}}`, false, false},
		{"broken json", "application/json", `{"applications":{`, false, true},
		{"broken xml", "application/xml", `<applications><application>`, false, true},
		{"neither", "text/plain", `hello`, false, true},
		{"html error page", "", `<html><body>502</body></html>`, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.ct, []byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("decode error = %v, want error %t", err, tc.wantErr)
			}
			if got.Missing != tc.missing {
				t.Errorf("Missing = %t, want %t", got.Missing, tc.missing)
			}
		})
	}
}

func TestHashCode(t *testing.T) {
	tests := []struct {
		counts map[string]int
		want   string
	}{
		{map[string]int{}, ""},
		{map[string]int{"UP": 10, "DOWN": 2}, "DOWN_2_UP_10_"},
		{map[string]int{"UP": 1, "DOWN": 0, "STARTING": 3, "OUT_OF_SERVICE": 1}, "OUT_OF_SERVICE_1_STARTING_3_UP_1_"},
		{map[string]int{"UP": -1}, ""},
	}
	for _, tc := range tests {
		if got := hashCode(tc.counts); got != tc.want {
			t.Errorf("hashCode(%v) = %q, want %q", tc.counts, got, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"polaris-apps.json", "xstream-apps.json", "apps.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("", b)
	}
	f.Add("application/json", []byte(`{"applications":{"application":{"instance":{"port":"x"}}}}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		a, err := decode(ct, body)
		if err != nil {
			return
		}
		// Whatever decodes must apply to a state without panicking, and its hash must agree
		// with a recount.
		st := newState()
		st.replaceAll(a)
		counts := map[string]int{}
		for _, ins := range st.apps {
			for _, in := range ins {
				counts[in.Status]++
			}
		}
		if got, want := st.hash(), hashCode(counts); got != want {
			t.Fatalf("state hash %q, recount %q", got, want)
		}
		newConverter(Config{}.WithDefaults()).convert(st)
	})
}
