package registry

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a credential the configuration refers to but never contains: the name of a file
// holding it (a mounted Kubernetes Secret) or of an environment variable. Its value is read when
// an adapter connects and is never logged, rendered on a status page or marshalled.
type Secret struct {
	// File is a path whose content (trailing newline trimmed) is the secret.
	File string `json:"file,omitempty" yaml:"file,omitempty"`
	// Env names an environment variable holding the secret.
	Env string `json:"env,omitempty" yaml:"env,omitempty"`
}

// IsZero reports whether no source is configured.
func (s Secret) IsZero() bool { return s.File == "" && s.Env == "" }

// Validate checks that at most one source is set.
func (s Secret) Validate() error {
	if s.File != "" && s.Env != "" {
		return fmt.Errorf("set either file or env, not both")
	}
	return nil
}

// Read returns the secret's value. An unset Secret reads as "". A configured source that is
// missing or empty is an error naming the source (never the value).
func (s Secret) Read() (string, error) {
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", s.Env)
		}
		return v, nil
	}
	return "", nil
}

// String describes where the secret comes from, for status pages: never its value.
func (s Secret) String() string {
	switch {
	case s.File != "":
		return "file:" + s.File
	case s.Env != "":
		return "env:" + s.Env
	}
	return "unset"
}
