package raft

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestReadFloors checks that a key's floor never falls below the highest
// timestamp it was raised to, through generation changes and shard-wide
// raises, and that forgetting keys does not raise an untouched key's floor
// past the highest floor forgotten.
func TestReadFloors(t *testing.T) {
	var f readFloors
	model := map[string]uint64{}
	var shard, highest uint64
	rng := rand.New(rand.NewPCG(1, 2))
	keys := 3 * readFloorKeys
	for i := range 10 * readFloorKeys {
		ts := uint64(i + 1)
		if rng.IntN(200000) == 0 {
			f.raiseAll(ts)
			shard = ts
			continue
		}
		k := fmt.Sprint(rng.IntN(keys))
		f.raise([]byte(k), ts)
		model[k] = ts
		highest = ts
		if i%8191 == 0 {
			for k, want := range model {
				if got := f.of([]byte(k)); got < max(want, shard) {
					t.Fatalf("after %d raises: floor of %s is %d, below %d", i, k, got, max(want, shard))
				}
			}
		}
	}
	if got := f.of([]byte("never raised")); got < shard || got > highest {
		t.Fatalf("floor of an untouched key: %d, want between %d and %d", got, shard, highest)
	}
	if len(f.cur) > readFloorKeys || len(f.prev) > readFloorKeys {
		t.Fatalf("generations of %d and %d keys, bound %d", len(f.cur), len(f.prev), readFloorKeys)
	}
}
