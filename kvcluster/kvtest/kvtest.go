// Package kvtest is the conformance suite for kvcluster.KvCluster. Every
// implementation runs it unchanged from its own tests:
//
//	func TestConformance(t *testing.T) {
//		kvtest.Run(t, func(t testing.TB) kvcluster.KvCluster { ... })
//	}
//
// The suite checks the contract written in package kvcluster's doc comment:
// key order, scan bounds and limits in both directions, read-your-writes,
// atomicity, snapshot isolation, first-committer-wins, concurrency (run it
// with -race), size limits and behaviour after Close, and seeded random
// interleavings of transactions against a reference model (model.go). Subtests share one
// store and keep to key prefixes of their own, so a store that is costly to
// start (a raft cluster) is started twice, not once per subtest.
package kvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// Opener returns a new, empty, open store. The suite closes what it opens.
type Opener func(t testing.TB) kvcluster.KvCluster

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	kv := open(t)
	t.Cleanup(func() { _ = kv.Close() })
	s := &suite{kv: kv}
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite, p prefix)
	}{
		{"EmptyStore", testEmpty},
		{"ArbitraryKeyOrder", testKeyOrder},
		{"ScanBounds", testScanBounds},
		{"ScanLimitsAndPaging", testScanPaging},
		{"ReadYourWrites", testReadYourWrites},
		{"ReadYourWritesScanMerge", testScanMerge},
		{"RollbackLeavesNothing", testRollback},
		{"FailedClosureLeavesNothing", testFailedClosure},
		{"SnapshotReads", testSnapshot},
		{"WriteWriteConflict", testConflict},
		{"BlindWriteConflict", testBlindConflict},
		{"DeleteConflicts", testDeleteConflict},
		{"DisjointWritesBothCommit", testDisjoint},
		{"LaterTxnDoesNotConflict", testNoFalseConflict},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"BankInvariant", testBank},
		{"LargeKeysAndValues", testLarge},
		{"InvalidArguments", testInvalid},
		{"TxnLifecycle", testLifecycle},
		{"ContextCancelled", testContext},
		{"ModelBasedInterleavings", testModel},
		{"LockWaitsAndSeesLatest", testLockWaitsAndSeesLatest},
		{"LockedIncrementsNeedNoRetry", testLockedIncrementsNeedNoRetry},
		{"DeadlockDetected", testDeadlockDetected},
		{"LockWaitCancelled", testLockWaitCancelled},
		{"GetAndLock", testGetAndLock},
	}
	for i, tc := range tests {
		p := prefix(fmt.Sprintf("kvtest/%02d/", i))
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s, p) })
	}
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
}

type suite struct{ kv kvcluster.KvCluster }

// prefix keeps one subtest's keys apart from the others'.
type prefix string

func (p prefix) key(s string) []byte { return []byte(string(p) + s) }
func (p prefix) end() []byte         { return []byte(string(p[:len(p)-1]) + string(rune(p[len(p)-1]+1))) }

var ctx = context.Background()

func (s *suite) begin(t testing.TB) kvcluster.Txn {
	t.Helper()
	txn, err := s.kv.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	t.Cleanup(txn.Rollback)
	return txn
}

func (s *suite) put(t testing.TB, kvs ...string) {
	t.Helper()
	txn := s.begin(t)
	for i := 0; i < len(kvs); i += 2 {
		mustPut(t, txn, []byte(kvs[i]), []byte(kvs[i+1]))
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func (s *suite) get(t testing.TB, key []byte) (string, bool) {
	t.Helper()
	txn := s.begin(t)
	defer txn.Rollback()
	v, ok, err := txn.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), ok
}

func (s *suite) scan(t testing.TB, start, end []byte, limit int, reverse bool) []kvcluster.KeyValue {
	t.Helper()
	txn := s.begin(t)
	defer txn.Rollback()
	return mustScan(t, txn, start, end, limit, reverse)
}

func mustPut(t testing.TB, txn kvcluster.Txn, k, v []byte) {
	t.Helper()
	if err := txn.Put(ctx, k, v); err != nil {
		t.Fatalf("Put(%q): %v", k, err)
	}
}

func mustScan(t testing.TB, txn kvcluster.Txn, start, end []byte, limit int, reverse bool) []kvcluster.KeyValue {
	t.Helper()
	kvs, err := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: limit, Reverse: reverse})
	if err != nil {
		t.Fatalf("Scan(%q, %q, %d, %v): %v", start, end, limit, reverse, err)
	}
	return kvs
}

