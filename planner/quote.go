package planner

import "strings"

// nonUnreservedKeywords are PostgreSQL 15's keywords that quote_ident
// quotes: the reserved, column-name and type/function-name categories.
var nonUnreservedKeywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`
all analyse analyze and any array as asc asymmetric both case cast check collate column
constraint create current_catalog current_date current_role current_time current_timestamp
current_user default deferrable desc distinct do else end except false fetch for foreign from
grant group having in initially intersect into lateral leading limit localtime localtimestamp
not null offset on only or order placing primary references returning select session_user
some symmetric table then to trailing true union unique user using variadic when where window
with
authorization binary collation concurrently cross current_schema freeze full ilike inner is
isnull join left like natural notnull outer overlaps right similar tablesample verbose
between bigint bit boolean char character coalesce dec decimal exists extract float greatest
grouping inout int integer interval least national nchar none normalize nullif numeric out
overlay position precision real row setof smallint substring time timestamp treat trim values
varchar xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi
xmlroot xmlserialize xmltable`) {
		nonUnreservedKeywords[k] = true
	}
}

// QuoteIdent quotes an identifier as PostgreSQL's quote_ident does: only
// when it is not a plain lower-case name or is a keyword that needs it.
func QuoteIdent(s string) string {
	plain := s != "" && !nonUnreservedKeywords[s]
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
