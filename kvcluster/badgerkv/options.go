package badgerkv

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configure a Store. The zero value is not valid: set Dir or
// InMemory. Each field's default is applied by Open when the field is zero.
type Options struct {
	// Dir is the directory holding the Badger files. Required unless
	// InMemory is set; it is created if missing.
	Dir string

	// InMemory keeps everything in memory: nothing is written to disk and
	// nothing survives Close. For tests.
	InMemory bool

	// MemTableBytes is the size of one Badger memtable. Commits up to 15%
	// of it (Badger's batch limit, about 9 MiB at the default) share a
	// batch with others; larger ones are written alone in several batches
	// behind an intent file (large.go). Default 32 MiB.
	MemTableBytes int64

	// TxnBytesMax bounds the writes one transaction buffers until commit;
	// past it a write fails with ErrTxnTooLarge. Default 4 GiB.
	TxnBytesMax int64

	// TxnMemoryBytes is how much of its writes a transaction keeps in
	// memory; past it they move to a spill on disk (spill.go).
	// Default 16 MiB.
	TxnMemoryBytes int64

	// SpillDir holds the spills of large transactions. Default: a
	// directory inside Dir, or the system's temporary directory for an
	// in-memory store.
	SpillDir string

	// BlockCacheBytes is the size of Badger's cache of table blocks.
	// Tables are stored uncompressed and read through the page cache (they
	// are memory-mapped), so the default is none.
	BlockCacheBytes int64

	// MemTables is how many memtables Badger keeps (one being written, the
	// others waiting to be flushed). Default 3.
	MemTables int

	// CommitQueueMax bounds the commits waiting for the committer; a
	// committer that is behind makes Commit wait (under its context) rather
	// than queue without limit. Default 4096.
	CommitQueueMax int

	// GroupCommitsMax bounds how many transactions share one sync.
	// Default 1024.
	GroupCommitsMax int

	// GroupLinger is how long the committer waits for more commits when
	// fewer are waiting than its last group held: the committers of that
	// group usually come back within microseconds, and one sync for all of
	// them beats two half-full ones. A lone committer never waits. Zero
	// takes the default, 100µs; negative disables lingering.
	GroupLinger time.Duration

	// Logger receives Badger's warnings and errors. Default: discarded.
	Logger *slog.Logger
}

const (
	memTableBytesDefault   = 32 << 20
	commitQueueMaxDefault  = 4096
	groupCommitsMaxDefault = 1024
	groupLingerDefault     = 100 * time.Microsecond
)

func (o *Options) ensureDefaults() {
	if o.MemTableBytes == 0 {
		o.MemTableBytes = memTableBytesDefault
	}
	if o.TxnBytesMax == 0 {
		o.TxnBytesMax = 4 << 30
	}
	if o.TxnMemoryBytes == 0 {
		o.TxnMemoryBytes = 16 << 20
	}
	if o.MemTables == 0 {
		o.MemTables = 3
	}
	if o.CommitQueueMax == 0 {
		o.CommitQueueMax = commitQueueMaxDefault
	}
	if o.GroupCommitsMax == 0 {
		o.GroupCommitsMax = groupCommitsMaxDefault
	}
	if o.GroupLinger == 0 {
		o.GroupLinger = groupLingerDefault
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Dir == "" && !o.InMemory {
		errs = append(errs, errors.New("Dir is required unless InMemory is set"))
	}
	if o.Dir != "" && o.InMemory {
		errs = append(errs, errors.New("Dir and InMemory are mutually exclusive"))
	}
	if o.MemTableBytes < 4<<20 {
		errs = append(errs, fmt.Errorf("MemTableBytes %d is below the 4 MiB minimum", o.MemTableBytes))
	}
	if o.TxnMemoryBytes < 0 {
		errs = append(errs, fmt.Errorf("TxnMemoryBytes %d must not be negative", o.TxnMemoryBytes))
	}
	if o.MemTables < 2 {
		errs = append(errs, fmt.Errorf("MemTables %d is below the minimum of 2", o.MemTables))
	}
	if o.CommitQueueMax < 1 {
		errs = append(errs, fmt.Errorf("CommitQueueMax %d must be positive", o.CommitQueueMax))
	}
	if o.GroupCommitsMax < 1 {
		errs = append(errs, fmt.Errorf("GroupCommitsMax %d must be positive", o.GroupCommitsMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("badgerkv: invalid options: %w", err)
	}
	return nil
}

// badgerLogger adapts slog to Badger's logger, keeping warnings and errors.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
