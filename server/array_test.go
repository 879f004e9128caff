package server

import (
	"context"
	"slices"
	"testing"
)

// TestPgxArrays sends and reads arrays as a driver does: pgx binds Go
// slices and reads array columns in the binary format (and in text with
// the simple protocol).
func TestPgxArrays(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	setup := mustConnect(t, url)
	if _, err := setup.Exec(ctx, "CREATE TABLE arr (id int PRIMARY KEY, tags text[], nums int8[], opt int4[])"); err != nil {
		t.Fatal(err)
	}
	for i, mode := range execModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := connectInMode(t, url, mode)
			tags := []string{"a", "b c", "", "NULL", `q"uote`, `back\slash`}
			nums := []int64{1, -2, 1 << 40}
			if _, err := conn.Exec(ctx, "INSERT INTO arr VALUES ($1, $2, $3, $4)", i, tags, nums, []*int32{nil, new(int32)}); err != nil {
				t.Fatal(err)
			}
			var gotTags []string
			var gotNums []int64
			var gotOpt []*int32
			if err := conn.QueryRow(ctx, "SELECT tags, nums, opt FROM arr WHERE id = $1", i).Scan(&gotTags, &gotNums, &gotOpt); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotTags, tags) || !slices.Equal(gotNums, nums) || len(gotOpt) != 2 || gotOpt[0] != nil || gotOpt[1] == nil || *gotOpt[1] != 0 {
				t.Fatalf("read back %q %v %v", gotTags, gotNums, gotOpt)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM arr WHERE $1 = ANY(tags) AND id = ANY($2)", "b c", []int32{int32(i), 99}).Scan(&n); err != nil || n != 1 {
				t.Fatalf("ANY with array parameters: %d, %v", n, err)
			}
			var empty []int64
			if err := conn.QueryRow(ctx, "SELECT ARRAY[]::int8[]").Scan(&empty); err != nil || empty == nil || len(empty) != 0 {
				t.Fatalf("empty array: %v, %v", empty, err)
			}
		})
	}
}
