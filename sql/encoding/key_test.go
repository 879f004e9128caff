package encoding

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shaledb/shaledb/sql/value"
)

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func mustKey(t testing.TB, v value.Value, dir Direction) []byte {
	t.Helper()
	b, err := AppendKey(nil, v, dir)
	if err != nil {
		t.Fatalf("AppendKey(%v): %v", v, err)
	}
	return b
}

// TestKeyOrderMatchesValueOrder is the core property: for every keyable
// kind, bytes.Compare of encodings equals value.Compare of values, and is
// its opposite for descending encodings.
func TestKeyOrderMatchesValueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, k := range keyableKinds {
		for i := 0; i < 20000; i++ {
			a, b := randValue(r, k), randValue(r, k)
			if r.IntN(10) == 0 {
				b = a
			}
			want := sign(value.Compare(a, b))
			if got := sign(bytes.Compare(mustKey(t, a, Ascending), mustKey(t, b, Ascending))); got != want {
				t.Fatalf("%s ascending: compare(%v, %v) = %d, want %d", k, a, b, got, want)
			}
			if got := sign(bytes.Compare(mustKey(t, a, Descending), mustKey(t, b, Descending))); got != -want {
				t.Fatalf("%s descending: compare(%v, %v) = %d, want %d", k, a, b, got, -want)
			}
		}
	}
}

// TestKeyRoundTrip: decoding inverts encoding (up to equality: -0 decodes
// as 0 and a numeric loses its display scale, as in an index), consumes
// exactly the encoding, and leaves what follows.
func TestKeyRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, k := range keyableKinds {
		for i := 0; i < 5000; i++ {
			v := randValue(r, k)
			for _, dir := range []Direction{Ascending, Descending} {
				enc := mustKey(t, v, dir)
				tail := []byte("tail\x00\xff")
				got, rest, err := DecodeKey(append(enc, tail...), dir)
				if err != nil {
					t.Fatalf("%s %v dir %d: decode: %v", k, v, dir, err)
				}
				if !bytes.Equal(rest, tail) {
					t.Fatalf("%s %v dir %d: rest = %q", k, v, dir, rest)
				}
				if got.Kind() != v.Kind() || value.Compare(got, v) != 0 {
					t.Fatalf("%s dir %d: decoded %v, want %v", k, dir, got, v)
				}
				if k != value.KindNumeric && k != value.KindFloat && got.String() != v.String() {
					t.Fatalf("%s dir %d: decoded %v, want exactly %v", k, dir, got, v)
				}
				if !bytes.Equal(mustKey(t, got, dir), enc) {
					t.Fatalf("%s %v: re-encoding the decoded value differs", k, v)
				}
			}
		}
	}
}

// TestCompositeKeyOrder: keys of several columns, mixed directions, sort as
// tuples compare column by column.
func TestCompositeKeyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for i := 0; i < 20000; i++ {
		kinds := []value.Kind{keyableKinds[r.IntN(len(keyableKinds))], keyableKinds[r.IntN(len(keyableKinds))]}
		dirs := []Direction{Direction(r.IntN(2)), Direction(r.IntN(2))}
		tuple := func() []value.Value {
			return []value.Value{randValue(r, kinds[0]), randValue(r, kinds[1])}
		}
		a, b := tuple(), tuple()
		if r.IntN(3) == 0 {
			b[0] = a[0]
		}
		want := 0
		for c := range a {
			if x := sign(value.Compare(a[c], b[c])); x != 0 {
				if dirs[c] == Descending {
					x = -x
				}
				want = x
				break
			}
		}
		var ka, kb []byte
		for c := range a {
			ka = append(ka, mustKey(t, a[c], dirs[c])...)
			kb = append(kb, mustKey(t, b[c], dirs[c])...)
		}
		if got := sign(bytes.Compare(ka, kb)); got != want {
			t.Fatalf("tuple %v vs %v (dirs %v): got %d want %d", a, b, dirs, got, want)
		}
	}
}

func TestKeyEdgeCases(t *testing.T) {
	negZero := math.Copysign(0, -1)
	if !bytes.Equal(mustKey(t, value.Float(negZero), Ascending), mustKey(t, value.Float(0), Ascending)) {
		t.Error("-0 and 0 must encode equal")
	}
	nan2 := math.Float64frombits(0xfff8000000000001)
	if !bytes.Equal(mustKey(t, value.Float(nan2), Ascending), mustKey(t, value.Float(math.NaN()), Ascending)) {
		t.Error("all NaNs must encode equal")
	}
	if bytes.Compare(mustKey(t, value.Float(math.Inf(1)), Ascending), mustKey(t, value.Float(math.NaN()), Ascending)) >= 0 {
		t.Error("NaN must sort above +Inf")
	}
	a, _ := value.ParseNumeric("1.50")
	b, _ := value.ParseNumeric("1.5")
	if !bytes.Equal(mustKey(t, a, Ascending), mustKey(t, b, Ascending)) {
		t.Error("1.50 and 1.5 must encode equal")
	}
	for _, dir := range []Direction{Ascending, Descending} {
		null := mustKey(t, value.Null{}, dir)
		big := mustKey(t, value.Text("\xff\xff\xff"), dir)
		if (bytes.Compare(null, big) > 0) != (dir == Ascending) {
			t.Errorf("direction %d: NULL must sort last ascending and first descending", dir)
		}
	}
	if _, err := AppendKey(nil, value.JSONB(`{}`), Ascending); !errors.Is(err, ErrNotKeyable) {
		t.Errorf("jsonb key: got %v, want ErrNotKeyable", err)
	}
}

func TestUvarintOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	edges := []uint64{0, 1, 0xee, 0xef, 0xf0, 0xff, 0x100, 0xffff, 0x10000, math.MaxUint32, math.MaxUint64 - 1, math.MaxUint64}
	gen := func() uint64 {
		if r.IntN(3) == 0 {
			return edges[r.IntN(len(edges))]
		}
		return r.Uint64() >> r.IntN(64)
	}
	for i := 0; i < 50000; i++ {
		a, b := gen(), gen()
		ea, eb := AppendUvarint(nil, a), AppendUvarint(nil, b)
		want := 0
		if a < b {
			want = -1
		} else if a > b {
			want = 1
		}
		if got := bytes.Compare(ea, eb); got != want {
			t.Fatalf("uvarint %d vs %d: got %d", a, b, got)
		}
		got, rest, err := DecodeUvarint(append(ea, 7))
		if err != nil || got != a || !bytes.Equal(rest, []byte{7}) {
			t.Fatalf("uvarint %d round trip: %d %v %v", a, got, rest, err)
		}
	}
}

func ExampleAppendKey() {
	k, _ := AppendKey(nil, value.Int(-1), Ascending)
	k, _ = AppendKey(k, value.Text("a\x00b"), Descending)
	fmt.Printf("% x\n", k)
	// Output: 20 7f ff ff ff ff ff ff ff bf 9e ff 00 9d ff fe
}
