package raftlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/raft/v3/raftpb"
)

// BenchmarkWrite measures durable (synced) log appends of 256-byte
// entries: one entry per Write, as a naive Ready loop persists a single
// proposal, against a Write carrying one entry for each of 64 groups, as
// a node's Ready round batches them.
func BenchmarkWrite(b *testing.B) {
	for _, groups := range []int{1, 64} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			logs := make([]*Log, groups)
			for g := range logs {
				if logs[g], err = s.Log(uint64(g + 1)); err != nil {
					b.Fatal(err)
				}
			}
			data := make([]byte, 256)
			ups := make([]Update, groups)
			start := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for g, l := range logs {
					ups[g] = Update{Log: l, HardState: raftpb.HardState{Term: 1, Commit: uint64(i)},
						Entries: []raftpb.Entry{{Index: uint64(i + 1), Term: 1, Data: data}}}
				}
				if err := s.Write(ctx, ups); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*groups)/time.Since(start).Seconds(), "entries/s")
		})
	}
}