func keysOf(kvs []kvcluster.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

func wantKeys(t testing.TB, what string, got []kvcluster.KeyValue, want []string) {
	t.Helper()
	if g := keysOf(got); !slices.Equal(g, want) {
		t.Fatalf("%s: got keys %q, want %q", what, g, want)
	}
}

func testEmpty(t *testing.T, s *suite, p prefix) {
	if _, ok := s.get(t, p.key("nothing")); ok {
		t.Fatal("Get of a never-written key found a value")
	}
	wantKeys(t, "scan of empty range", s.scan(t, p.key(""), p.end(), 10, false), []string{})
	wantKeys(t, "reverse scan of empty range", s.scan(t, p.key(""), p.end(), 10, true), []string{})
}

// testKeyOrder writes random binary keys (zero bytes, 0xff bytes, prefixes of
// one another) and checks scans return them in bytes.Compare order.
func testKeyOrder(t *testing.T, s *suite, p prefix) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 'a', 'b'}
	set := map[string]bool{}
	for len(set) < 300 {
		n := rng.IntN(6)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		set[string(p)+string(b)] = true
	}
	var want []string
	txn := s.begin(t)
	for k := range set {
		want = append(want, k)
		mustPut(t, txn, []byte(k), []byte("v"+k))
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	got := s.scan(t, []byte(p), p.end(), 1000, false)
	wantKeys(t, "forward scan", got, want)
	for _, kv := range got {
		if string(kv.Value) != "v"+string(kv.Key) {
			t.Fatalf("value of %q is %q", kv.Key, kv.Value)
		}
	}
	rev := slices.Clone(want)
	slices.Reverse(rev)
	wantKeys(t, "reverse scan", s.scan(t, []byte(p), p.end(), 1000, true), rev)
}

func testScanBounds(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("a")), "1", string(p.key("b")), "2", string(p.key("c")), "3", string(p.key("d")), "4")
	k := func(x string) string { return string(p.key(x)) }
	cases := []struct {
		start, end string
		fwd        []string
	}{
		{"a", "d", []string{k("a"), k("b"), k("c")}}, // end excluded
		{"b", "c", []string{k("b")}},                 // one key
		{"b", "b", []string{}},                       // empty range
		{"a\x00", "c\x00", []string{k("b"), k("c")}}, // bounds between keys
		{"", "bb", []string{k("a"), k("b")}},         // from the prefix itself
		{"c", "\xff", []string{k("c"), k("d")}},      // to the end
		{"d\x00", "\xff\xff", []string{}},            // past the last
	}
	for _, c := range cases {
		got := s.scan(t, p.key(c.start), p.key(c.end), 10, false)
		wantKeys(t, fmt.Sprintf("forward [%q, %q)", c.start, c.end), got, c.fwd)
		rev := slices.Clone(c.fwd)
		slices.Reverse(rev)
		got = s.scan(t, p.key(c.start), p.key(c.end), 10, true)
		wantKeys(t, fmt.Sprintf("reverse [%q, %q)", c.start, c.end), got, rev)
	}
	// A nil end is unbounded; the prefix's keys come first, then others.
	got := s.scan(t, p.key("c"), nil, 2, false)
	wantKeys(t, "nil end", got, []string{k("c"), k("d")})
	// A reverse scan with a nil end starts at the largest key of the store,
	// which may belong to another subtest; bound it below by our prefix.
	got = s.scan(t, p.key("c"), nil, 1000, true)
	if len(got) < 2 || string(got[len(got)-1].Key) != k("c") || string(got[len(got)-2].Key) != k("d") {
		t.Fatalf("reverse with nil end: got %q, want it to end with d, c", keysOf(got))
	}
}

