package planner

import (
	"fmt"
	"strings"

	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/expr"
)

// Explain renders a plan as EXPLAIN shows it: one line per node, children
// indented under "->", subqueries as SubPlans.
func Explain(p Plan) []string {
	var lines []string
	var walk func(p Plan, depth int, prefix string)
	walk = func(p Plan, depth int, prefix string) {
		indent := strings.Repeat("      ", depth)
		lines = append(lines, indent+prefix+describe(p))
		var subs []Plan
		for _, e := range Expressions(p) {
			expr.Subqueries(e, func(s *expr.Subquery) {
				kind := "SubPlan"
				if !s.Correlated {
					kind = "InitPlan (runs once)"
				}
				lines = append(lines, indent+"  "+strings.Repeat(" ", len(prefix))+kind)
				walk(s.Plan.(Plan), depth+1, "->  ")
				subs = append(subs, s.Plan.(Plan))
			})
		}
		for _, in := range Inputs(p) {
			isSub := false
			for _, s := range subs {
				if s == in {
					isSub = true
				}
			}
			if !isSub {
				walk(in, depth+1, "->  ")
			}
		}
	}
	walk(p, 0, "")
	return lines
}

func describe(p Plan) string {
	switch p := p.(type) {
	case *Scan:
		var s string
		key := "primary key"
		if p.Index != nil {
			key = "index " + p.Index.Name
		}
		switch p.Kind {
		case PointRead:
			s = fmt.Sprintf("Point Get on %s (%s %s)", p.Table.Name, key, keyCols(p.Table, p.KeyIndex(), len(p.Eq), false))
		case RangeScan:
			s = fmt.Sprintf("Range Scan on %s (%s %s)", p.Table.Name, key, keyCols(p.Table, p.KeyIndex(), len(p.Eq), p.Lo != nil || p.Hi != nil))
		default:
			s = "Full Scan on " + p.Table.Name
			if p.Table.Virtual != nil {
				s = "System View " + p.Table.Name
			}
		}
		if p.Filter != nil {
			s += ", filtered"
		}
		if p.Limit > 0 {
			s += fmt.Sprintf(", stops after %d rows", p.Limit)
		}
		return s
	case *Join:
		switch {
		case p.Lookup:
			return p.Kind.String() + " Lookup Join (index nested loop into the right table)"
		case len(p.LeftKeys) > 0:
			return fmt.Sprintf("%s Hash Join (%d key%s)", p.Kind, len(p.LeftKeys), plural(len(p.LeftKeys)))
		}
		return p.Kind.String() + " Nested Loop Join"
	case *RecursiveCTE:
		return "Recursive Union (" + p.Name + ")"
	case *WorkTable:
		return "WorkTable Scan on " + p.CTE.Name
	case *Filter:
		return "Filter"
	case *Project:
		return "Project"
	case *Sort:
		return fmt.Sprintf("Sort (%d key%s)", len(p.Keys), plural(len(p.Keys)))
	case *Limit:
		return "Limit"
	case *Aggregate:
		if len(p.GroupBy) == 0 {
			return "Aggregate"
		}
		return fmt.Sprintf("Hash Aggregate (%d group key%s)", len(p.GroupBy), plural(len(p.GroupBy)))
	case *Distinct:
		return "Hash Distinct"
	case *SetOp:
		s := "Hash " + p.Op[:1] + strings.ToLower(p.Op[1:])
		if p.Op == "UNION" && p.All {
			s = "Append"
		} else if p.All {
			s += " All"
		}
		return s
	case *Values:
		return fmt.Sprintf("Values (%d row%s)", len(p.Rows), plural(len(p.Rows)))
	case *Series:
		return "Function Scan on generate_series"
	case *FuncScan:
		return "Function Scan on " + p.Name
	case *Ordinality:
		return "With Ordinality"
	case *RowSource:
		return "COPY input"
	case *Insert:
		s := "Insert on " + p.Table.Name
		if p.OnConflictDoNothing {
			s += " (ON CONFLICT DO NOTHING)"
		}
		if p.OnConflict != nil {
			s += " (ON CONFLICT (" + p.OnConflict.Arbiter.Name + ") DO UPDATE)"
		}
		return s
	case *Update:
		return "Update on " + p.Table.Name
	case *Delete:
		return "Delete on " + p.Table.Name
	}
	return fmt.Sprintf("%T", p)
}

// keyCols names the fixed key columns and the ranged one: "id = $" or
// "a = $, b in a range".
func keyCols(t *catalog.Table, idx *catalog.Index, fixed int, ranged bool) string {
	name := func(i int) string {
		id := idx.Columns[i].Column
		for _, c := range t.Columns {
			if c.ID == id {
				return c.Name
			}
		}
		return "?"
	}
	var parts []string
	for i := 0; i < fixed && i < len(idx.Columns); i++ {
		parts = append(parts, name(i)+" = …")
	}
	if ranged && fixed < len(idx.Columns) {
		parts = append(parts, name(fixed)+" in a range")
	}
	if len(parts) == 0 {
		return "prefix"
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
