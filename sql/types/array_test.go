package types

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/shaledb/shaledb/sql/value"
)

func TestArrayBinaryLayout(t *testing.T) {
	int4s, _ := ArrayOf(Int4)
	v := value.Array{Elems: []value.Value{value.Int(1), value.Null{}}}
	// array_send of '{1,NULL}'::int4[], as PostgreSQL 15 sends it.
	want, _ := hex.DecodeString("00000001" + "00000001" + "00000017" + "00000002" + "00000001" + "00000004" + "00000001" + "ffffffff")
	got := AppendBinary(nil, int4s, v)
	if !bytes.Equal(got, want) {
		t.Fatalf("binary %x, want %x", got, want)
	}
	back, err := ParseBinary(int4s, got)
	if err != nil || value.Compare(back, v) != 0 {
		t.Fatalf("ParseBinary = %v, %v", back, err)
	}
	empty := AppendBinary(nil, int4s, value.Array{})
	if want, _ := hex.DecodeString("000000000000000000000017"); !bytes.Equal(empty, want) {
		t.Fatalf("empty array binary %x", empty)
	}
}

func TestArrayTextRoundTrip(t *testing.T) {
	texts, _ := ArrayOf(Text)
	for _, in := range []string{`{}`, `{a,b}`, `{"",NULL,"NULL","a b","x\"y","c,d","\\"}`, `{"{}"}`} {
		v, err := ParseText(texts, in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if out := string(AppendText(nil, texts, v)); out != in {
			t.Errorf("%s printed as %s", in, out)
		}
		bin := AppendBinary(nil, texts, v)
		back, err := ParseBinary(texts, bin)
		if err != nil || value.Compare(back, v) != 0 {
			t.Errorf("%s: binary round trip %v, %v", in, back, err)
		}
	}
	for _, bad := range []string{`{a`, `a}`, `{a}x`, `{{a}}`, `{,}`, `{"a}`} {
		if _, err := ParseText(texts, bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	for _, bad := range [][]byte{{0, 0, 0, 1}, {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1}} {
		if _, err := ParseBinary(texts, bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
}

// FuzzParseArray feeds untrusted array input, text and binary, as clients
// send it in Bind messages: errors are fine, panics are not, and what
// parses prints back to something that parses to the same value.
func FuzzParseArray(f *testing.F) {
	f.Add([]byte(`{a,"b c",NULL}`), true)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'x'}, false)
	texts, _ := ArrayOf(Text)
	ints, _ := ArrayOf(Int4)
	f.Fuzz(func(t *testing.T, in []byte, text bool) {
		for _, ty := range []T{texts, ints} {
			var v value.Value
			var err error
			if text {
				v, err = ParseText(ty, string(in))
			} else {
				v, err = ParseBinary(ty, in)
			}
			if err != nil {
				continue
			}
			back, err := ParseText(ty, string(AppendText(nil, ty, v)))
			if err != nil || value.Compare(back, v) != 0 {
				t.Fatalf("%q: printed form reparsed as %v, %v", in, back, err)
			}
		}
	})
}
