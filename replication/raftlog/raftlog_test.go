package raftlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// model mirrors one group in etcd-raft's own MemoryStorage, the reference
// for raft.Storage's contract.
type model struct {
	ms  *raft.MemoryStorage
	log *Log
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLogMatchesMemoryStorage applies random appends (with conflicting
// suffixes), hard states, compactions and snapshots to three groups of a
// Store and to MemoryStorages, comparing every read after each step and
// after reopening the store.
func TestLogMatchesMemoryStorage(t *testing.T) { runModel(t, false) }

// TestStagedLogMatchesMemoryStorage is the same with Stage and Persist
// (at random moments): readers see staged entries at once, and what is
// persisted survives a reopen.
func TestStagedLogMatchesMemoryStorage(t *testing.T) { runModel(t, true) }

func runModel(t *testing.T, staged bool) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	r := rand.New(rand.NewPCG(1, 2))
	models := make([]*model, 3)
	for g := range models {
		l, err := s.Log(uint64(g + 1))
		if err != nil {
			t.Fatal(err)
		}
		models[g] = &model{ms: raft.NewMemoryStorage(), log: l}
	}
	term := uint64(1)
	for step := 0; step < 1500; step++ {
		var ups []Update
		for _, m := range models {
			first, _ := m.ms.FirstIndex()
			last, _ := m.ms.LastIndex()
			switch op := r.IntN(10); {
			case op < 6: // append, possibly replacing a suffix
				if r.IntN(4) == 0 {
					term++
				}
				from := last + 1
				if r.IntN(3) == 0 && last >= first {
					from = first + uint64(r.IntN(int(last-first+1)))
				}
				var ents []raftpb.Entry
				for i := 0; i < 1+r.IntN(5); i++ {
					ents = append(ents, raftpb.Entry{Index: from + uint64(i), Term: term, Data: []byte(fmt.Sprint(step, i))})
				}
				if err := m.ms.Append(ents); err != nil {
					t.Fatal(err)
				}
				hs := raftpb.HardState{Term: term, Vote: uint64(r.IntN(3)), Commit: first - 1}
				if err := m.ms.SetHardState(hs); err != nil {
					t.Fatal(err)
				}
				ups = append(ups, Update{Log: m.log, Entries: ents, HardState: hs})
			case op < 8 && last >= first: // compact
				idx := first + uint64(r.IntN(int(last-first+1)))
				conf := raftpb.ConfState{Voters: []uint64{1, 2, 3}}
				if _, err := m.ms.CreateSnapshot(idx, &conf, nil); err != nil {
					t.Fatal(err)
				}
				if err := m.ms.Compact(idx); err != nil {
					t.Fatal(err)
				}
				if staged { // only what is on disk can be compacted
					if err := s.Persist(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := m.log.Compact(ctx, idx, conf, nil); err != nil {
					t.Fatal(err)
				}
			case op == 8: // a snapshot past the log, as a lagging replica gets
				snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: last + 1 + uint64(r.IntN(3)), Term: term,
					ConfState: raftpb.ConfState{Voters: []uint64{1, 2}}}}
				if err := m.ms.ApplySnapshot(snap); err != nil {
					t.Fatal(err)
				}
				ups = append(ups, Update{Log: m.log, Snapshot: snap})
			}
		}
		switch {
		case !staged:
			if err := s.Write(ctx, ups); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		case slices.ContainsFunc(ups, func(u Update) bool { return !raft.IsEmptySnap(u.Snapshot) }):
			if err := s.Persist(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, ups); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		default:
			if err := s.Stage(ups); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if r.IntN(3) == 0 {
				if err := s.Persist(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		for g, m := range models {
			compare(t, fmt.Sprintf("step %d group %d", step, g+1), m.ms, m.log, r)
		}
	}
	if err := s.Persist(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	for g, m := range models {
		l, err := s.Log(uint64(g + 1))
		if err != nil {
			t.Fatal(err)
		}
		compare(t, fmt.Sprintf("reopened group %d", g+1), m.ms, l, r)
	}
}

func compare(t *testing.T, at string, ms *raft.MemoryStorage, l *Log, r *rand.Rand) {
	t.Helper()
	f1, _ := ms.FirstIndex()
	f2, _ := l.FirstIndex()
	l1, _ := ms.LastIndex()
	l2, _ := l.LastIndex()
	if f1 != f2 || l1 != l2 {
		t.Fatalf("%s: bounds [%d, %d], want [%d, %d]", at, f2, l2, f1, l1)
	}
	hs1, cs1, _ := ms.InitialState()
	hs2, cs2, _ := l.InitialState()
	if !reflect.DeepEqual(hs1, hs2) || !reflect.DeepEqual(cs1.Voters, cs2.Voters) {
		t.Fatalf("%s: state %v %v, want %v %v", at, hs2, cs2, hs1, cs1)
	}
	for i := f1 - 1; i <= l1+1; i++ {
		t1, e1 := ms.Term(i)
		t2, e2 := l.Term(i)
		if t1 != t2 || !errors.Is(e2, e1) && (e1 != nil || e2 != nil) {
			t.Fatalf("%s: Term(%d) = %d, %v; want %d, %v", at, i, t2, e2, t1, e1)
		}
	}
	if f1 > 1 {
		if _, err := l.Term(f1 - 2); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("%s: Term below the log: %v", at, err)
		}
		if _, err := l.Entries(f1-1, l1+1, 1<<20); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("%s: Entries from a compacted index: %v", at, err)
		}
	}
	if l1 < f1 {
		return
	}
	lo := f1 + uint64(r.IntN(int(l1-f1+1)))
	hi := lo + 1 + uint64(r.IntN(int(l1-lo+1)))
	max := uint64(r.IntN(200))
	e1, err1 := ms.Entries(lo, hi, max)
	e2, err2 := l.Entries(lo, hi, max)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(e1, e2) {
		t.Fatalf("%s: Entries(%d, %d, %d) = %v, %v; want %v, %v", at, lo, hi, max, e2, err2, e1, err1)
	}
	s1, _ := ms.Snapshot()
	s2, _ := l.Snapshot()
	if s1.Metadata.Index != s2.Metadata.Index || s1.Metadata.Term != s2.Metadata.Term {
		t.Fatalf("%s: snapshot %v, want %v", at, s2.Metadata, s1.Metadata)
	}
}

// TestWriteRefusesBadUpdates: a gap, an out-of-date snapshot and
// non-consecutive entries are refused, and nothing of the batch is written.
func TestWriteRefusesBadUpdates(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := s.Log(1)
	b, _ := s.Log(2)
	ok := Update{Log: a, Entries: []raftpb.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}}}
	for _, bad := range []Update{
		{Log: b, Entries: []raftpb.Entry{{Index: 3, Term: 1}}},
		{Log: b, Entries: []raftpb.Entry{{Index: 1, Term: 1}, {Index: 3, Term: 1}}},
	} {
		if err := s.Write(ctx, []Update{ok, bad}); err == nil {
			t.Fatalf("%v written", bad.Entries)
		}
		if last, _ := a.LastIndex(); last != 0 {
			t.Fatalf("a failed batch left group 1 at %d", last)
		}
	}
	if err := s.Write(ctx, []Update{ok}); err != nil {
		t.Fatal(err)
	}
	if err := a.Compact(ctx, 2, raftpb.ConfState{}, []byte("span")); err != nil {
		t.Fatal(err)
	}
	old := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 1, Term: 1}}
	if err := s.Write(ctx, []Update{{Log: a, Snapshot: old}}); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("old snapshot: %v", err)
	}
}