func testScanPaging(t *testing.T, s *suite, p prefix) {
	var all []string
	txn := s.begin(t)
	for i := 0; i < 250; i++ {
		k := p.key(fmt.Sprintf("%04d", i))
		all = append(all, string(k))
		mustPut(t, txn, k, []byte{byte(i)})
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 7, 100, 250, 1000} {
		wantKeys(t, fmt.Sprintf("limit %d", limit), s.scan(t, []byte(p), p.end(), limit, false), all[:min(limit, len(all))])
		rev := slices.Clone(all)
		slices.Reverse(rev)
		wantKeys(t, fmt.Sprintf("reverse limit %d", limit), s.scan(t, []byte(p), p.end(), limit, true), rev[:min(limit, len(rev))])
	}
	// Forward paging: continue from the successor of the last key.
	var got []string
	start := []byte(p)
	for {
		page := s.scan(t, start, p.end(), 16, false)
		got = append(got, keysOf(page)...)
		if len(page) < 16 {
			break
		}
		start = append(slices.Clone(page[len(page)-1].Key), 0)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("forward paging returned %d keys, want %d", len(got), len(all))
	}
	// Reverse paging: continue up to the last key.
	got = got[:0]
	end := p.end()
	for {
		page := s.scan(t, []byte(p), end, 16, true)
		got = append(got, keysOf(page)...)
		if len(page) < 16 {
			break
		}
		end = page[len(page)-1].Key
	}
	slices.Reverse(got)
	if !slices.Equal(got, all) {
		t.Fatalf("reverse paging returned %d keys, want %d", len(got), len(all))
	}
}

func testReadYourWrites(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("stored")), "old", string(p.key("gone")), "x")
	txn := s.begin(t)
	mustPut(t, txn, p.key("new"), []byte("n1"))
	mustPut(t, txn, p.key("new"), []byte("n2")) // overwrite in the same txn
	mustPut(t, txn, p.key("stored"), []byte("updated"))
	if err := txn.Delete(ctx, p.key("gone")); err != nil {
		t.Fatal(err)
	}
	mustPut(t, txn, p.key("empty"), nil)
	check := func(k, want string, wantOK bool) {
		t.Helper()
		v, ok, err := txn.Get(ctx, p.key(k))
		if err != nil || ok != wantOK || string(v) != want {
			t.Fatalf("in txn Get(%s) = %q, %v, %v; want %q, %v", k, v, ok, err, want, wantOK)
		}
	}
	check("new", "n2", true)
	check("stored", "updated", true)
	check("gone", "", false)
	check("empty", "", true)
	// Others do not see uncommitted writes.
	if v, _ := s.get(t, p.key("stored")); v != "old" {
		t.Fatalf("another txn saw an uncommitted write: %q", v)
	}
	if _, ok := s.get(t, p.key("new")); ok {
		t.Fatal("another txn saw an uncommitted insert")
	}
	// Delete then put again in one txn.
	if err := txn.Delete(ctx, p.key("new")); err != nil {
		t.Fatal(err)
	}
	check("new", "", false)
	mustPut(t, txn, p.key("new"), []byte("n3"))
	check("new", "n3", true)
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"new": "n3", "stored": "updated", "empty": ""} {
		if v, ok := s.get(t, p.key(k)); !ok || v != want {
			t.Fatalf("after commit %s = %q, %v; want %q", k, v, ok, want)
		}
	}
	if _, ok := s.get(t, p.key("gone")); ok {
		t.Fatal("deleted key still present after commit")
	}
}

