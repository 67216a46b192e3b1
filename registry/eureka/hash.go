package eureka

import (
	"slices"
	"strconv"
	"strings"
)

// hashCode is Netflix's Applications.getReconcileHashCode: every instance counted by status,
// counts above zero kept, sorted by status name, written "STATUS_count_" one after the other
// ("DOWN_2_UP_10_"). The server sends it with every answer (apps__hashcode); a client whose state
// after applying a delta hashes differently has missed something and fetches everything.
func hashCode(counts map[string]int) string {
	statuses := make([]string, 0, len(counts))
	for s, n := range counts {
		if n > 0 {
			statuses = append(statuses, s)
		}
	}
	slices.Sort(statuses)
	var b strings.Builder
	for _, s := range statuses {
		b.WriteString(s)
		b.WriteByte('_')
		b.WriteString(strconv.Itoa(counts[s]))
		b.WriteByte('_')
	}
	return b.String()
}
