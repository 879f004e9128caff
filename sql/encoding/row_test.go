package encoding

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shaledb/shaledb/sql/value"
)

var rowKinds = append(append([]value.Kind(nil), keyableKinds...), value.KindJSONB)

func randRowValue(r *rand.Rand, k value.Kind) value.Value {
	if k == value.KindJSONB {
		if r.IntN(8) == 0 {
			return value.Null{}
		}
		return value.JSONB(`{"a":` + value.Int(r.IntN(100)).String() + `}`)
	}
	return randValue(r, k)
}

// sameRowValue is exact equality as a row must keep it: float bits (NaN
// payload aside, -0 kept) and numeric display scale included.
func sameRowValue(a, b value.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	switch a := a.(type) {
	case value.Float:
		fa, fb := float64(a), float64(b.(value.Float))
		if math.IsNaN(fa) {
			return math.IsNaN(fb)
		}
		return math.Float64bits(fa) == math.Float64bits(fb)
	case value.Numeric:
		bd := b.(value.Numeric).Dec
		return a.Dec.Form == bd.Form && a.Dec.Negative == bd.Negative &&
			(a.Dec.Form != 0 || a.Dec.Exponent == bd.Exponent && a.Dec.Coeff.Cmp(&bd.Coeff) == 0)
	}
	return a.String() == b.String()
}

func TestRowRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for i := 0; i < 5000; i++ {
		type col struct {
			id ColumnID
			v  value.Value
		}
		var cols []col
		id := ColumnID(0)
		for n := r.IntN(12); n > 0; n-- {
			id += ColumnID(1 + r.IntN(300))
			cols = append(cols, col{id, randRowValue(r, rowKinds[r.IntN(len(rowKinds))])})
		}
		var b []byte
		prev := ColumnID(0)
		for _, c := range cols {
			b = AppendRowColumn(b, prev, c.id, c.v)
			prev = c.id
		}
		var got []col
		if err := DecodeRow(b, func(id ColumnID, v value.Value) error {
			got = append(got, col{id, v})
			return nil
		}); err != nil {
			t.Fatalf("DecodeRow: %v", err)
		}
		if len(got) != len(cols) {
			t.Fatalf("decoded %d columns, want %d", len(got), len(cols))
		}
		for j := range cols {
			if got[j].id != cols[j].id || !sameRowValue(got[j].v, cols[j].v) {
				t.Fatalf("column %d: got %d=%v, want %d=%v", j, got[j].id, got[j].v, cols[j].id, cols[j].v)
			}
		}
	}
}

// TestRowSkipsUnknownColumns: a reader that knows only some columns (after
// DROP COLUMN) still reads those, and a column added later is simply absent.
func TestRowSkipsUnknownColumns(t *testing.T) {
	scale, _ := value.ParseNumeric("12.3400")
	var b []byte
	b = AppendRowColumn(b, 0, 1, value.Int(7))
	b = AppendRowColumn(b, 1, 2, value.Text("dropped"))
	b = AppendRowColumn(b, 2, 5, scale)
	b = AppendRowColumn(b, 5, 9, value.Null{})
	want := map[ColumnID]string{1: "7", 5: "12.3400", 9: "NULL"}
	seen := map[ColumnID]string{}
	if err := DecodeRow(b, func(id ColumnID, v value.Value) error {
		if _, ok := want[id]; ok {
			seen[id] = v.String()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		if seen[id] != w {
			t.Errorf("column %d = %q, want %q", id, seen[id], w)
		}
	}
	if _, ok := seen[12]; ok {
		t.Error("a column the row never had was found")
	}
}

func TestRowCorrupt(t *testing.T) {
	good := AppendRowColumn(nil, 0, 3, value.Text("hello"))
	for i := 0; i < len(good); i++ {
		if err := DecodeRow(good[:i], func(ColumnID, value.Value) error { return nil }); i > 0 && err == nil {
			t.Errorf("truncation at %d not detected", i)
		}
	}
	if err := DecodeRow([]byte{1, 200}, func(ColumnID, value.Value) error { return nil }); err == nil {
		t.Error("unknown tag not detected")
	}
}

func FuzzDecodeRow(f *testing.F) {
	n, _ := value.ParseNumeric("-1.250")
	f.Add(AppendRowColumn(AppendRowColumn(nil, 0, 1, value.Int(-5)), 1, 4, n))
	f.Add(AppendRowColumn(nil, 0, 2, value.Text("x\x00y")))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var prev ColumnID
		var re []byte
		err := DecodeRow(b, func(id ColumnID, v value.Value) error {
			re = AppendRowColumn(re, prev, id, v)
			prev = id
			return nil
		})
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		var again []value.Value
		if err := DecodeRow(re, func(_ ColumnID, v value.Value) error { again = append(again, v); return nil }); err != nil {
			t.Fatalf("re-encoded row does not decode: %v", err)
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, k := range keyableKinds {
		for i := 0; i < 3; i++ {
			b, _ := AppendKey(nil, randValue(r, k), Direction(i%2))
			f.Add(b, uint8(i%2))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, d uint8) {
		dir := Direction(d % 2)
		v, rest, err := DecodeKey(b, dir)
		if err != nil {
			return
		}
		enc, err := AppendKey(nil, v, dir)
		if err != nil {
			t.Fatalf("decoded %v cannot be re-encoded: %v", v, err)
		}
		// The re-encoding decodes to an equal value and is no longer than
		// what was consumed (non-canonical input, e.g. NaN payloads or
		// numeric pads, may be longer).
		v2, rest2, err := DecodeKey(enc, dir)
		if err != nil || len(rest2) != 0 || value.Compare(v, v2) != 0 {
			t.Fatalf("re-decode of %v: %v %v %v", v, v2, rest2, err)
		}
		if len(enc) > len(b)-len(rest) {
			t.Fatalf("re-encoding of %v is longer than its input", v)
		}
	})
}

func FuzzDecodeUvarint(f *testing.F) {
	f.Add(AppendUvarint(nil, 0))
	f.Add(AppendUvarint(nil, 1<<40))
	f.Add([]byte{0xf7, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := DecodeUvarint(b)
		if err != nil {
			return
		}
		if enc := AppendUvarint(nil, v); !bytes.Equal(enc, b[:len(b)-len(rest)]) {
			t.Fatalf("decoded %d from % x but it encodes as % x", v, b[:len(b)-len(rest)], enc)
		}
	})
}
