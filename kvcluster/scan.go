package kvcluster

import "context"

// ScanAll calls fn with every entry of [start, end) in key order, reading
// pageRows entries at a time so that memory stays bounded whatever the
// range holds. It stops at fn's first error, which it returns, or when ctx
// ends between pages. fn may write through txn: each page starts after the
// last key seen, so writes behind the scan are not read again (writes ahead
// of it are, as Scan's read-your-writes promises).
func ScanAll(ctx context.Context, txn Txn, start, end []byte, pageRows int, fn func(KeyValue) error) error {
	for {
		page, err := txn.Scan(ctx, start, end, ScanOptions{Limit: pageRows})
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < pageRows {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		last := page[len(page)-1].Key
		start = append(last[:len(last):len(last)], 0) // a copy: fn may keep last
	}
}

// PrefixEnd returns the smallest key greater than every key starting with
// prefix: the exclusive end of the prefix's span. For a prefix of only 0xff
// bytes there is none and it returns nil (no upper bound).
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
