package history

import (
	"fmt"
	"strings"
)

// maxDiffCells bounds the LCS table of one diff (lines of a × lines of b after the common prefix
// and suffix are trimmed). Resource YAML differs in a few lines, so real diffs stay far below it;
// past it the changed middle is shown as removed-then-added instead of spending memory.
const maxDiffCells = 4 << 20

// Unified returns a unified diff (3 lines of context) from a to b, with the given file labels;
// "" when they are equal. It is a plain longest-common-subsequence line diff: the common prefix
// and suffix are trimmed first, so its cost is in the changed middle only.
func Unified(a, b, labelA, labelB string) string {
	if a == b {
		return ""
	}
	al, bl := splitLines(a), splitLines(b)
	ops := lineOps(al, bl)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", labelA, labelB)
	const ctx = 3
	// Group the edit script into hunks: runs of changes with up to 2*ctx equal lines between.
	i := 0
	for i < len(ops) {
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*ctx {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		h := ops[start:end]
		aStart, bStart := h[0].ai, h[0].bi
		var aN, bN int
		for _, o := range h {
			if o.kind != '+' {
				aN++
			}
			if o.kind != '-' {
				bN++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(aStart, aN), hunkRange(bStart, bN))
		for _, o := range h {
			sb.WriteByte(o.kind)
			sb.WriteString(o.text)
			sb.WriteByte('\n')
		}
		i = end
	}
	return sb.String()
}

// hunkRange is the "start,count" of a hunk header (1-based; an empty range names the line before).
func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

type op struct {
	kind   byte // ' ', '-', '+'
	text   string
	ai, bi int // position in a and b before this line
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// lineOps is the edit script turning a into b.
func lineOps(a, b []string) []op {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ops := make([]op, 0, len(a)+len(b))
	for k := 0; k < pre; k++ {
		ops = append(ops, op{' ', a[k], k, k})
	}
	am, bm := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(am), len(bm)
	if n > 0 && m > 0 && n*m <= maxDiffCells {
		// lcs[i][j] = LCS length of am[i:] and bm[j:], one flat slice.
		w := m + 1
		lcs := make([]int32, (n+1)*w)
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if am[i] == bm[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && am[i] == bm[j]:
				ops = append(ops, op{' ', am[i], pre + i, pre + j})
				i, j = i+1, j+1
			case i < n && (j == m || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
				// Removals before additions, as diff(1) prints them.
				ops = append(ops, op{'-', am[i], pre + i, pre + j})
				i++
			default:
				ops = append(ops, op{'+', bm[j], pre + i, pre + j})
				j++
			}
		}
	} else {
		for i := range am {
			ops = append(ops, op{'-', am[i], pre + i, pre})
		}
		for j := range bm {
			ops = append(ops, op{'+', bm[j], pre + n, pre + j})
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, op{' ', a[len(a)-suf+k], len(a) - suf + k, len(b) - suf + k})
	}
	return ops
}
