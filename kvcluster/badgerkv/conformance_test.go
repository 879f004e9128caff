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
