package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/keys"
)

// Privileges is a set of table privileges, as GRANT gives them.
type Privileges uint8

// The table privileges.
const (
	PrivSelect Privileges = 1 << iota
	PrivInsert
	PrivUpdate
	PrivDelete
	PrivTruncate

	// PrivAll is every table privilege (GRANT ALL).
	PrivAll = PrivSelect | PrivInsert | PrivUpdate | PrivDelete | PrivTruncate
)

var privNames = []struct {
	p    Privileges
	name string
}{{PrivSelect, "SELECT"}, {PrivInsert, "INSERT"}, {PrivUpdate, "UPDATE"}, {PrivDelete, "DELETE"}, {PrivTruncate, "TRUNCATE"}}

// ParsePrivilege returns the privilege GRANT calls name (lower or upper
// case).
func ParsePrivilege(name string) (Privileges, bool) {
	for _, pn := range privNames {
		if strings.EqualFold(pn.name, name) {
			return pn.p, true
		}
	}
	return 0, false
}

// String names the privileges: "SELECT, INSERT".
func (p Privileges) String() string {
	var names []string
	for _, pn := range privNames {
		if p&pn.p != 0 {
			names = append(names, pn.name)
		}
	}
	return strings.Join(names, ", ")
}

// Allows reports whether role r, reading or writing with privileges p,
// may act on table t: superusers and the table's owner may do anything;
// others need every privilege in p granted, to them or to PUBLIC. A table without an owner
// (created before ownership was recorded) belongs to the superusers.
func (t *Table) Allows(r *Role, p Privileges) bool {
	if r.Superuser || (t.Owner != "" && t.Owner == r.Name) {
		return true
	}
	return (t.Grants[r.Name]|t.Grants["public"])&p == p
}

// OwnedBy reports whether r may change or drop t.
func (t *Table) OwnedBy(r *Role) bool {
	return r.Superuser || (t.Owner != "" && t.Owner == r.Name)
}

// Roles lists every role in name order.
func (c *Catalog) Roles(ctx context.Context, txn kvcluster.Txn) ([]*Role, error) {
	start, end := c.codec.IndexSpan(rolesTableID, keys.PrimaryIndexID)
	var out []*Role
	err := kvcluster.ScanAll(ctx, txn, start, end, 256, func(e kvcluster.KeyValue) error {
		var r Role
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return fmt.Errorf("catalog: corrupt role: %w", err)
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// DropRole removes a role.
func (c *Catalog) DropRole(ctx context.Context, txn kvcluster.Txn, name string) error {
	return txn.Delete(ctx, c.nameKey(rolesTableID, name))
}
