package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
)

// requireToken lets a request through only with "Authorization: Bearer <token>". /healthz and
// /readyz stay open: they say nothing about the estate and probes carry no token.
func requireToken(next http.Handler, token func() (string, error), log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		want, err := token()
		if err != nil || want == "" {
			// The error names the token's source, never its value.
			log.Error("admin token unreadable: refusing the request", "error", err)
			http.Error(w, "admin token unreadable; see the bridge's log", http.StatusInternalServerError)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Compare digests in constant time: neither the token's content nor its length leaks.
		if g, wt := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want)); !ok || subtle.ConstantTimeCompare(g[:], wt[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcp-bridge admin"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <admin.token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
