package tso

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// StartWithClock is Start with a clock of the test's choosing.
func StartWithClock(c *clientv3.Client, cluster string, nodeID uint64, now func() time.Time) *Oracle {
	return start(c, cluster, nodeID, now)
}
