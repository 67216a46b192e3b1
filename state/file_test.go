package state

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// sample is a small state using every field of the model, each registry's services in key order.
func sample() []Registry {
	return []Registry{
		{Name: "zk", Type: "zookeeper", Services: []*registry.Service{
			{
				Registry: "zk", Kind: registry.KindDubboApplication, Name: "shop",
				Ports:     []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}, {Name: "tri", Protocol: registry.ProtocolTriple}},
				Aliases:   []string{"com.example.Cart"},
				Instances: []registry.Instance{},
			},
			{
				Registry: "zk", Kind: registry.KindDubboInterface, Name: "com.example.Greeter", Group: "g1", Version: "1.0.0",
				Ports:     []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}},
				Labels:    map[string]string{"application": "greeter", "dubbo.tag": "gray"},
				Consumers: []string{"shop"},
				Instances: []registry.Instance{
					{ID: "10.0.0.1:20880", Address: "10.0.0.1", Ports: map[string]uint32{"dubbo": 20880}, Weight: 100, Healthy: true, Enabled: true,
						Labels: map[string]string{"methods": "greet,greetAll", "<&>": "html-ish \u2028 text"}, Locality: registry.Locality{Region: "eu", Zone: "eu-1"}},
					{ID: "10.0.0.2:20880", Address: "10.0.0.2", Ports: map[string]uint32{"dubbo": 20880}, Weight: 0, Healthy: false, Enabled: false},
				},
			},
		}},
		{Name: "nacos", Type: "nacos", Services: []*registry.Service{
			{Registry: "nacos", Kind: registry.KindApplication, Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders",
				Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}},
				Instances: []registry.Instance{{ID: "10.1.0.1#8080#DEFAULT", Address: "fd00::1", Ports: map[string]uint32{"http": 8080},
					Weight: 1, Healthy: true, Enabled: true}}},
		}},
		{Name: "empty", Type: "file", Services: []*registry.Service{}},
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	written := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	regs := sample()
	// Written in key order whatever the order given.
	regs[0].Services[0], regs[0].Services[1] = regs[0].Services[1], regs[0].Services[0]
	n, err := write(path, regs, written)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != n || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file %v (%v); want %d bytes, mode 0600", fi, err, n)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Written.Equal(written) {
		t.Errorf("written %v, want %v", got.Written, written)
	}
	want := sample()
	if !reflect.DeepEqual(got.Registries, want) {
		t.Errorf("round trip differs:\ngot  %s\nwant %s", dump(got.Registries), dump(want))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func dump(regs []Registry) string {
	var b strings.Builder
	for _, r := range regs {
		fmt.Fprintf(&b, "%s/%s:", r.Name, r.Type)
		for _, s := range r.Services {
			fmt.Fprintf(&b, " %+v", *s)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// A reader never sees a partial file while writes replace it, and a failed write leaves the
// previous file as it was and no temporary file behind.
func TestAtomicReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json.gz")
	big := []Registry{{Name: "r", Type: "file", Services: manyServices(300, 10)}}
	small := sample()
	if _, err := write(path, small, time.Now()); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			regs := small
			if i%2 == 0 {
				regs = big
			}
			if _, err := write(path, regs, time.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := 0; i < 200; i++ {
		saved, err := Load(path)
		if err != nil {
			t.Fatalf("read %d saw an unusable file while it was being replaced: %v", i, err)
		}
		if n := len(saved.Registries); n != 1 && n != 3 {
			t.Fatalf("read %d: %d registries, want a whole old or new state", i, n)
		}
	}
	close(stop)
	wg.Wait()

	// A write that cannot complete (here the rename: a directory is in the way) changes nothing
	// and cleans up after itself.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := write(blocked, small, time.Now()); err == nil {
		t.Fatal("write over a directory succeeded")
	}
	if _, err := write(filepath.Join(dir, "no-such-dir", "state.json.gz"), small, time.Now()); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the state file changed")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// gz compresses content as a state file would be.
func gz(t *testing.T, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(content))
	zw.Close()
	return b.Bytes()
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json.gz")
	if _, err := write(good, sample(), time.Now()); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x40
	const head = `{"format":"mcp-bridge-state","version":1,"written":"2026-01-01T00:00:00Z","registries":[`
	okService := `{"kind":"application","name":"a","ports":[{"name":"http","protocol":"http"}],"instances":[]}`

	cases := []struct {
		name    string
		content []byte
		want    error
	}{
		{"empty file", nil, ErrCorrupt},
		{"cut inside the gzip header", valid[:5], ErrCorrupt},
		{"cut after the gzip header", valid[:12], ErrCorrupt},
		{"cut in the middle", valid[:len(valid)/2], ErrCorrupt},
		{"cut before the trailer", valid[:len(valid)-8], ErrCorrupt},
		{"last byte missing", valid[:len(valid)-1], ErrCorrupt},
		{"a flipped bit", flipped, ErrCorrupt},
		{"garbage after the gzip stream", append(bytes.Clone(valid), "junk"...), ErrCorrupt},
		{"plain JSON, not gzip", []byte(head + "]}"), ErrForeign},
		{"a YAML file", []byte("registries:\n- name: zk\n"), ErrForeign},
		{"another gzip JSON document", gz(t, `{"apiVersion":"v1","kind":"List"}`), ErrForeign},
		{"a gzip JSON list", gz(t, `[1,2,3]`), ErrForeign},
		{"another format name", gz(t, `{"format":"something-else","version":1}`), ErrForeign},
		{"a newer version", gz(t, `{"format":"mcp-bridge-state","version":3,"written":"2026-01-01T00:00:00Z","zones":{}}`), ErrVersion},
		{"an older version", gz(t, `{"format":"mcp-bridge-state","version":0}`), ErrVersion},
		{"JSON cut short inside gzip", gz(t, head+`{"name":"zk","type":"zookeeper","services":[`+okService), ErrCorrupt},
		{"data after the document", gz(t, head+`]}{}`), ErrCorrupt},
		{"registry without a type", gz(t, head+`{"name":"zk","services":[]}]}`), ErrCorrupt},
		{"registry twice", gz(t, head+`{"name":"zk","type":"file","services":[]},{"name":"zk","type":"file","services":[]}]}`), ErrCorrupt},
		{"service twice", gz(t, head+`{"name":"zk","type":"file","services":[`+okService+`,`+okService+`]}]}`), ErrCorrupt},
		{"null service", gz(t, head+`{"name":"zk","type":"file","services":[null]}]}`), ErrCorrupt},
		{"invalid service", gz(t, head+`{"name":"zk","type":"file","services":[{"kind":"application","name":"a","ports":[{"name":"http","protocol":"http"}],`+
			`"instances":[{"id":"x","address":"10.0.0.1","ports":{"http":70000}}]}]}]}`), ErrCorrupt},
		{"wrong field type", gz(t, head+`{"name":"zk","type":"file","services":{}}]}`), ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			if err := os.WriteFile(path, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			saved, err := Load(path)
			if !errors.Is(err, c.want) {
				t.Fatalf("Load = %v; want %v", err, c.want)
			}
			if saved != nil {
				t.Error("a rejected file returned content")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load = %v; want not-exist", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"off", Config{}, ""},
		{"a file in a directory that does not exist here", Config{File: "/var/lib/mcp-bridge/state.json.gz"}, ""},
		{"a directory", Config{File: dir}, "file: "},
		{"a trailing slash", Config{File: "/var/lib/mcp-bridge/"}, "file: "},
		{"negative interval", Config{File: "x", Interval: -time.Second}, "interval: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)) {
				t.Errorf("Validate() = %v; want %q", err, c.want)
			}
		})
	}
	if got := (Config{}).WithDefaults().Interval; got != DefaultInterval {
		t.Errorf("default interval %v", got)
	}
}
