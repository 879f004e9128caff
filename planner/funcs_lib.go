package planner

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// String and math functions with PostgreSQL 15's semantics and result
// types. Each returns (nil, nil) when name is not one of them.

// noSuchFunction is 42883 for name called with args' types.
func noSuchFunction(name string, args []expr.Expr, loc int32) error {
	sig := make([]string, len(args))
	for i, a := range args {
		sig[i] = a.Type().String()
	}
	return posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(%s) does not exist", name, strings.Join(sig, ", ")).
		WithHint("No function matches the given name and argument types. You might need to add explicit type casts."), loc)
}

// libFunc plans a call of one of the library's functions.
func (b *Builder) libFunc(name string, args []expr.Expr, loc int32) (expr.Expr, error) {
	notExist := func() error { return noSuchFunction(name, args, loc) }
	// texts makes every argument text (unknown literals become text;
	// other types must be text already).
	texts := func(n ...int) error {
		if len(n) == 2 && (len(args) < n[0] || len(args) > n[1]) || len(n) == 1 && len(args) != n[0] {
			return notExist()
		}
		for i := range args {
			if isUnknown(args[i]) {
				c, err := b.coerce(args[i], types.Text, "argument")
				if err != nil {
					return err
				}
				args[i] = c
			}
			if args[i].Type().Kind != value.KindText {
				return notExist()
			}
		}
		return nil
	}
	text := func(v value.Value) string { return string(v.(value.Text)) }
	fn := func(t types.T, strict bool, f func(a []value.Value) (value.Value, error)) *expr.Func {
		return &expr.Func{Name: name, Args: args, T: t, Strict: strict, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) { return f(a) }}
	}
	// textInts wants text, then integers, min to max arguments in all.
	textInts := func(min, max int) error {
		if len(args) < min || len(args) > max {
			return notExist()
		}
		if isUnknown(args[0]) {
			c, err := b.coerce(args[0], types.Text, "argument")
			if err != nil {
				return err
			}
			args[0] = c
		}
		if args[0].Type().Kind != value.KindText {
			return notExist()
		}
		for i := 1; i < len(args); i++ {
			c, err := b.coerce(args[i], types.Int4, "argument")
			if err != nil || c.Type().Kind != value.KindInt {
				return notExist()
			}
			args[i] = c
		}
		return nil
	}
	switch name {
	case "repeat":
		if err := textInts(2, 2); err != nil {
			return nil, err
		}
		return fn(types.Text, true, func(a []value.Value) (value.Value, error) {
			n := max(int64(a[1].(value.Int)), 0)
			if n*int64(len(text(a[0]))) > 1<<30-1 {
				return nil, pgerror.New(pgerror.CodeProgramLimitExceeded, "requested length too large")
			}
			return value.Text(strings.Repeat(text(a[0]), int(n))), nil
		}), nil
	case "left", "right":
		if err := textInts(2, 2); err != nil {
			return nil, err
		}
		return fn(types.Text, true, func(a []value.Value) (value.Value, error) {
			r := []rune(text(a[0]))
			n := int64(a[1].(value.Int))
			if n < 0 {
				n = max(int64(len(r))+n, 0)
			}
			n = min(n, int64(len(r)))
			if name == "left" {
				return value.Text(string(r[:n])), nil
			}
			return value.Text(string(r[int64(len(r))-n:])), nil
		}), nil
	case "reverse":
		if err := texts(1); err != nil {
			return nil, err
		}
		return fn(types.Text, true, func(a []value.Value) (value.Value, error) {
			r := []rune(text(a[0]))
			slices.Reverse(r)
			return value.Text(string(r)), nil
		}), nil
	case "substr", "substring":
		if err := textInts(2, 3); err != nil {
			return nil, err
		}
		return fn(types.Text, true, func(a []value.Value) (value.Value, error) {
			runes := []rune(text(a[0]))
			start := int64(a[1].(value.Int))
			end := int64(math.MaxInt64)
			if len(a) == 3 {
				n := int64(a[2].(value.Int))
				if n < 0 {
					return nil, pgerror.New(pgerror.CodeSubstringError, "negative substring length not allowed")
				}
				end = start + n
			}
			lo, hi := max(start, 1), min(end, int64(len(runes))+1)
			if lo >= hi {
				return value.Text(""), nil
			}
			return value.Text(string(runes[lo-1 : hi-1])), nil
		}), nil
	case "position", "strpos":
		// position(sub IN s) parses as position(s, sub), like strpos.
		if err := texts(2); err != nil {
			return nil, err
		}
		return fn(types.Int4, true, func(a []value.Value) (value.Value, error) {
			s, sub := text(a[0]), text(a[1])
			i := strings.Index(s, sub)
			if i < 0 {
				return value.Int(0), nil
			}
			return value.Int(utf8.RuneCountInString(s[:i]) + 1), nil
		}), nil
	case "replace":
		if err := texts(3); err != nil {
			return nil, err
		}
		return fn(types.Text, true, func(a []value.Value) (value.Value, error) {
			if text(a[1]) == "" {
				return a[0], nil
			}
			return value.Text(strings.ReplaceAll(text(a[0]), text(a[1]), text(a[2]))), nil
		}), nil
	case "btrim", "ltrim", "rtrim":
		if err := texts(1, 2); err != nil {
			return nil, err
		}
		return fn(types.Text, true, func(a []value.Value) (value.Value, error) {
			cut := " "
			if len(a) == 2 {
				cut = text(a[1])
			}
			s := text(a[0])
			if name != "rtrim" {
				s = strings.TrimLeft(s, cut)
			}
			if name != "ltrim" {
				s = strings.TrimRight(s, cut)
			}
			return value.Text(s), nil
		}), nil
	case "concat", "concat_ws":
		if len(args) == 0 || name == "concat_ws" && len(args) < 2 {
			return nil, notExist()
		}
		types_ := make([]types.T, len(args))
		for i := range args {
			if isUnknown(args[i]) {
				c, err := b.coerce(args[i], types.Text, "argument")
				if err != nil {
					return nil, err
				}
				args[i] = c
			}
			types_[i] = args[i].Type()
		}
		if name == "concat_ws" && types_[0].Kind != value.KindText {
			return nil, notExist()
		}
		return fn(types.Text, false, func(a []value.Value) (value.Value, error) {
			var parts []string
			first := 0
			if name == "concat_ws" {
				if a[0].Kind() == value.KindNull {
					return value.Null{}, nil
				}
				first = 1
			}
			for i := first; i < len(a); i++ {
				if a[i].Kind() == value.KindNull {
					continue
				}
				v, err := expr.CastValue(a[i], types_[i], types.Text)
				if err != nil {
					return nil, err
				}
				parts = append(parts, text(v))
			}
			sep := ""
			if name == "concat_ws" {
				sep = text(a[0])
			}
			return value.Text(strings.Join(parts, sep)), nil
		}), nil
	case "round", "ceil", "ceiling", "floor", "trunc":
		if len(args) < 1 || len(args) > 2 || len(args) == 2 && name != "round" && name != "trunc" {
			return nil, notExist()
		}
		var t types.T
		var err error
		if len(args) == 2 {
			// round(numeric, int) and trunc(numeric, int) only: integers
			// and unknown literals go to numeric, floats do not.
			if k := args[0].Type().Kind; !isUnknown(args[0]) && (numericRank(args[0].Type()) == 0 || k == value.KindFloat) {
				return nil, notExist()
			}
			if args[0], err = b.coerce(args[0], types.Numeric, "argument"); err != nil {
				return nil, err
			}
			if args[1], err = b.coerce(args[1], types.Int4, "argument"); err != nil || args[1].Type().Kind != value.KindInt {
				return nil, notExist()
			}
			t = types.Numeric
		} else if t, err = b.mathArg(args, 0); err != nil {
			return nil, err
		}
		return fn(t, true, func(a []value.Value) (value.Value, error) {
			scale := int64(0)
			if len(a) == 2 {
				scale = int64(a[1].(value.Int))
			}
			return roundLike(name, a[0], scale)
		}), nil
	case "mod":
		if len(args) != 2 {
			return nil, notExist()
		}
		l, r, t, err := b.unify(args[0], args[1], "%", loc)
		if err != nil {
			return nil, err
		}
		if numericRank(t) == 0 || t.Kind == value.KindFloat {
			return nil, notExist()
		}
		args = []expr.Expr{l, r}
		return fn(t, true, func(a []value.Value) (value.Value, error) { return expr.Arith("%", t, a[0], a[1]) }), nil
	case "power", "pow":
		if len(args) != 2 {
			return nil, notExist()
		}
		for i := range args {
			c, err := b.coerce(args[i], types.Float8, "argument")
			if err != nil {
				return nil, notExist()
			}
			if args[i].Type().Kind == value.KindNumeric {
				return nil, posErr(pgerror.Unsupported("power(numeric, numeric)"), loc)
			}
			args[i] = c
		}
		return fn(types.Float8, true, func(a []value.Value) (value.Value, error) {
			x, y := float64(a[0].(value.Float)), float64(a[1].(value.Float))
			if x == 0 && y < 0 {
				return nil, pgerror.New(pgerror.CodeInvalidArgumentForPowerFunction, "zero raised to a negative power is undefined")
			}
			if x < 0 && y != math.Trunc(y) {
				return nil, pgerror.New(pgerror.CodeInvalidArgumentForPowerFunction, "a negative number raised to a non-integer power yields a complex result")
			}
			r := math.Pow(x, y)
			if math.IsInf(r, 0) && !math.IsInf(x, 0) && !math.IsInf(y, 0) {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value out of range: overflow")
			}
			return value.Float(r), nil
		}), nil
	}
	return nil, nil
}

