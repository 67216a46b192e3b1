package eureka

import (
	"encoding/json"
	"slices"
	"strings"
)

// encodeMetadata renders metadata as one comparable string (sorted JSON object), so instances
// compare with ==. "@class" is Jackson's type marker, not metadata.
func encodeMetadata(md map[string]string) string {
	delete(md, "@class")
	if len(md) == 0 {
		return ""
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k)
		vj, _ := json.Marshal(md[k])
		b.Write(kj)
		b.WriteByte(':')
		b.Write(vj)
	}
	b.WriteByte('}')
	return b.String()
}

// decodeMetadata is the inverse of encodeMetadata.
func decodeMetadata(s string) map[string]string {
	out := map[string]string{}
	if s != "" {
		_ = json.Unmarshal([]byte(s), &out) // written by encodeMetadata: always valid
	}
	return out
}
