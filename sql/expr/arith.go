package expr

import (
	"math"
	"strings"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Binary is arithmetic (+ - * / %) or concatenation (||). Both operands
// have T's kind (the planner casts them), except for ||.
type Binary struct {
	Op   string
	L, R Expr
	T    types.T
}

func (b *Binary) Type() types.T { return b.T }
func (b *Binary) Eval(env *Env) (value.Value, error) {
	l, err := b.L.Eval(env)
	if err != nil {
		return nil, err
	}
	r, err := b.R.Eval(env)
	if err != nil {
		return nil, err
	}
	if l.Kind() == value.KindNull || r.Kind() == value.KindNull {
		return value.Null{}, nil
	}
	return Arith(b.Op, b.T, l, r)
}

// Neg is unary minus.
type Neg struct{ E Expr }

func (n *Neg) Type() types.T { return n.E.Type() }
func (n *Neg) Eval(env *Env) (value.Value, error) {
	v, err := n.E.Eval(env)
	if err != nil || v.Kind() == value.KindNull {
		return v, err
	}
	switch v := v.(type) {
	case value.Int:
		return intArith("-", n.E.Type(), 0, int64(v))
	case value.Float:
		return -v, nil
	case value.Numeric:
		d := new(apd.Decimal).Neg(v.Dec)
		if d.Form == apd.NaN {
			d.Negative = false
		}
		return value.Numeric{Dec: d}, nil
	}
	return nil, pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: - %s", n.E.Type())
}

func intOverflow(t types.T) error {
	name := "bigint"
	switch t.OID {
	case types.OIDInt2:
		name = "smallint"
	case types.OIDInt4:
		name = "integer"
	}
	return pgerror.New(pgerror.CodeNumericValueOutOfRange, "%s out of range", name)
}

func divByZero() error { return pgerror.New(pgerror.CodeDivisionByZero, "division by zero") }

// Arith applies op to two non-NULL values of result type t's kind.
func Arith(op string, t types.T, l, r value.Value) (value.Value, error) {
	if op == "||" {
		return value.Text(string(asText(l)) + string(asText(r))), nil
	}
	switch l := l.(type) {
	case value.Int:
		return intArith(op, t, int64(l), int64(r.(value.Int)))
	case value.Float:
		return floatArith(op, t, float64(l), float64(r.(value.Float)))
	case value.Numeric:
		return numericArith(op, l.Dec, r.(value.Numeric).Dec)
	}
	return nil, pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", t, op, t)
}

func asText(v value.Value) value.Text {
	if t, ok := v.(value.Text); ok {
		return t
	}
	return value.Text(v.String())
}

func intArith(op string, t types.T, a, b int64) (value.Value, error) {
	var r int64
	switch op {
	case "+":
		r = a + b
		if (r > a) != (b > 0) {
			return nil, intOverflow(t)
		}
	case "-":
		r = a - b
		if (r < a) != (b > 0) {
			return nil, intOverflow(t)
		}
	case "*":
		if a != 0 && b != 0 {
			r = a * b
			if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
				return nil, intOverflow(t)
			}
		}
	case "/":
		if b == 0 {
			return nil, divByZero()
		}
		if a == math.MinInt64 && b == -1 {
			return nil, intOverflow(t)
		}
		r = a / b
	case "%":
		if b == 0 {
			return nil, divByZero()
		}
		if b == -1 {
			return value.Int(0), nil
		}
		r = a % b
	default:
		return nil, pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", t, op, t)
	}
	v, err := types.Coerce(t, value.Int(r))
	if err != nil {
		return nil, intOverflow(t)
	}
	return v, nil
}

func floatArith(op string, t types.T, a, b float64) (value.Value, error) {
	var r float64
	switch op {
	case "+":
		r = a + b
	case "-":
		r = a - b
	case "*":
		r = a * b
	case "/":
		if b == 0 {
			return nil, divByZero()
		}
		r = a / b
	default:
		return nil, pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", t, op, t)
	}
	if math.IsInf(r, 0) && !math.IsInf(a, 0) && !math.IsInf(b, 0) {
		return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value out of range: overflow")
	}
	return types.Coerce(t, value.Float(r))
}

