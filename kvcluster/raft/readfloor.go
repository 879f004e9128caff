package raft

// readFloors are a leader's read floors: no commit at or below a floor may
// be proposed, since a read at that timestamp has been served. A point
// read (or a lock's read) raises the floor of its key only, so commits to
// other keys keep the timestamps they came with; a scan raises the floor
// of the whole shard.
//
// Per-key floors are kept in two generations of at most readFloorKeys
// keys each. When the newer one fills, the older one is dropped and the
// shard floor rises to the highest floor it held: forgetting a key's
// floor only ever raises it. A dropped generation is at least
// readFloorKeys reads old, so its highest floor is usually below the
// commits in flight, which then keep their timestamps.
type readFloors struct {
	shard     uint64
	cur, prev map[string]uint64
	prevMax   uint64 // the highest floor in prev
}

// readFloorKeys bounds each generation of per-key floors.
const readFloorKeys = 1 << 15

// raiseAll raises the floor of every key to ts.
func (f *readFloors) raiseAll(ts uint64) { f.shard = max(f.shard, ts) }

// raise raises key's floor to ts.
func (f *readFloors) raise(key []byte, ts uint64) {
	if ts <= f.shard {
		return
	}
	if f.cur == nil {
		f.cur = make(map[string]uint64)
	}
	if old, ok := f.cur[string(key)]; ok {
		f.cur[string(key)] = max(old, ts)
		return
	}
	if len(f.cur) >= readFloorKeys {
		f.shard = max(f.shard, f.prevMax)
		f.prevMax = 0
		for _, t := range f.cur {
			f.prevMax = max(f.prevMax, t)
		}
		f.prev, f.cur = f.cur, make(map[string]uint64)
	}
	f.cur[string(key)] = ts
}

// of returns key's floor.
func (f *readFloors) of(key []byte) uint64 {
	return max(f.shard, f.cur[string(key)], f.prev[string(key)])
}
