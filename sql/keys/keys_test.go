package keys

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randTenant(r *rand.Rand) TenantID {
	edges := []TenantID{1, 2, 0xef, 0xf0, 0xff, 0x100, 0xffff, 0x10000, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	if r.IntN(3) == 0 {
		return edges[r.IntN(len(edges))]
	}
	for {
		if id := TenantID(r.Uint64() >> r.IntN(64)); id != 0 {
			return id
		}
	}
}

// TestTenantSpansAreDisjoint is the isolation property of the layout: no
// key of tenant N sorts inside tenant M's span, and spans are ordered as
// tenant ids are.
func TestTenantSpansAreDisjoint(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for i := 0; i < 50000; i++ {
		n, m := randTenant(r), randTenant(r)
		if n == m {
			continue
		}
		cn := MakeCodec(n)
		suffix := make([]byte, r.IntN(6))
		for j := range suffix {
			suffix[j] = []byte{0x00, 0xff, 0x01, 0xfe}[r.IntN(4)]
		}
		key := append(cn.IndexPrefix(TableID(r.Uint32()), IndexID(r.Uint32())), suffix...)
		structured := r.IntN(4) != 0
		if !structured {
			key = append(cn.TenantPrefix(), suffix...) // raw bytes after the tenant
		}
		ms, me := MakeCodec(m).TenantSpan()
		if bytes.Compare(key, ms) >= 0 && (me == nil || bytes.Compare(key, me) < 0) {
			t.Fatalf("key % x of tenant %d lies inside tenant %d's span [% x, % x)", key, n, m, ms, me)
		}
		ns, ne := cn.TenantSpan()
		if bytes.Compare(key, ns) < 0 || bytes.Compare(key, ne) >= 0 {
			t.Fatalf("key % x of tenant %d lies outside its own span", key, n)
		}
		if (n < m) != (bytes.Compare(ns, ms) < 0) {
			t.Fatalf("spans of tenants %d and %d are out of order", n, m)
		}
		if !structured {
			continue
		}
		d, err := DecodeTenantKey(key)
		if err != nil || d.Tenant != n {
			t.Fatalf("DecodeTenantKey(% x) = %+v, %v; want tenant %d", key, d, err, n)
		}
	}
}

func TestMetaBelowTenants(t *testing.T) {
	_, metaEnd := MetaSpan()
	first, _ := MakeCodec(1).TenantSpan()
	all, allEnd := AllTenantsSpan()
	if bytes.Compare(metaEnd, first) > 0 || bytes.Compare(metaEnd, all) > 0 {
		t.Fatal("metadata span overlaps tenant keys")
	}
	_, lastEnd := MakeCodec(math.MaxUint64).TenantSpan()
	if bytes.Compare(lastEnd, allEnd) > 0 {
		t.Fatalf("the largest tenant's span ends at % x, past all tenants' end % x", lastEnd, allEnd)
	}
	for _, k := range [][]byte{MetaFormatVersion(), MetaNextTenantID(), MetaTenantByName("acme"), MetaTenantByID(7)} {
		if _, err := DecodeTenantKey(k); !errors.Is(err, ErrBadKey) {
			t.Errorf("meta key % x decoded as a tenant key", k)
		}
	}
}

func TestZeroCodecPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("the zero Codec built a key")
		}
	}()
	var c Codec
	c.TablePrefix(FirstUserTableID)
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte{1, 2}, []byte{1, 3}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := PrefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("PrefixEnd(% x) = % x, want % x", c.in, got, c.want)
		}
	}
}

func FuzzDecodeTenantKey(f *testing.F) {
	f.Add(MakeCodec(5).IndexPrefix(100, 1))
	f.Add(append(MakeCodec(1<<40).IndexPrefix(7, 2), 0x20, 1))
	f.Add([]byte{0x02, 0xf0})
	f.Fuzz(func(t *testing.T, key []byte) {
		d, err := DecodeTenantKey(key)
		if err != nil {
			return
		}
		s, e := MakeCodec(d.Tenant).TenantSpan()
		if bytes.Compare(key, s) < 0 || bytes.Compare(key, e) >= 0 {
			t.Fatalf("key % x decoded as tenant %d but lies outside its span", key, d.Tenant)
		}
	})
}

func TestMetaIndexBuildRoundTrip(t *testing.T) {
	k := MetaIndexBuild(77, 1<<32-1, 3)
	start, end := MetaIndexBuildSpan()
	if bytes.Compare(k, start) < 0 || bytes.Compare(k, end) >= 0 {
		t.Fatalf("marker % x outside its span", k)
	}
	tn, tb, ix, err := DecodeMetaIndexBuild(k)
	if err != nil || tn != 77 || tb != 1<<32-1 || ix != 3 {
		t.Fatalf("decoded %d %d %d %v", tn, tb, ix, err)
	}
	for _, bad := range [][]byte{k[:len(k)-1], append(bytes.Clone(k), 0), MetaDroppingTenant(77), MetaIndexBuild(0, 1, 1)} {
		if _, _, _, err := DecodeMetaIndexBuild(bad); err == nil {
			t.Errorf("% x decoded", bad)
		}
	}
}

func TestTenantSplitKey(t *testing.T) {
	tenant := func(id TenantID) []byte { return MakeCodec(id).TenantPrefix() }
	row := func(id TenantID) []byte { return append(MakeCodec(id).TablePrefix(FirstUserTableID), 1, 2, 3) }
	for _, c := range []struct {
		name            string
		start, end, mid []byte
		want            []byte
	}{
		{"mid's tenant starts inside the span", nil, nil, row(7), tenant(7)},
		{"mid's tenant starts the span: split at its end", tenant(7), nil, row(7), tenant(8)},
		{"a tenant alone in its shard splits inside", tenant(7), tenant(8), row(7), row(7)},
		{"not at the span's start", row(7), tenant(8), row(7), nil},
		{"never inside the metadata", nil, nil, MetaNextTenantID(), tenant(2)},
		{"never between the metadata and the system tenant", nil, nil, row(SystemTenantID), tenant(2)},
		{"the end bounds the split", nil, tenant(7), row(9), nil},
		{"a big tenant id", tenant(2), nil, row(1 << 40), tenant(1 << 40)},
	} {
		if got := TenantSplitKey(c.start, c.end, c.mid); !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("%s: got % x, want % x", c.name, got, c.want)
		}
	}
}