// mathArg resolves the numeric argument i of round/ceil/floor/trunc as
// PostgreSQL does: numeric stays numeric, floats and integers go to
// double precision (its preferred numeric type), unknown literals too.
func (b *Builder) mathArg(args []expr.Expr, i int) (types.T, error) {
	t := args[i].Type()
	switch {
	case t.Kind == value.KindNumeric:
		return types.Numeric, nil
	case isUnknown(args[i]) || numericRank(t) > 0:
		c, err := b.coerce(args[i], types.Float8, "argument")
		if err != nil {
			return t, err
		}
		args[i] = c
		return types.Float8, nil
	}
	return t, pgerror.New(pgerror.CodeUndefinedFunction, "function round(%s) does not exist", t)
}

var roundCtx = func() *apd.Context {
	c := apd.BaseContext.WithPrecision(1000)
	c.Rounding = apd.RoundHalfUp // half away from zero, as numeric rounds
	return c
}()

// roundLike is round, trunc, ceil and floor of a float or numeric; scale
// is round's and trunc's second argument (digits after the point;
// negative rounds to tens, hundreds, ...).
func roundLike(name string, v value.Value, scale int64) (value.Value, error) {
	switch x := v.(type) {
	case value.Float:
		f := float64(x)
		switch name {
		case "round":
			return value.Float(math.RoundToEven(f)), nil
		case "trunc":
			return value.Float(math.Trunc(f)), nil
		case "ceil", "ceiling":
			return value.Float(math.Ceil(f)), nil
		}
		return value.Float(math.Floor(f)), nil
	case value.Numeric:
		d := x.Dec
		if d.Form != apd.Finite {
			return v, nil
		}
		out := new(apd.Decimal)
		var err error
		switch name {
		case "round", "trunc":
			c := roundCtx
			if name == "trunc" {
				c = roundCtx.WithPrecision(1000)
				c.Rounding = apd.RoundDown
			}
			exp := int32(-scale)
			if scale > 1000 || scale < -1000 {
				exp = int32(-max(min(scale, 1000), -1000))
			}
			if _, err = c.Quantize(out, d, exp); err == nil && exp > 0 {
				// Negative scales show no decimals: 1234.5 → 1200.
				_, err = c.Quantize(out, out, 0)
			}
		case "ceil", "ceiling":
			_, err = roundCtx.Ceil(out, d)
		default:
			_, err = roundCtx.Floor(out, d)
		}
		if err != nil {
			return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value out of range: %v", err)
		}
		if out.IsZero() {
			out.Negative = false
		}
		return value.Numeric{Dec: out}, nil
	}
	return v, nil
}