// testScanMerge checks scans merge a transaction's own writes with stored
// data correctly in both directions, with limits, against a model.
func testScanMerge(t *testing.T, s *suite, p prefix) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 20; round++ {
		rp := prefix(fmt.Sprintf("%s%02d/", p, round))
		model := map[string]string{}
		base := s.begin(t)
		for i := 0; i < 40; i++ {
			k := fmt.Sprintf("%02d", rng.IntN(60))
			v := fmt.Sprint(rng.Int())
			mustPut(t, base, rp.key(k), []byte(v))
			model[k] = v
		}
		if err := base.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		txn := s.begin(t)
		for i := 0; i < 30; i++ {
			k := fmt.Sprintf("%02d", rng.IntN(60))
			if rng.IntN(3) == 0 {
				if err := txn.Delete(ctx, rp.key(k)); err != nil {
					t.Fatal(err)
				}
				delete(model, k)
			} else {
				v := fmt.Sprint(rng.Int())
				mustPut(t, txn, rp.key(k), []byte(v))
				model[k] = v
			}
		}
		lo, hi := fmt.Sprintf("%02d", rng.IntN(60)), fmt.Sprintf("%02d", rng.IntN(61))
		if lo > hi {
			lo, hi = hi, lo
		}
		var want []string
		for k := range model {
			if k >= lo && k < hi {
				want = append(want, string(rp.key(k)))
			}
		}
		slices.Sort(want)
		limit := 1 + rng.IntN(20)
		reverse := rng.IntN(2) == 0
		if reverse {
			slices.Reverse(want)
		}
		want = want[:min(limit, len(want))]
		got := mustScan(t, txn, rp.key(lo), rp.key(hi), limit, reverse)
		wantKeys(t, fmt.Sprintf("round %d merged scan [%s,%s) limit %d reverse %v", round, lo, hi, limit, reverse), got, want)
		for _, kv := range got {
			if string(kv.Value) != model[string(kv.Key[len(rp):])] {
				t.Fatalf("round %d: value of %q is %q, want %q", round, kv.Key, kv.Value, model[string(kv.Key[len(rp):])])
			}
		}
		txn.Rollback()
	}
}

func testRollback(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("keep")), "v1")
	txn := s.begin(t)
	mustPut(t, txn, p.key("keep"), []byte("v2"))
	mustPut(t, txn, p.key("new"), []byte("x"))
	if err := txn.Delete(ctx, p.key("keep")); err != nil {
		t.Fatal(err)
	}
	txn.Rollback()
	if v, ok := s.get(t, p.key("keep")); !ok || v != "v1" {
		t.Fatalf("rollback changed data: %q %v", v, ok)
	}
	wantKeys(t, "after rollback", s.scan(t, []byte(p), p.end(), 10, false), []string{string(p.key("keep"))})
}

