package badgerkv_test

import (
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/kvcluster/kvtest"
)

func TestConformanceInMemory(t *testing.T) {
	kvtest.Run(t, func(t testing.TB) kvcluster.KvCluster {
		s, err := badgerkv.Open(badgerkv.Options{InMemory: true, MemTableBytes: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceOnDisk(t *testing.T) {
	kvtest.Run(t, func(t testing.TB) kvcluster.KvCluster {
		s, err := badgerkv.Open(badgerkv.Options{Dir: t.TempDir(), MemTableBytes: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceSpilling runs the suite with a memory buffer of a few
// writes, so transactions of more than a handful of writes spill to disk
// and every contract is checked across the memory buffer and the spill.
func TestConformanceSpilling(t *testing.T) {
	kvtest.Run(t, func(t testing.TB) kvcluster.KvCluster {
		s, err := badgerkv.Open(badgerkv.Options{Dir: t.TempDir(), MemTableBytes: 16 << 20, TxnMemoryBytes: 256})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
