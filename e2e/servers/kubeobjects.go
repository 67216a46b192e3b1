package servers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Objects are written with server-side apply over plain HTTP rather than kubectl: a test that
// measures how long a change takes to reach Istiod needs to know when the write happened, and a
// kubectl process spends longer starting than the write itself takes.

// errNotFound marks a kind the API server does not serve.
var errNotFound = errors.New("not found")

// object is one document of a manifest.
type object struct {
	apiVersion, kind, namespace, name string
	json                              []byte
}

func (o object) String() string {
	if o.namespace == "" {
		return o.kind + "/" + o.name
	}
	return o.kind + " " + o.namespace + "/" + o.name
}

// Apply server-side applies every object of a YAML manifest (documents separated by ---) and
// deletes them when the test ends.
func (k *KubeAPIServer) Apply(t testing.TB, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.ApplyObjects(ctx, manifest); err != nil {
		t.Fatalf("servers: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.DeleteObjects(ctx, manifest); err != nil {
			t.Errorf("servers: cleaning up: %v", err)
		}
	})
}

// Delete deletes every object of a YAML manifest; objects already gone are fine.
func (k *KubeAPIServer) Delete(t testing.TB, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.DeleteObjects(ctx, manifest); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// ApplyObjects server-side applies every object of a YAML manifest, in order.
func (k *KubeAPIServer) ApplyObjects(ctx context.Context, manifest string) error {
	objs, err := parseManifest(manifest)
	if err != nil {
		return err
	}
	for _, o := range objs {
		path, err := k.objectPath(ctx, o)
		if err != nil {
			return err
		}
		q := url.Values{"fieldManager": {"mcp-bridge-e2e"}, "force": {"true"}}
		status, out, err := k.Do(ctx, http.MethodPatch, path+"?"+q.Encode(), "application/apply-patch+yaml", o.json)
		if err != nil {
			return fmt.Errorf("applying %s: %w", o, err)
		}
		if status != http.StatusOK && status != http.StatusCreated {
			return fmt.Errorf("applying %s: %d %s", o, status, out)
		}
	}
	return nil
}

// DeleteObjects deletes every object of a YAML manifest, in reverse order; absent ones are fine.
func (k *KubeAPIServer) DeleteObjects(ctx context.Context, manifest string) error {
	objs, err := parseManifest(manifest)
	if err != nil {
		return err
	}
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		path, err := k.objectPath(ctx, o)
		if err != nil {
			return err
		}
		status, out, err := k.Do(ctx, http.MethodDelete, path, "", nil)
		if err != nil {
			return fmt.Errorf("deleting %s: %w", o, err)
		}
		if status != http.StatusOK && status != http.StatusAccepted && status != http.StatusNotFound {
			return fmt.Errorf("deleting %s: %d %s", o, status, out)
		}
	}
	return nil
}

func parseManifest(manifest string) ([]object, error) {
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(manifest))
	for i := 0; ; i++ {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if doc == nil {
			continue
		}
		js, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
			return nil, fmt.Errorf("manifest document %d: apiVersion, kind and metadata.name are required", i)
		}
		objs = append(objs, object{head.APIVersion, head.Kind, head.Metadata.Namespace, head.Metadata.Name, js})
	}
	return objs, nil
}

// objectPath returns the REST path of an object, finding its resource name through discovery.
func (k *KubeAPIServer) objectPath(ctx context.Context, o object) (string, error) {
	res, err := k.resource(ctx, o.apiVersion, o.kind)
	if err != nil {
		return "", fmt.Errorf("%s: %w", o, err)
	}
	prefix := "/apis/" + o.apiVersion
	if !strings.Contains(o.apiVersion, "/") {
		prefix = "/api/" + o.apiVersion
	}
	if !res.namespaced {
		return prefix + "/" + res.name + "/" + o.name, nil
	}
	ns := o.namespace
	if ns == "" {
		ns = "default"
	}
	return prefix + "/namespaces/" + ns + "/" + res.name + "/" + o.name, nil
}

func (k *KubeAPIServer) resource(ctx context.Context, apiVersion, kind string) (apiResource, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.discovery[apiVersion][kind]; ok {
		return r, nil
	}
	path := "/apis/" + apiVersion
	if !strings.Contains(apiVersion, "/") {
		path = "/api/" + apiVersion
	}
	status, body, err := k.Do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return apiResource{}, fmt.Errorf("discovering %s: %w", apiVersion, err)
	}
	if status != http.StatusOK {
		return apiResource{}, fmt.Errorf("discovering %s: %d %s", apiVersion, status, bytes.TrimSpace(body))
	}
	var list struct {
		Resources []struct {
			Name       string `json:"name"`
			Namespaced bool   `json:"namespaced"`
			Kind       string `json:"kind"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return apiResource{}, fmt.Errorf("discovering %s: %w", apiVersion, err)
	}
	kinds := map[string]apiResource{}
	for _, r := range list.Resources {
		if !strings.Contains(r.Name, "/") { // skip subresources such as serviceentries/status
			kinds[r.Kind] = apiResource{name: r.Name, namespaced: r.Namespaced}
		}
	}
	k.discovery[apiVersion] = kinds
	r, ok := kinds[kind]
	if !ok {
		return apiResource{}, fmt.Errorf("kind %s: %w in %s", kind, errNotFound, apiVersion)
	}
	return r, nil
}

// crdsEstablished reports whether every CRD is Established and each served version lists. The
// list matters beyond checking: the API server builds a CRD's storage and watch cache on the
// first request for it, and doing that here (0.1 s for Istio's CRDs) spares the first Istiod a
// 1.4 s wait for its informers to sync.
func (k *KubeAPIServer) crdsEstablished(ctx context.Context) error {
	status, body, err := k.Do(ctx, http.MethodGet, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("listing CRDs: %d %s", status, bytes.TrimSpace(body))
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Plural string `json:"plural"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Served bool   `json:"served"`
				} `json:"versions"`
			} `json:"spec"`
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("listing CRDs: %w", err)
	}
	if len(list.Items) == 0 {
		return errors.New("no CRDs yet")
	}
	for _, crd := range list.Items {
		established := false
		for _, c := range crd.Status.Conditions {
			established = established || c.Type == "Established" && c.Status == "True"
		}
		if !established {
			return fmt.Errorf("CRD %s not Established yet", crd.Metadata.Name)
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			path := "/apis/" + crd.Spec.Group + "/" + v.Name + "/" + crd.Spec.Names.Plural + "?limit=1"
			status, body, err := k.Do(ctx, http.MethodGet, path, "", nil)
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				return fmt.Errorf("listing %s: %d %s", path, status, bytes.TrimSpace(body))
			}
		}
	}
	return nil
}