func testFailedClosure(t *testing.T, s *suite, p prefix) {
	boom := errors.New("boom")
	err := kvcluster.Update(ctx, s.kv, 3, func(txn kvcluster.Txn) error {
		mustPut(t, txn, p.key("a"), []byte("1"))
		mustPut(t, txn, p.key("b"), []byte("2"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want the closure's error", err)
	}
	wantKeys(t, "after failed closure", s.scan(t, []byte(p), p.end(), 10, false), []string{})
	func() {
		defer func() { _ = recover() }()
		_ = kvcluster.Update(ctx, s.kv, 1, func(txn kvcluster.Txn) error {
			mustPut(t, txn, p.key("c"), []byte("3"))
			panic("closure panics")
		})
	}()
	wantKeys(t, "after panicking closure", s.scan(t, []byte(p), p.end(), 10, false), []string{})
}

func testSnapshot(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("a")), "a1", string(p.key("b")), "b1")
	reader := s.begin(t)
	// Another transaction commits updates, an insert and a delete.
	s.put(t, string(p.key("a")), "a2", string(p.key("c")), "c2")
	w := s.begin(t)
	if err := w.Delete(ctx, p.key("b")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The earlier reader still sees its snapshot, by Get and by Scan.
	v, ok, err := reader.Get(ctx, p.key("a"))
	if err != nil || !ok || string(v) != "a1" {
		t.Fatalf("snapshot Get(a) = %q %v %v, want a1", v, ok, err)
	}
	wantKeys(t, "snapshot scan", mustScan(t, reader, []byte(p), p.end(), 10, false), []string{string(p.key("a")), string(p.key("b"))})
	wantKeys(t, "snapshot reverse scan", mustScan(t, reader, []byte(p), p.end(), 10, true), []string{string(p.key("b")), string(p.key("a"))})
	reader.Rollback()
	// A new transaction sees everything.
	wantKeys(t, "fresh scan", s.scan(t, []byte(p), p.end(), 10, false), []string{string(p.key("a")), string(p.key("c"))})

	// Snapshot reads stay consistent while writers commit concurrently: two
	// keys always updated together are always read equal.
	s.put(t, string(p.key("x")), "0", string(p.key("y")), "0")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = kvcluster.Update(ctx, s.kv, 10, func(txn kvcluster.Txn) error {
				if err := txn.Put(ctx, p.key("x"), []byte(fmt.Sprint(i))); err != nil {
					return err
				}
				return txn.Put(ctx, p.key("y"), []byte(fmt.Sprint(i)))
			})
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; n < 200 || time.Now().Before(deadline); n++ {
		txn := s.begin(t)
		first, second := p.key("x"), p.key("y")
		if n%2 == 1 {
			first, second = second, first
		}
		x, err1 := readOne(txn, first, n%4 == 1)
		time.Sleep(time.Duration(n%3) * 100 * time.Microsecond)
		y, err2 := readOne(txn, second, n%4 == 3)
		txn.Rollback()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if string(x) != string(y) {
			close(stop)
			wg.Wait()
			t.Fatalf("snapshot read torn: %s=%s, then %s=%s", first, x, second, y)
		}
		if n > 5000 {
			break
		}
	}
	close(stop)
	wg.Wait()
}

// readOne reads key by Get, or by a Scan from it (whose view must be as
// stable as a Get's).
func readOne(txn kvcluster.Txn, key []byte, scan bool) ([]byte, error) {
	if !scan {
		v, _, err := txn.Get(ctx, key)
		return v, err
	}
	kvs, err := txn.Scan(ctx, key, append(bytes.Clone(key), 0), kvcluster.ScanOptions{Limit: 1})
	if err != nil || len(kvs) == 0 {
		return nil, err
	}
	return kvs[0].Value, nil
}

func testConflict(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("k")), "0")
	t1, t2 := s.begin(t), s.begin(t)
	for _, txn := range []kvcluster.Txn{t1, t2} {
		if _, _, err := txn.Get(ctx, p.key("k")); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, t1, p.key("k"), []byte("1"))
	mustPut(t, t2, p.key("k"), []byte("2"))
	mustPut(t, t2, p.key("other"), []byte("from t2"))
	if err := t1.Commit(ctx); err != nil {
		t.Fatalf("first committer failed: %v", err)
	}
	err := t2.Commit(ctx)
	if !errors.Is(err, kvcluster.ErrWriteConflict) || !kvcluster.IsRetryable(err) {
		t.Fatalf("second committer: got %v, want a retryable ErrWriteConflict", err)
	}
	if v, _ := s.get(t, p.key("k")); v != "1" {
		t.Fatalf("k = %q, want the first committer's 1", v)
	}
	if _, ok := s.get(t, p.key("other")); ok {
		t.Fatal("the losing transaction's other write was applied")
	}

	// Racing commits: of many transactions writing one key from one
	// snapshot, exactly one wins.
	s.put(t, string(p.key("race")), "start")
	const racers = 8
	txns := make([]kvcluster.Txn, racers)
	for i := range txns {
		txns[i] = s.begin(t)
		mustPut(t, txns[i], p.key("race"), []byte(fmt.Sprint(i)))
	}
	var wins, losses atomic.Int32
	var winner atomic.Int32
	var wg sync.WaitGroup
	for i, txn := range txns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := txn.Commit(ctx); {
			case err == nil:
				wins.Add(1)
				winner.Store(int32(i))
			case kvcluster.IsRetryable(err):
				losses.Add(1)
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || losses.Load() != racers-1 {
		t.Fatalf("racing commits: %d won, %d lost; want exactly 1 winner", wins.Load(), losses.Load())
	}
	if v, _ := s.get(t, p.key("race")); v != fmt.Sprint(winner.Load()) {
		t.Fatalf("race = %q, want the winner's %d", v, winner.Load())
	}
}

func testBlindConflict(t *testing.T, s *suite, p prefix) {
	t1, t2 := s.begin(t), s.begin(t)
	mustPut(t, t1, p.key("k"), []byte("1")) // neither reads first
	mustPut(t, t2, p.key("k"), []byte("2"))
	if err := t2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t1.Commit(ctx); !kvcluster.IsRetryable(err) {
		t.Fatalf("blind write-write conflict: got %v, want retryable", err)
	}
}

func testDeleteConflict(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("k")), "v")
	t1, t2 := s.begin(t), s.begin(t)
	if err := t1.Delete(ctx, p.key("k")); err != nil {
		t.Fatal(err)
	}
	mustPut(t, t2, p.key("k"), []byte("w"))
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t2.Commit(ctx); !kvcluster.IsRetryable(err) {
		t.Fatalf("put after concurrent delete: got %v, want retryable", err)
	}
	if _, ok := s.get(t, p.key("k")); ok {
		t.Fatal("deleted key came back")
	}
}

