package rules

import (
	"math/big"
	"regexp"
	"strconv"
	"testing"
)

// TestModuloRegexExhaustive checks the compiled regex against arithmetic for every value up to
// 25,000 (and zero-padded and long forms) for a range of conditions.
func TestModuloRegexExhaustive(t *testing.T) {
	for _, expr := range []string{
		"user-id % 100 < 20", "user-id % 100 >= 20", "u % 10 == 7", "u % 1000 <= 999", "u % 1000 > 0",
		"u % 100 == 0", "u % 10000 < 1234", "u % 1000 > 450", "u % 100 > 5",
	} {
		m, err := ParseModulo(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		re := regexp.MustCompile(m.Regex())
		for n := uint64(0); n < 25000; n++ {
			want := n%m.Divisor >= m.Lo && n%m.Divisor <= m.Hi
			for _, s := range []string{strconv.FormatUint(n, 10), "000" + strconv.FormatUint(n, 10)} {
				if got := re.MatchString(s); got != want {
					t.Fatalf("%s: regex %s on %q = %v, want %v", expr, m.Regex(), s, got, want)
				}
			}
		}
		for _, s := range []string{"", "-20", "+1", " 1", "1 ", "0x10", "1.5", "abc"} {
			if re.MatchString(s) {
				t.Errorf("%s: regex matches non-integer %q", expr, s)
			}
		}
	}
}

func TestParseModuloErrors(t *testing.T) {
	for _, expr := range []string{"user-id % 7 < 3", "user-id % 100 < 0", "user-id % 100 > 99", "user-id % 100 ~ 3", "% 100 < 3", "x % 100 == 100"} {
		if _, err := ParseModulo(expr); err == nil {
			t.Errorf("%q: no error", expr)
		}
	}
}

func FuzzModulo(f *testing.F) {
	f.Add("user-id % 100 < 20", "120")
	f.Add("u % 1000 >= 333", "000999")
	f.Add("u % 10 == 3", "12345678901234567890123")
	f.Fuzz(func(t *testing.T, expr, value string) {
		m, err := ParseModulo(expr)
		if err != nil {
			return
		}
		re, err := regexp.Compile(m.Regex())
		if err != nil {
			t.Fatalf("%s: bad regex %s: %v", expr, m.Regex(), err)
		}
		n, ok := new(big.Int).SetString(value, 10)
		isInt := ok && value != "" && regexp.MustCompile(`^[0-9]+$`).MatchString(value)
		want := false
		if isInt {
			r := new(big.Int).Mod(n, new(big.Int).SetUint64(m.Divisor)).Uint64()
			want = r >= m.Lo && r <= m.Hi
		}
		if got := re.MatchString(value); got != want {
			t.Fatalf("%s on %q: regex %s says %v, want %v", expr, value, m.Regex(), got, want)
		}
	})
}