// numericCtx is exact enough for the precision PostgreSQL allows.
var numericCtx = func() *apd.Context {
	c := apd.BaseContext.WithPrecision(2000)
	c.Rounding = apd.RoundHalfUp
	c.MaxExponent = apd.MaxExponent
	c.MinExponent = apd.MinExponent
	return c
}()

func isNaNDec(d *apd.Decimal) bool { return d.Form == apd.NaN || d.Form == apd.NaNSignaling }

func numericArith(op string, a, b *apd.Decimal) (value.Value, error) {
	if isNaNDec(a) || isNaNDec(b) {
		return value.Numeric{Dec: &apd.Decimal{Form: apd.NaN}}, nil
	}
	out := new(apd.Decimal)
	var err error
	switch op {
	case "+":
		_, err = numericCtx.Add(out, a, b)
	case "-":
		_, err = numericCtx.Sub(out, a, b)
	case "*":
		_, err = numericCtx.Mul(out, a, b)
	case "/":
		if b.IsZero() && b.Form == apd.Finite {
			return nil, divByZero()
		}
		return DivNumeric(a, b)
	case "%":
		if b.IsZero() && b.Form == apd.Finite {
			return nil, divByZero()
		}
		_, err = numericCtx.Rem(out, a, b)
	default:
		return nil, pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: numeric %s numeric", op)
	}
	if err != nil {
		return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value overflows numeric format")
	}
	if out.Form == apd.NaN {
		out.Negative = false
	}
	return value.Numeric{Dec: out}, nil
}

// DivNumeric divides at PostgreSQL's result scale (select_div_scale):
// at least 16 significant digits, and no fewer fractional digits than
// either operand shows.
func DivNumeric(a, b *apd.Decimal) (value.Value, error) {
	if a.Form == apd.Infinite || b.Form == apd.Infinite {
		out := new(apd.Decimal)
		if _, err := numericCtx.Quo(out, a, b); err != nil {
			return nil, err
		}
		return value.Numeric{Dec: out}, nil
	}
	w1, f1 := baseWeight(a)
	w2, f2 := baseWeight(b)
	qweight := w1 - w2
	if f1 <= f2 {
		qweight--
	}
	rscale := 16 - qweight*4
	rscale = max(rscale, displayScale(a), displayScale(b), 0)
	rscale = min(rscale, 1000)
	q := new(apd.Decimal)
	if _, err := numericCtx.Quo(q, a, b); err != nil {
		return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value overflows numeric format")
	}
	out := new(apd.Decimal)
	if _, err := numericCtx.Quantize(out, q, int32(-rscale)); err != nil {
		return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value overflows numeric format")
	}
	return value.Numeric{Dec: out}, nil
}

func displayScale(d *apd.Decimal) int {
	if d.Exponent < 0 {
		return int(-d.Exponent)
	}
	return 0
}

// baseWeight returns the weight (power of 10000) of d's first non-zero
// base-10000 digit and that digit, as PostgreSQL's NumericVar holds them.
func baseWeight(d *apd.Decimal) (weight, first int) {
	if d.Coeff.Sign() == 0 {
		return 0, 0
	}
	digits := d.Coeff.String()
	exp := int(d.Exponent)
	// Position of the first digit relative to the decimal point: the
	// value's leading digit has decimal exponent e10.
	e10 := len(digits) - 1 + exp
	// Base-10000 weight of that digit: floor(e10 / 4).
	weight = floorDiv(e10, 4)
	// The first base-10000 digit holds the leading decimal digits down to
	// exponent 4*weight.
	n := e10 - 4*weight + 1 // decimal digits in the first group
	lead := digits
	if len(lead) > n {
		lead = lead[:n]
	} else {
		lead += strings.Repeat("0", n-len(lead))
	}
	for _, c := range lead {
		first = first*10 + int(c-'0')
	}
	return weight, first
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