func testDisjoint(t *testing.T, s *suite, p prefix) {
	t1, t2 := s.begin(t), s.begin(t)
	mustPut(t, t1, p.key("a"), []byte("1"))
	mustPut(t, t2, p.key("b"), []byte("2"))
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t2.Commit(ctx); err != nil {
		t.Fatalf("disjoint writes conflicted: %v", err)
	}
}

func testNoFalseConflict(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("k")), "1")
	t2 := s.begin(t) // begins after the commit above
	mustPut(t, t2, p.key("k"), []byte("2"))
	if err := t2.Commit(ctx); err != nil {
		t.Fatalf("transaction that began after a commit conflicted with it: %v", err)
	}
}

// testConcurrentIncrements: read-modify-write from many goroutines with
// retries loses no update.
func testConcurrentIncrements(t *testing.T, s *suite, p prefix) {
	const workers, each = 8, 40
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := kvcluster.Update(ctx, s.kv, 1000, func(txn kvcluster.Txn) error {
					v, _, err := txn.Get(ctx, p.key("counter"))
					if err != nil {
						return err
					}
					var n int
					if len(v) > 0 {
						fmt.Sscan(string(v), &n)
					}
					return txn.Put(ctx, p.key("counter"), []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					t.Errorf("increment: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := s.get(t, p.key("counter")); v != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %s, want %d: updates were lost", v, workers*each)
	}
}

// testBank moves money between accounts from many goroutines while readers
// check, in one snapshot, that the total never changes.
func testBank(t *testing.T, s *suite, p prefix) {
	const accounts, initial = 20, 100
	txn := s.begin(t)
	for i := 0; i < accounts; i++ {
		mustPut(t, txn, p.key(fmt.Sprintf("acct/%02d", i)), []byte(fmt.Sprint(initial)))
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	total := func(txn kvcluster.Txn) int {
		sum := 0
		for _, kv := range mustScan(t, txn, p.key("acct/"), p.key("acct0"), 100, false) {
			var n int
			fmt.Sscan(string(kv.Value), &n)
			sum += n
		}
		return sum
	}
	var writers, readers sync.WaitGroup
	var stop atomic.Bool
	for w := 0; w < 6; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < 60; i++ {
				from, to := rng.IntN(accounts), rng.IntN(accounts)
				if from == to {
					continue
				}
				err := kvcluster.Update(ctx, s.kv, 1000, func(txn kvcluster.Txn) error {
					read := func(i int) (int, error) {
						v, _, err := txn.Get(ctx, p.key(fmt.Sprintf("acct/%02d", i)))
						var n int
						fmt.Sscan(string(v), &n)
						return n, err
					}
					a, err := read(from)
					if err != nil {
						return err
					}
					b, err := read(to)
					if err != nil {
						return err
					}
					amt := rng.IntN(10)
					if err := txn.Put(ctx, p.key(fmt.Sprintf("acct/%02d", from)), []byte(fmt.Sprint(a-amt))); err != nil {
						return err
					}
					return txn.Put(ctx, p.key(fmt.Sprintf("acct/%02d", to)), []byte(fmt.Sprint(b+amt)))
				})
				if err != nil {
					t.Errorf("transfer: %v", err)
					return
				}
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for !stop.Load() {
			txn, err := s.kv.Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
			if err != nil {
				t.Error(err)
				return
			}
			if got := total(txn); got != accounts*initial {
				t.Errorf("snapshot total = %d, want %d", got, accounts*initial)
			}
			txn.Rollback()
		}
	}()
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	txn = s.begin(t)
	if got := total(txn); got != accounts*initial {
		t.Fatalf("final total = %d, want %d", got, accounts*initial)
	}
}

func testLarge(t *testing.T, s *suite, p prefix) {
	bigKey := make([]byte, kvcluster.KeySizeMax)
	copy(bigKey, p)
	for i := len(p); i < len(bigKey); i++ {
		bigKey[i] = byte(i)
	}
	bigVal := make([]byte, kvcluster.ValueSizeMax)
	for i := range bigVal {
		bigVal[i] = byte(i * 7)
	}
	txn := s.begin(t)
	mustPut(t, txn, bigKey, []byte("big key"))
	mustPut(t, txn, p.key("bigval"), bigVal)
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("committing a max-size key and value: %v", err)
	}
	if v, ok := s.get(t, bigKey); !ok || v != "big key" {
		t.Fatal("max-size key did not round-trip")
	}
	if v, ok := s.get(t, p.key("bigval")); !ok || v != string(bigVal) {
		t.Fatal("max-size value did not round-trip")
	}
	got := s.scan(t, []byte(p), p.end(), 10, false)
	if len(got) != 2 || !bytes.Equal(got[0].Key, bigKey) && !bytes.Equal(got[1].Key, bigKey) {
		t.Fatalf("scan over large entries returned %d entries", len(got))
	}
	txn = s.begin(t)
	if err := txn.Put(ctx, append(bigKey, 0), nil); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("oversized key: got %v, want ErrInvalidArgument", err)
	}
	if err := txn.Put(ctx, p.key("toobig"), make([]byte, kvcluster.ValueSizeMax+1)); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("oversized value: got %v, want ErrInvalidArgument", err)
	}
	// A transaction too large for one commit is refused, not half-applied.
	var tooLarge error
	for i := 0; i < 400 && tooLarge == nil; i++ {
		tooLarge = txn.Put(ctx, p.key(fmt.Sprintf("bulk/%04d", i)), bigVal[:512<<10])
	}
	if tooLarge != nil && !errors.Is(tooLarge, kvcluster.ErrTxnTooLarge) {
		t.Fatalf("oversized transaction: got %v, want ErrTxnTooLarge or success", tooLarge)
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("commit of the transaction that stayed within limits: %v", err)
	}
}

