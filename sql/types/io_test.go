package types

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shaledb/shaledb/sql/value"
)

// TestNumericBinaryRoundTrip: PostgreSQL's base-10000 binary numeric
// decodes to the same value with the same display scale, for random
// values of every magnitude and scale, and for the special values.
func TestNumericBinaryRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []string{"0", "0.00", "-0.5", "1", "10000", "9999.9999", "0.0001", "1e-20", "123456789012345678901234567890.123456789", "NaN", "Infinity", "-Infinity"}
	for i := 0; i < 5000; i++ {
		var sb strings.Builder
		if r.IntN(2) == 0 {
			sb.WriteByte('-')
		}
		for n := 1 + r.IntN(25); n > 0; n-- {
			sb.WriteByte(byte('0' + r.IntN(10)))
		}
		if r.IntN(3) > 0 {
			sb.WriteByte('.')
			for n := r.IntN(20); n >= 0; n-- {
				sb.WriteByte(byte('0' + r.IntN(10)))
			}
		}
		cases = append(cases, sb.String())
	}
	for _, c := range cases {
		n, err := value.ParseNumeric(c)
		if err != nil {
			t.Fatal(err)
		}
		enc := AppendBinary(nil, Numeric, n)
		got, err := ParseBinary(Numeric, enc)
		if err != nil {
			t.Fatalf("%s: decode: %v", c, err)
		}
		if got.String() != n.String() {
			t.Fatalf("%s: round trip gave %s (bytes % x)", c, got, enc)
		}
	}
	// Display scale survives: 1.50 stays 1.50.
	n, _ := value.ParseNumeric("1.50")
	got, _ := ParseBinary(Numeric, AppendBinary(nil, Numeric, n))
	if got.String() != "1.50" {
		t.Fatalf("scale lost: %s", got)
	}
}

func TestParseTextErrors(t *testing.T) {
	for _, c := range []struct {
		t    T
		in   string
		code string
	}{
		{Int4, "abc", "22P02"}, {Int4, "99999999999", "22003"}, {Int2, "40000", "22003"},
		{Bool, "maybe", "22P02"}, {Date, "2024-02-30", "22008"}, {UUID, "xyz", "22P02"},
		{Float8, "0x1p3", "22P02"}, {Numeric, "1_000", "22P02"}, {JSONB, "{", "22P02"},
	} {
		_, err := ParseText(c.t, c.in)
		if err == nil || !strings.Contains(fmt.Sprintf("%#v", err), c.code) {
			t.Errorf("ParseText(%s, %q) = %v, want SQLSTATE %s", c.t, c.in, err, c.code)
		}
	}
}
