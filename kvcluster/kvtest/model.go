package kvtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
)

// The model test runs seeded random interleavings of transactions (up to
// three open at once: gets, scans in both directions with random bounds and
// limits, puts, deletes, commits, rollbacks) against the store and against
// a reference model of snapshot isolation with first-committer-wins, and
// fails at the first result that differs. One goroutine drives it, so every
// run of a seed is the same sequence on every implementation.

// model is the reference: committed versions of a small key universe.
type model struct {
	committed map[string]string
	lastWrite map[string]int // key -> commit sequence number
	seq       int
}

type modelTxn struct {
	real     kvcluster.Txn
	snapshot map[string]string
	startSeq int
	writes   map[string]*string // nil value: deleted
}

func (m *model) begin() *modelTxn {
	return &modelTxn{snapshot: maps(m.committed), startSeq: m.seq, writes: map[string]*string{}}
}

func maps(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func (t *modelTxn) view() map[string]string {
	v := maps(t.snapshot)
	for k, w := range t.writes {
		if w == nil {
			delete(v, k)
		} else {
			v[k] = *w
		}
	}
	return v
}

// commit applies t to m, or reports a conflict.
func (m *model) commit(t *modelTxn) bool {
	for k := range t.writes {
		if m.lastWrite[k] > t.startSeq {
			return false
		}
	}
	if len(t.writes) == 0 {
		return true
	}
	m.seq++
	for k, w := range t.writes {
		m.lastWrite[k] = m.seq
		if w == nil {
			delete(m.committed, k)
		} else {
			m.committed[k] = *w
		}
	}
	return true
}

func testModel(t *testing.T, s *suite, p prefix) {
	for seed := uint64(1); seed <= 12; seed++ {
		runModel(t, s, prefix(fmt.Sprintf("%s%02d/", p, seed)), seed, 400)
	}
}

func runModel(t *testing.T, s *suite, p prefix, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 99))
	m := &model{committed: map[string]string{}, lastWrite: map[string]int{}}
	universe := make([]string, 24)
	for i := range universe {
		universe[i] = fmt.Sprintf("%02d", i)
	}
	var open []*modelTxn
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s\ntrace:\n  %s", seed, len(trace), fmt.Sprintf(format, args...), strings.Join(trace, "\n  "))
	}
	defer func() {
		for _, mt := range open {
			mt.real.Rollback()
		}
	}()
	for step := 0; step < steps; step++ {
		if len(open) == 0 || len(open) < 3 && r.IntN(6) == 0 {
			mt := m.begin()
			mt.real = s.begin(t)
			open = append(open, mt)
			trace = append(trace, fmt.Sprintf("begin t%d", len(open)-1))
			continue
		}
		i := r.IntN(len(open))
		mt := open[i]
		k := universe[r.IntN(len(universe))]
		switch op := r.IntN(20); {
		case op < 5: // get
			v, found, err := mt.real.Get(ctx, p.key(k))
			want, wantFound := mt.view()[k]
			trace = append(trace, fmt.Sprintf("t%d get %s -> %q %v", i, k, v, found))
			if err != nil || found != wantFound || string(v) != want {
				fail("get %s = %q %v %v; model says %q %v", k, v, found, err, want, wantFound)
			}
		case op < 8: // scan
			lo, hi := universe[r.IntN(len(universe))], universe[r.IntN(len(universe))]
			if lo > hi {
				lo, hi = hi, lo
			}
			limit, reverse := 1+r.IntN(10), r.IntN(2) == 0
			got, err := mt.real.Scan(ctx, p.key(lo), p.key(hi), kvcluster.ScanOptions{Limit: limit, Reverse: reverse})
			var want []string
			for key, val := range mt.view() {
				if key >= lo && key < hi {
					want = append(want, key+"="+val)
				}
			}
			slices.Sort(want)
			if reverse {
				slices.Reverse(want)
			}
			want = want[:min(limit, len(want))]
			var gotS []string
			for _, e := range got {
				gotS = append(gotS, strings.TrimPrefix(string(e.Key), string(p))+"="+string(e.Value))
			}
			trace = append(trace, fmt.Sprintf("t%d scan [%s,%s) limit %d reverse %v -> %v", i, lo, hi, limit, reverse, gotS))
			if err != nil || !slices.Equal(gotS, want) {
				fail("scan = %v %v; model says %v", gotS, err, want)
			}
		case op < 13: // put
			v := fmt.Sprintf("v%d", step)
			if err := mt.real.Put(ctx, p.key(k), []byte(v)); err != nil {
				fail("put: %v", err)
			}
			mt.writes[k] = &v
			trace = append(trace, fmt.Sprintf("t%d put %s=%s", i, k, v))
		case op < 15: // delete
			if err := mt.real.Delete(ctx, p.key(k)); err != nil {
				fail("delete: %v", err)
			}
			mt.writes[k] = nil
			trace = append(trace, fmt.Sprintf("t%d delete %s", i, k))
		case op < 19: // commit
			err := mt.real.Commit(ctx)
			ok := m.commit(mt)
			trace = append(trace, fmt.Sprintf("t%d commit -> %v", i, err))
			switch {
			case ok && err != nil:
				fail("commit failed (%v); the model says it commits", err)
			case !ok && !errors.Is(err, kvcluster.ErrWriteConflict):
				fail("commit returned %v; the model says it conflicts", err)
			}
			open = slices.Delete(open, i, i+1)
		default: // rollback
			mt.real.Rollback()
			trace = append(trace, fmt.Sprintf("t%d rollback", i))
			open = slices.Delete(open, i, i+1)
		}
		if len(trace) > 40 {
			trace = trace[len(trace)-40:]
		}
	}
}