func testInvalid(t *testing.T, s *suite, p prefix) {
	txn := s.begin(t)
	if err := txn.Put(ctx, nil, []byte("x")); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("empty key Put: got %v", err)
	}
	if _, _, err := txn.Get(ctx, []byte{}); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("empty key Get: got %v", err)
	}
	if _, err := txn.Scan(ctx, p.key("a"), p.key("b"), kvcluster.ScanOptions{}); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("zero limit: got %v", err)
	}
	if _, err := txn.Scan(ctx, p.key("b"), p.key("a"), kvcluster.ScanOptions{Limit: 1}); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("inverted range: got %v", err)
	}
}

func testLifecycle(t *testing.T, s *suite, p prefix) {
	txn := s.begin(t)
	mustPut(t, txn, p.key("a"), []byte("1"))
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Commit": txn.Commit(ctx),
		"Put":    txn.Put(ctx, p.key("b"), nil),
		"Delete": txn.Delete(ctx, p.key("a")),
	} {
		if !errors.Is(err, kvcluster.ErrTxnDone) {
			t.Fatalf("%s after Commit: got %v, want ErrTxnDone", name, err)
		}
	}
	if _, _, err := txn.Get(ctx, p.key("a")); !errors.Is(err, kvcluster.ErrTxnDone) {
		t.Fatalf("Get after Commit: got %v", err)
	}
	if _, err := txn.Scan(ctx, p.key("a"), p.key("b"), kvcluster.ScanOptions{Limit: 1}); !errors.Is(err, kvcluster.ErrTxnDone) {
		t.Fatalf("Scan after Commit: got %v", err)
	}
	txn.Rollback() // harmless after Commit
	txn.Rollback()

	ro, err := s.kv.Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Put(ctx, p.key("x"), nil); !errors.Is(err, kvcluster.ErrReadOnly) {
		t.Fatalf("Put in read-only txn: got %v", err)
	}
	if err := ro.Delete(ctx, p.key("a")); !errors.Is(err, kvcluster.ErrReadOnly) {
		t.Fatalf("Delete in read-only txn: got %v", err)
	}
	if v, ok, err := ro.Get(ctx, p.key("a")); err != nil || !ok || string(v) != "1" {
		t.Fatalf("read-only Get: %q %v %v", v, ok, err)
	}
	if err := ro.Commit(ctx); err != nil {
		t.Fatalf("read-only Commit: %v", err)
	}
	// Empty read-write transactions commit trivially.
	empty := s.begin(t)
	if err := empty.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Values returned are the caller's: changing them changes nothing.
	got := s.scan(t, p.key("a"), p.key("b"), 1, false)
	got[0].Value[0] = 'X'
	if v, _ := s.get(t, p.key("a")); v != "1" {
		t.Fatal("mutating a returned value changed the store")
	}
	// Slices passed in may be reused at once.
	buf := []byte(string(p.key("reuse")))
	val := []byte("first")
	txn = s.begin(t)
	mustPut(t, txn, buf, val)
	copy(val, "XXXXX")
	buf[len(buf)-1] = 'Z'
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.get(t, p.key("reuse")); !ok || v != "first" {
		t.Fatalf("reused argument slices corrupted the write: %q %v", v, ok)
	}
}