// TestRaftRunsOnTheLog drives a real etcd-raft node on a Log: it elects
// itself, commits proposals persisted through Write, and after a restart
// on the same store recovers its term, commit index and entries.
func TestRaftRunsOnTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	l, err := s.Log(7)
	if err != nil {
		t.Fatal(err)
	}
	// run proposes proposals entries tagged tag and returns how many
	// were applied. As etcd's examples do, it restarts from the latest
	// snapshot and applies committed entries (conf changes included)
	// again: the log, not a side record, holds the membership.
	run := func(l *Log, tag string, proposals int, bootstrap bool) (applied int, commit uint64) {
		cfg := &raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: l, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256,
			Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}}
		snap, _ := l.Snapshot()
		cfg.Applied = snap.Metadata.Index
		rn, err := raft.NewRawNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if bootstrap {
			if err := rn.Bootstrap([]raft.Peer{{ID: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		proposed := 0
		for i := 0; i < 10_000 && applied < proposals; i++ {
			if rn.Status().RaftState == raft.StateLeader && proposed < proposals {
				if err := rn.Propose([]byte(fmt.Sprint(tag, proposed))); err != nil {
					t.Fatal(err)
				}
				proposed++
			}
			if !rn.HasReady() {
				rn.Tick()
				continue
			}
			rd := rn.Ready()
			if err := s.Write(ctx, []Update{{Log: l, HardState: rd.HardState, Entries: rd.Entries, Snapshot: rd.Snapshot}}); err != nil {
				t.Fatal(err)
			}
			for _, e := range rd.CommittedEntries {
				if e.Type == raftpb.EntryNormal && strings.HasPrefix(string(e.Data), tag) {
					applied++
				}
				if e.Type == raftpb.EntryConfChange {
					var cc raftpb.ConfChange
					if err := cc.Unmarshal(e.Data); err != nil {
						t.Fatal(err)
					}
					rn.ApplyConfChange(cc)
				}
			}
			rn.Advance(rd)
		}
		return applied, rn.Status().Commit
	}
	applied, commit := run(l, "first-", 100, true)
	if applied != 100 {
		t.Fatalf("applied %d of 100 proposals", applied)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	l2, err := s.Log(7)
	if err != nil {
		t.Fatal(err)
	}
	hs, _, _ := l2.InitialState()
	if hs.Commit != commit || hs.Term == 0 {
		t.Fatalf("after restart: hard state %v, want commit %d", hs, commit)
	}
	if last, _ := l2.LastIndex(); last < commit {
		t.Fatalf("after restart: last index %d below commit %d", last, commit)
	}
	ents, err := l2.Entries(1, commit+1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if e.Type == raftpb.EntryNormal && len(e.Data) > 0 {
			n++
		}
	}
	if n != 100 {
		t.Fatalf("after restart: %d proposals in the log, want 100", n)
	}
	if applied, _ := run(l2, "second-", 5, false); applied != 5 {
		t.Fatalf("after restart: applied %d of 5 new proposals", applied)
	}
}

// TestStageDuringPersist stages a conflicting suffix while a Persist of
// the entries it replaces is under way: readers see the new suffix at
// once, and after the Persist too (the old one is on disk by then), and
// the next Persist puts the new one on disk.
func TestStageDuringPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	l, err := s.Log(1)
	if err != nil {
		t.Fatal(err)
	}
	ents := func(from, to, term uint64) []raftpb.Entry {
		var out []raftpb.Entry
		for i := from; i <= to; i++ {
			out = append(out, raftpb.Entry{Index: i, Term: term, Data: []byte(fmt.Sprint(term, i))})
		}
		return out
	}
	if err := s.Stage([]Update{{Log: l, Entries: ents(1, 5, 1)}}); err != nil {
		t.Fatal(err)
	}
	s.afterTake = func() {
		s.afterTake = nil
		if err := s.Stage([]Update{{Log: l, Entries: ents(3, 4, 2)}}); err != nil {
			t.Error(err)
		}
	}
	check := func(at string, l *Log) {
		t.Helper()
		last, _ := l.LastIndex()
		got, err := l.Entries(1, last+1, 1<<20)
		want := append(ents(1, 2, 1), ents(3, 4, 2)...)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: entries %v, %v; want %v", at, got, err, want)
		}
		for i := uint64(1); i <= 4; i++ {
			if term, err := l.Term(i); err != nil || term != want[i-1].Term {
				t.Fatalf("%s: Term(%d) = %d, %v", at, i, term, err)
			}
		}
	}
	if err := s.Persist(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the first Persist", l)
	if err := s.Persist(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the second Persist", l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if l, err = s.Log(1); err != nil {
		t.Fatal(err)
	}
	check("reopened", l)
}

// TestSnapshotDataSurvivesRestart: the data given to Compact, or carried
// by a written snapshot, comes back from Snapshot after the store is
// opened again.
func TestSnapshotDataSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	a, err := s.Log(1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Log(2)
	if err != nil {
		t.Fatal(err)
	}
	ents := []raftpb.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 1}}
	snap := raftpb.Snapshot{Data: []byte("b's span"), Metadata: raftpb.SnapshotMetadata{Index: 5, Term: 5,
		ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
	if err := s.Write(ctx, []Update{{Log: a, Entries: ents}, {Log: b, Snapshot: snap}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Compact(ctx, 2, raftpb.ConfState{Voters: []uint64{1}}, []byte("a's span")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	for group, want := range map[uint64]string{1: "a's span", 2: "b's span"} {
		l, err := s.Log(group)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != want {
			t.Errorf("group %d: snapshot data %q, want %q", group, got.Data, want)
		}
	}
}