// likeExpr plans [NOT] LIKE / ILIKE (and their ~~ operators).
func (b *Builder) likeExpr(a *pg.A_Expr, sc *scope, op string) (expr.Expr, error) {
	l, err := b.expr(a.Lexpr, sc)
	if err != nil {
		return nil, err
	}
	var r expr.Expr
	escape := "\\"
	// LIKE … ESCAPE 'x' arrives as like_escape(pattern, 'x').
	if fc := a.Rexpr.GetFuncCall(); fc != nil && funcName(fc) == "like_escape" && len(fc.Args) == 2 {
		if r, err = b.expr(fc.Args[0], sc); err != nil {
			return nil, err
		}
		e := fc.Args[1].GetAConst()
		if e == nil || e.GetSval() == nil {
			return nil, posErr(pgerror.Unsupported("a non-constant ESCAPE"), a.Location)
		}
		escape = e.GetSval().Sval
		if utf8.RuneCountInString(escape) > 1 {
			return nil, posErr(pgerror.New(pgerror.CodeInvalidEscapeSequence, "invalid escape string").WithHint("Escape string must be empty or one character."), a.Location)
		}
	} else if r, err = b.expr(a.Rexpr, sc); err != nil {
		return nil, err
	}
	for _, p := range []*expr.Expr{&l, &r} {
		if isUnknown(*p) {
			if *p, err = b.coerce(*p, types.Text, "argument"); err != nil {
				return nil, err
			}
		}
		if (*p).Type().Kind != value.KindText {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", l.Type(), op, r.Type()), a.Location)
		}
	}
	fold := strings.HasSuffix(op, "*")
	negate := strings.HasPrefix(op, "!")
	return &expr.Func{Name: op, Args: []expr.Expr{l, r}, T: types.Bool, Strict: true, Fn: func(_ *expr.Env, v []value.Value) (value.Value, error) {
		s, p := string(v[0].(value.Text)), string(v[1].(value.Text))
		if fold {
			s, p = strings.ToLower(s), strings.ToLower(p)
		}
		ok, err := likeMatch(s, p, escape)
		if err != nil {
			return nil, err
		}
		return value.Bool(ok != negate), nil
	}}, nil
}