func testContext(t *testing.T, s *suite, p prefix) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.kv.Begin(cctx, kvcluster.TxnOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin with cancelled ctx: got %v", err)
	}
	txn := s.begin(t)
	if _, _, err := txn.Get(cctx, p.key("a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with cancelled ctx: got %v", err)
	}
	mustPut(t, txn, p.key("a"), []byte("1"))
	if err := txn.Commit(cctx); err == nil {
		// Committing despite a cancelled context is allowed only if the
		// commit really happened.
		if _, ok := s.get(t, p.key("a")); !ok {
			t.Fatal("Commit returned nil but nothing was committed")
		}
	} else if _, ok := s.get(t, p.key("a")); ok {
		t.Fatalf("Commit returned %v but the write was applied", err)
	}
}

func testClosed(t *testing.T, kv kvcluster.KvCluster) {
	txn, err := kv.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := kv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := kv.Begin(ctx, kvcluster.TxnOptions{}); !errors.Is(err, kvcluster.ErrClosed) {
		t.Fatalf("Begin after Close: got %v", err)
	}
	if _, _, err := txn.Get(ctx, []byte("k")); !errors.Is(err, kvcluster.ErrClosed) {
		t.Fatalf("Get after Close: got %v", err)
	}
	if _, err := txn.Scan(ctx, []byte("a"), []byte("z"), kvcluster.ScanOptions{Limit: 1}); !errors.Is(err, kvcluster.ErrClosed) {
		t.Fatalf("Scan after Close: got %v", err)
	}
	if err := txn.Commit(ctx); !errors.Is(err, kvcluster.ErrClosed) {
		t.Fatalf("Commit after Close: got %v", err)
	}
	txn.Rollback()
}
