package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Modulo is a parsed "<header> % <divisor> <op> <n>" condition, kept as the range of remainders
// [Lo, Hi] it accepts.
type Modulo struct {
	Header  string
	Divisor uint64
	Lo, Hi  uint64
}

var moduloRE = regexp.MustCompile(`^\s*([A-Za-z0-9_.-]+)\s*%\s*([0-9]+)\s*(<=|>=|==|<|>)\s*([0-9]+)\s*$`)

// ParseModulo parses a modulo condition such as "user-id % 100 < 20". The divisor must be a power
// of ten from 10 to 1,000,000, because only then is the remainder a function of the value's last
// digits and the condition a compact regular expression (see Regex). The header name is
// lower-cased, as Istio requires.
func ParseModulo(s string) (Modulo, error) {
	m := moduloRE.FindStringSubmatch(s)
	if m == nil {
		return Modulo{}, fmt.Errorf("modulo %q: want \"<header> %% <divisor> <op> <n>\" with op one of <, <=, >, >=, ==", s)
	}
	div, err := strconv.ParseUint(m[2], 10, 64)
	if err != nil || div < 10 || div > 1_000_000 || !powerOfTen(div) {
		return Modulo{}, fmt.Errorf("modulo %q: divisor %s must be a power of ten from 10 to 1000000", s, m[2])
	}
	n, err := strconv.ParseUint(m[4], 10, 64)
	if err != nil {
		return Modulo{}, fmt.Errorf("modulo %q: %s is not a number", s, m[4])
	}
	lo, hi := uint64(0), div-1
	switch m[3] {
	case "<":
		if n == 0 {
			return Modulo{}, fmt.Errorf("modulo %q: no remainder is < 0", s)
		}
		hi = min(n-1, div-1)
	case "<=":
		hi = min(n, div-1)
	case ">":
		lo = n + 1
	case ">=":
		lo = n
	case "==":
		lo, hi = n, n
	}
	if lo > hi || lo > div-1 {
		return Modulo{}, fmt.Errorf("modulo %q: no remainder of %d satisfies it", s, div)
	}
	return Modulo{Header: strings.ToLower(m[1]), Divisor: div, Lo: lo, Hi: hi}, nil
}

func powerOfTen(n uint64) bool {
	for n > 1 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// Regex returns an RE2 expression matching exactly the header values that are non-negative
// decimal integers (ASCII digits only, leading zeros allowed, no sign, no spaces, any length)
// whose value modulo Divisor lies in [Lo, Hi]. With Divisor = 10^d the remainder is the number
// formed by the last d digits (all the digits when there are fewer), so the expression is: any
// digits followed by a d-digit group in range, or a shorter all-digit value in range. Values that
// are not decimal integers (empty, signed, hex, with spaces) never match, so those requests take
// the rule's other routes.
func (m Modulo) Regex() string {
	d := len(strconv.FormatUint(m.Divisor, 10)) - 1
	alts := []string{"[0-9]*" + rangeRE(m.Lo, m.Hi, d)}
	for w := 1; w < d; w++ {
		maxW := pow10(w) - 1
		if m.Lo > maxW {
			break
		}
		alts = append(alts, rangeRE(m.Lo, min(m.Hi, maxW), w))
	}
	return "^(?:" + strings.Join(alts, "|") + ")$"
}

func pow10(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

// rangeRE matches the w-digit (zero-padded) decimal strings whose value is in [lo, hi]
// (lo <= hi < 10^w).
func rangeRE(lo, hi uint64, w int) string {
	if w == 0 {
		return ""
	}
	p := pow10(w - 1)
	if lo == 0 && hi == pow10(w)-1 {
		if w == 1 {
			return "[0-9]"
		}
		return "[0-9]{" + strconv.Itoa(w) + "}"
	}
	a, b := lo/p, hi/p
	if a == b {
		return digit(a, a) + rangeRE(lo%p, hi%p, w-1)
	}
	var parts []string
	first, last := a, b
	if lo%p != 0 {
		parts = append(parts, digit(a, a)+rangeRE(lo%p, p-1, w-1))
		first = a + 1
	}
	tail := ""
	if hi%p != p-1 {
		tail = digit(b, b) + rangeRE(0, hi%p, w-1)
		last = b - 1
	}
	if first <= last {
		parts = append(parts, digit(first, last)+rangeRE(0, p-1, w-1))
	}
	if tail != "" {
		parts = append(parts, tail)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(?:" + strings.Join(parts, "|") + ")"
}

func digit(a, b uint64) string {
	if a == b {
		return strconv.FormatUint(a, 10)
	}
	return "[" + strconv.FormatUint(a, 10) + "-" + strconv.FormatUint(b, 10) + "]"
}