// likeMatch matches s against a LIKE pattern: % any run, _ one character,
// the escape character (empty for none) making the next one literal.
func likeMatch(s, pattern, escape string) (bool, error) {
	p := []rune(pattern)
	r := []rune(s)
	esc := rune(-1)
	if escape != "" {
		esc, _ = utf8.DecodeRuneInString(escape)
	}
	// Iterative matching with backtracking to the last %.
	pi, si := 0, 0
	starP, starS := -1, -1
	for si < len(r) {
		if pi < len(p) {
			c := p[pi]
			switch {
			case c == esc:
				if pi+1 >= len(p) {
					return false, pgerror.New(pgerror.CodeInvalidEscapeSequence, "LIKE pattern must not end with escape character")
				}
				if p[pi+1] == r[si] {
					pi, si = pi+2, si+1
					continue
				}
			case c == '%':
				starP, starS = pi, si
				pi++
				continue
			case c == '_' || c == r[si]:
				pi, si = pi+1, si+1
				continue
			}
		}
		if starP < 0 {
			return false, nil
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '%' {
		pi++
	}
	if pi < len(p) && p[pi] == esc && pi+1 >= len(p) {
		return false, pgerror.New(pgerror.CodeInvalidEscapeSequence, "LIKE pattern must not end with escape character")
	}
	return pi == len(p), nil
}

// minMax plans GREATEST and LEAST: NULLs are ignored; all NULL is NULL.
func (b *Builder) minMax(m *pg.MinMaxExpr, sc *scope) (expr.Expr, error) {
	name := "greatest"
	if m.Op == pg.MinMaxOp_IS_LEAST {
		name = "least"
	}
	args := make([]expr.Expr, len(m.Args))
	for i, a := range m.Args {
		e, err := b.expr(a, sc)
		if err != nil {
			return nil, err
		}
		args[i] = e
	}
	args, t, err := b.commonType(args, strings.ToUpper(name), m.Location)
	if err != nil {
		return nil, err
	}
	return &expr.Func{Name: name, Args: args, T: t, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
		var best value.Value = value.Null{}
		for _, v := range a {
			if v.Kind() == value.KindNull {
				continue
			}
			if best.Kind() == value.KindNull {
				best = v
				continue
			}
			c := value.Compare(v, best)
			if name == "greatest" && c > 0 || name == "least" && c < 0 {
				best = v
			}
		}
		return best, nil
	}}, nil
}

// regexOp plans the POSIX regular-expression match operators ~ (case
// sensitive), ~* (insensitive) and their negations, with Go's RE2 syntax
// (which covers the common POSIX forms psql and applications use).
func (b *Builder) regexOp(op string, l, r expr.Expr, loc int32) (expr.Expr, error) {
	var err error
	for _, p := range []*expr.Expr{&l, &r} {
		if isUnknown(*p) {
			if *p, err = b.coerce(*p, types.Text, "operand"); err != nil {
				return nil, err
			}
		}
		if (*p).Type().Kind != value.KindText {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", l.Type(), op, r.Type()), loc)
		}
	}
	fold := strings.HasSuffix(op, "*")
	negate := strings.HasPrefix(op, "!")
	var cache struct {
		pattern string
		re      *regexp.Regexp
	}
	return &expr.Func{Name: op, Args: []expr.Expr{l, r}, T: types.Bool, Strict: true, Fn: func(_ *expr.Env, v []value.Value) (value.Value, error) {
		p := string(v[1].(value.Text))
		if fold {
			p = "(?i)" + p
		}
		re := cache.re
		if re == nil || cache.pattern != p {
			var err error
			if re, err = regexp.Compile(p); err != nil {
				return nil, pgerror.New(pgerror.CodeInvalidRegularExpression, "invalid regular expression: %v", err)
			}
			cache.pattern, cache.re = p, re
		}
		return value.Bool(re.MatchString(string(v[0].(value.Text))) != negate), nil
	}}, nil
}
