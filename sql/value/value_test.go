package value

import (
	"math"
	"testing"
)

func TestParseNumericAndString(t *testing.T) {
	for in, want := range map[string]string{
		"1.50": "1.50", "-0.001": "-0.001", "NaN": "NaN", "nan": "NaN",
		"Infinity": "Infinity", "-Infinity": "-Infinity", "1e3": "1000", "0.000": "0.000",
	} {
		n, err := ParseNumeric(in)
		if err != nil {
			t.Fatalf("ParseNumeric(%q): %v", in, err)
		}
		if got := n.String(); got != want {
			t.Errorf("ParseNumeric(%q).String() = %q, want %q", in, got, want)
		}
	}
	if _, err := ParseNumeric("1.2.3"); err == nil {
		t.Error("bad numeric accepted")
	}
}

func TestCompareSpecials(t *testing.T) {
	nan, _ := ParseNumeric("NaN")
	inf, _ := ParseNumeric("Infinity")
	one, _ := ParseNumeric("1.0")
	oneB, _ := ParseNumeric("1")
	cases := []struct {
		a, b Value
		want int
	}{
		{Null{}, Int(1), 1},
		{Int(1), Null{}, -1},
		{Null{}, Null{}, 0},
		{Float(math.NaN()), Float(math.Inf(1)), 1},
		{Float(math.NaN()), Float(math.NaN()), 0},
		{Float(math.Copysign(0, -1)), Float(0), 0},
		{nan, inf, 1},
		{one, oneB, 0},
		{Text("a"), Text("B"), 1}, // C collation: bytes
		{Date(math.MinInt32), Date(0), -1},
	}
	for _, c := range cases {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[Value]string{
		Date(0):                    "2000-01-01",
		Timestamp(1_500_000):       "2000-01-01 00:00:01.5",
		TimestampTZ(math.MaxInt64): "infinity",
		Bool(true):                 "t",
		UUID{0xa0, 0xee, 15: 1}:    "a0ee0000-0000-0000-0000-000000000001",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
}
