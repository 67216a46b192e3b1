// Package eurekatest holds helpers for tests that drive a real Eureka-protocol server (Polaris)
// as Spring Cloud Netflix applications do (register, renew, cancel, status overrides). It is
// for tests only: the eureka adapter's own tests, its pipeline tests and the e2e tests. It must
// not import registry/eureka, whose in-package tests use it.
package eurekatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// Instance is what Spring Cloud Netflix's EurekaClient POSTs to /apps/<APP> (Jackson's shape:
// port {"$", "@enabled"}, dataCenterInfo with @class, string timestamps).
type Instance struct {
	App, ID, IP, Status string // Status "": UP
	Port, SecurePort    int    // SecurePort 0: disabled
	VIP                 string // "": the app name
	Metadata            map[string]string
}

// Body is the registration's JSON.
func (s Instance) Body() []byte {
	vip := s.VIP
	if vip == "" {
		vip = s.App
	}
	status := s.Status
	if status == "" {
		status = "UP"
	}
	md := s.Metadata
	if md == nil {
		md = map[string]string{}
	}
	secure := map[string]any{"$": 443, "@enabled": "false"}
	if s.SecurePort != 0 {
		secure = map[string]any{"$": s.SecurePort, "@enabled": "true"}
	}
	b, _ := json.Marshal(map[string]any{"instance": map[string]any{
		"instanceId": s.ID, "hostName": s.IP, "app": s.App, "ipAddr": s.IP, "status": status,
		"overriddenStatus": "UNKNOWN", "port": map[string]any{"$": s.Port, "@enabled": "true"}, "securePort": secure,
		"countryId": 1, "dataCenterInfo": map[string]any{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		"leaseInfo":   map[string]any{"renewalIntervalInSecs": 30, "durationInSecs": 90},
		"metadata":    md,
		"homePageUrl": fmt.Sprintf("http://%s:%d/", s.IP, s.Port), "statusPageUrl": fmt.Sprintf("http://%s:%d/actuator/info", s.IP, s.Port),
		"healthCheckUrl": fmt.Sprintf("http://%s:%d/actuator/health", s.IP, s.Port),
		"vipAddress":     vip, "secureVipAddress": vip, "isCoordinatingDiscoveryServer": "false",
		"lastUpdatedTimestamp": "1", "lastDirtyTimestamp": "1",
	}})
	return b
}

// Call sends one request of the Eureka REST API (as a Eureka client does) and fails the test
// unless it answers 2xx.
func Call(t testing.TB, method, url string, body []byte) {
	t.Helper()
	if err := Do(method, url, body); err != nil {
		t.Fatal(err)
	}
}

// Do is Call for goroutines other than the test's (heartbeats), which must not fail the test
// themselves.
func Do(method, url string, body []byte) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d %s", method, url, resp.StatusCode, b)
	}
	return nil
}

// Get reads a path of the server's Eureka API as JSON; a 404 (an application without
// instances) reads as "".
func Get(server, path string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, server+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s%s: %w", server, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "", fmt.Errorf("GET %s%s: %w", server, path, err)
	case resp.StatusCode == http.StatusNotFound:
		return "", nil
	case resp.StatusCode/100 != 2:
		return "", fmt.Errorf("GET %s%s: HTTP %d %s", server, path, resp.StatusCode, b)
	}
	return string(b), nil
}

// Register registers (or re-registers, as Spring Cloud does when metadata changes) an instance
// with the server at its Eureka base URL (".../eureka").
func Register(t testing.TB, server string, s Instance) {
	t.Helper()
	Call(t, http.MethodPost, server+"/apps/"+s.App, s.Body())
}

// Renew is a heartbeat: it renews the instance's lease.
func Renew(t testing.TB, server, app, id string) {
	t.Helper()
	Call(t, http.MethodPut, server+"/apps/"+app+"/"+id, nil)
}

// Cancel deregisters an instance.
func Cancel(t testing.TB, server, app, id string) {
	t.Helper()
	Call(t, http.MethodDelete, server+"/apps/"+app+"/"+id, nil)
}

// SetStatus overrides an instance's status (PUT), or removes the override (value "").
func SetStatus(t testing.TB, server, app, id, value string) {
	t.Helper()
	if value == "" {
		Call(t, http.MethodDelete, server+"/apps/"+app+"/"+id+"/status?value=UP", nil)
		return
	}
	Call(t, http.MethodPut, server+"/apps/"+app+"/"+id+"/status?value="+value, nil)
}
