package planner

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Date and time functions: date_trunc, extract and date_part, with
// PostgreSQL 15's fields and result types (extract returns numeric,
// date_part double precision). ShaleDB runs in UTC, so timestamptz and
// timestamp fields agree.

// timeOf returns a date or timestamp value as a UTC time; ok is false for
// ±infinity.
func timeOf(v value.Value) (time.Time, bool) {
	var us int64
	switch x := v.(type) {
	case value.Date:
		if x == math.MinInt32 || x == math.MaxInt32 {
			return time.Time{}, false
		}
		return value.Epoch.AddDate(0, 0, int(x)), true
	case value.Timestamp:
		us = int64(x)
	case value.TimestampTZ:
		us = int64(x)
	}
	if us == math.MinInt64 || us == math.MaxInt64 {
		return time.Time{}, false
	}
	return value.Epoch.Add(time.Duration(us) * time.Microsecond), true
}

func micros(t time.Time) int64 { return t.Sub(value.Epoch).Microseconds() }

// timeArg coerces a date/time argument: unknown literals are timestamptz
// (as PostgreSQL resolves date_trunc('day', '…')).
func (b *Builder) timeArg(e expr.Expr) (expr.Expr, error) {
	if isUnknown(e) {
		return b.coerce(e, types.TimestampTZ, "argument")
	}
	switch e.Type().Kind {
	case value.KindDate, value.KindTimestamp, value.KindTimestampTZ:
		return e, nil
	}
	return nil, pgerror.New(pgerror.CodeUndefinedFunction, "function for %s does not exist", e.Type())
}

var truncFields = map[string]bool{"microseconds": true, "milliseconds": true, "second": true, "minute": true, "hour": true,
	"day": true, "week": true, "month": true, "quarter": true, "year": true, "decade": true, "century": true, "millennium": true}

// dateTrunc is date_trunc(field, ts): ts with every finer field zeroed.
func dateTrunc(field string, t time.Time) time.Time {
	y, mo, d := t.Date()
	switch field {
	case "microseconds":
		return t.Truncate(time.Microsecond)
	case "milliseconds":
		return t.Truncate(time.Millisecond)
	case "second":
		return t.Truncate(time.Second)
	case "minute":
		return t.Truncate(time.Minute)
	case "hour":
		return t.Truncate(time.Hour)
	case "day":
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case "week":
		wd := (int(t.Weekday()) + 6) % 7 // Monday is 0
		return time.Date(y, mo, d-wd, 0, 0, 0, 0, time.UTC)
	case "month":
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	case "quarter":
		return time.Date(y, mo-(mo-1)%3, 1, 0, 0, 0, 0, time.UTC)
	case "year":
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	case "decade":
		return time.Date(y-((y%10)+10)%10, 1, 1, 0, 0, 0, 0, time.UTC)
	case "century":
		c := (y + 99) / 100
		if y <= 0 {
			c = -((99 - y) / 100)
		}
		return time.Date((c-1)*100+1, 1, 1, 0, 0, 0, 0, time.UTC)
	case "millennium":
		m := (y + 999) / 1000
		return time.Date((m-1)*1000+1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return t
}

// extractField returns field of t as a decimal string (PostgreSQL's
// numeric result of extract).
func extractField(field string, t time.Time, isDate bool) (string, error) {
	y, mo, d := t.Date()
	frac := func(whole int64, us int64) string {
		// whole + us/1e6, with six decimals
		neg := whole < 0 || us < 0
		s := fmt.Sprintf("%d.%06d", abs64(whole), abs64(us))
		if neg && (whole != 0 || us != 0) {
			s = "-" + s
		}
		return s
	}
	sub := int64(t.Nanosecond() / 1000)
	switch field {
	case "year":
		return fmt.Sprint(y), nil
	case "month":
		return fmt.Sprint(int(mo)), nil
	case "day":
		return fmt.Sprint(d), nil
	case "hour":
		return fmt.Sprint(t.Hour()), nil
	case "minute":
		return fmt.Sprint(t.Minute()), nil
	case "second":
		return frac(int64(t.Second()), sub), nil
	case "milliseconds":
		v := int64(t.Second())*1000000 + sub
		return fmt.Sprintf("%d.%03d", v/1000, v%1000), nil
	case "microseconds":
		return fmt.Sprint(int64(t.Second())*1000000 + sub), nil
	case "dow":
		return fmt.Sprint(int(t.Weekday())), nil
	case "isodow":
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return fmt.Sprint(wd), nil
	case "doy":
		return fmt.Sprint(t.YearDay()), nil
	case "week":
		_, w := t.ISOWeek()
		return fmt.Sprint(w), nil
	case "isoyear":
		iy, _ := t.ISOWeek()
		return fmt.Sprint(iy), nil
	case "quarter":
		return fmt.Sprint((int(mo)-1)/3 + 1), nil
	case "decade":
		return fmt.Sprint(floorDiv(y, 10)), nil
	case "century":
		if y > 0 {
			return fmt.Sprint((y + 99) / 100), nil
		}
		return fmt.Sprint(-((99 - y) / 100)), nil
	case "millennium":
		if y > 0 {
			return fmt.Sprint((y + 999) / 1000), nil
		}
		return fmt.Sprint(-((999 - y) / 1000)), nil
	case "epoch":
		if isDate {
			return fmt.Sprint(t.Unix()), nil
		}
		us := t.UnixMicro()
		return frac(us/1000000, us%1000000), nil
	case "julian":
		return "", pgerror.Unsupported("extract(julian …)")
	}
	return "", pgerror.New(pgerror.CodeFeatureNotSupported, "unit %q not supported for type timestamp", field)
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// timeFunc plans date_trunc, date_part and extract; (nil, nil) for other
// names.
func (b *Builder) timeFunc(name string, args []expr.Expr, loc int32) (expr.Expr, error) {
	switch name {
	case "date_trunc", "date_part", "extract":
	default:
		return nil, nil
	}
	if len(args) != 2 {
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s with %d arguments does not exist", name, len(args)), loc)
	}
	var err error
	if args[0], err = b.coerce(args[0], types.Text, "argument"); err != nil || args[0].Type().Kind != value.KindText {
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(%s, …) does not exist", name, args[0].Type()), loc)
	}
	ts, err := b.timeArg(args[1])
	if err != nil {
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(text, %s) does not exist", name, args[1].Type()), loc)
	}
	args[1] = ts
	in := ts.Type()
	isDate := in.Kind == value.KindDate
	switch name {
	case "date_trunc":
		out := in
		if isDate {
			out = types.TimestampTZ // date_trunc(text, date) resolves to the timestamptz form
			if args[1], err = b.coerce(args[1], types.TimestampTZ, "argument"); err != nil {
				return nil, err
			}
		}
		return &expr.Func{Name: name, Args: args, T: out, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			field := strings.ToLower(string(a[0].(value.Text)))
			if !truncFields[field] {
				return nil, pgerror.New(pgerror.CodeInvalidParameterValue, "unit %q not recognized for type %s", field, out)
			}
			t, ok := timeOf(a[1])
			if !ok {
				return a[1], nil
			}
			us := micros(dateTrunc(field, t))
			if out.Kind == value.KindTimestamp {
				return value.Timestamp(us), nil
			}
			return value.TimestampTZ(us), nil
		}}, nil
	}
	out := types.Numeric
	if name == "date_part" {
		out = types.Float8
	}
	return &expr.Func{Name: name, Args: args, T: out, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
		field := strings.ToLower(string(a[0].(value.Text)))
		if f, ok := fieldAliases[field]; ok {
			field = f
		}
		if isDate && (field == "hour" || field == "minute" || field == "second" || field == "milliseconds" || field == "microseconds") {
			return nil, pgerror.New(pgerror.CodeFeatureNotSupported, "unit %q not supported for type date", field)
		}
		t, ok := timeOf(a[1])
		if !ok {
			return value.Null{}, nil
		}
		s, err := extractField(field, t, isDate)
		if err != nil {
			return nil, err
		}
		d, _, err := apd.NewFromString(s)
		if err != nil {
			return nil, err
		}
		if out.Kind == value.KindFloat {
			f, _ := d.Float64()
			return value.Float(f), nil
		}
		return value.Numeric{Dec: d}, nil
	}}, nil
}

// fieldAliases are the other spellings of extract's fields.
var fieldAliases = map[string]string{"years": "year", "months": "month", "mon": "month", "mons": "month", "days": "day",
	"hours": "hour", "minutes": "minute", "seconds": "second", "millisecond": "milliseconds", "microsecond": "microseconds"}

// dateArith plans date + integer, integer + date, date - integer (a
// date) and date - date (the days between, an integer); ok is false for
// other operands.
func (b *Builder) dateArith(op string, l, r expr.Expr, loc int32) (expr.Expr, bool, error) {
	isDate := func(e expr.Expr) bool { return e.Type().Kind == value.KindDate }
	isInt := func(e expr.Expr) bool { return e.Type().Kind == value.KindInt || isUnknown(e) }
	var err error
	switch {
	case op == "+" && isDate(l) && isInt(r), op == "-" && isDate(l) && isInt(r) && !isDate(r):
		if r, err = b.coerce(r, types.Int4, "operand"); err != nil {
			return nil, true, err
		}
	case op == "+" && isInt(l) && isDate(r):
		if l, err = b.coerce(l, types.Int4, "operand"); err != nil {
			return nil, true, err
		}
		l, r = r, l
	case op == "-" && isDate(l) && isDate(r):
		return &expr.Func{Name: "date_mi", Args: []expr.Expr{l, r}, T: types.Int4, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			x, y := a[0].(value.Date), a[1].(value.Date)
			if x == math.MinInt32 || x == math.MaxInt32 || y == math.MinInt32 || y == math.MaxInt32 {
				return nil, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "cannot subtract infinite dates")
			}
			return value.Int(int64(x) - int64(y)), nil
		}}, true, nil
	default:
		return nil, false, nil
	}
	sign := int64(1)
	if op == "-" {
		sign = -1
	}
	return &expr.Func{Name: "date_pli", Args: []expr.Expr{l, r}, T: types.Date, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
		d := a[0].(value.Date)
		if d == math.MinInt32 || d == math.MaxInt32 {
			return d, nil
		}
		n := int64(d) + sign*int64(a[1].(value.Int))
		if n <= math.MinInt32 || n >= math.MaxInt32 {
			return nil, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "date out of range")
		}
		return value.Date(n), nil
	}}, true, nil
}

// addInterval adds iv to a timestamp's microseconds as PostgreSQL does:
// months first (the day clamped to the month's end), then days, then time.
func addInterval(us int64, iv value.Interval, sign int64) (int64, error) {
	if us == math.MinInt64 || us == math.MaxInt64 {
		return us, nil
	}
	t := value.Epoch.Add(time.Duration(us) * time.Microsecond)
	if iv.Months != 0 {
		y, mo, d := t.Date()
		total := int64(y)*12 + int64(mo-1) + sign*int64(iv.Months)
		ny, nm := int(floorDiv64(total, 12)), time.Month(total-floorDiv64(total, 12)*12+1)
		last := time.Date(ny, nm+1, 0, 0, 0, 0, 0, time.UTC).Day()
		if d > last {
			d = last
		}
		h, mi, sec := t.Clock()
		t = time.Date(ny, nm, d, h, mi, sec, t.Nanosecond(), time.UTC)
	}
	t = t.AddDate(0, 0, int(sign*int64(iv.Days)))
	out := t.Sub(value.Epoch).Microseconds() + sign*iv.Micros
	if t.Year() > 294276 || t.Year() < -4713 {
		return 0, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "timestamp out of range")
	}
	return out, nil
}

func floorDiv64(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// timeArith plans timestamp ± interval, date ± interval, interval +
// timestamp, timestamp - timestamp, interval ± interval and interval
// × or ÷ a number; ok is false for other operands.
func (b *Builder) timeArith(op string, l, r expr.Expr) (expr.Expr, bool, error) {
	kind := func(e expr.Expr) value.Kind { return e.Type().Kind }
	isTS := func(e expr.Expr) bool { return kind(e) == value.KindTimestamp || kind(e) == value.KindTimestampTZ }
	isIv := func(e expr.Expr) bool { return kind(e) == value.KindInterval }
	var err error
	fn := func(t types.T, f func(a, c value.Value) (value.Value, error)) (expr.Expr, bool, error) {
		return &expr.Func{Name: op, Args: []expr.Expr{l, r}, T: t, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			return f(a[0], a[1])
		}}, true, nil
	}
	tsOf := timestampMicros
	mk := func(t types.T, us int64) value.Value {
		if t.Kind == value.KindTimestampTZ {
			return value.TimestampTZ(us)
		}
		return value.Timestamp(us)
	}
	switch {
	case (op == "+" || op == "-") && (isTS(l) || kind(l) == value.KindDate) && (isIv(r) || isUnknown(r) && op == "+"):
		if isUnknown(r) {
			if r, err = b.coerce(r, types.Interval, "operand"); err != nil {
				return nil, true, err
			}
		}
		t := l.Type()
		if kind(l) == value.KindDate {
			if l, err = b.coerce(l, types.Timestamp, "operand"); err != nil {
				return nil, true, err
			}
			t = types.Timestamp
		}
		t.Precision = 0
		sign := int64(1)
		if op == "-" {
			sign = -1
		}
		return fn(t, func(a, c value.Value) (value.Value, error) {
			us, err := addInterval(tsOf(a), c.(value.Interval), sign)
			return mk(t, us), err
		})
	case op == "+" && isIv(l) && (isTS(r) || kind(r) == value.KindDate):
		l, r = r, l
		return b.timeArith(op, l, r)
	case op == "-" && isTS(l) && (isTS(r) || isUnknown(r)):
		if r, err = b.coerce(r, l.Type(), "operand"); err != nil {
			return nil, true, err
		}
		return fn(types.Interval, func(a, c value.Value) (value.Value, error) {
			x, y := tsOf(a), tsOf(c)
			if x == math.MinInt64 || x == math.MaxInt64 || y == math.MinInt64 || y == math.MaxInt64 {
				return nil, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "cannot subtract infinite timestamps")
			}
			return justifyHours(value.Interval{Micros: x - y}), nil
		})
	case (op == "+" || op == "-") && isIv(l) && (isIv(r) || isUnknown(r)):
		if r, err = b.coerce(r, types.Interval, "operand"); err != nil {
			return nil, true, err
		}
		sign := int64(1)
		if op == "-" {
			sign = -1
		}
		return fn(types.Interval, func(a, c value.Value) (value.Value, error) {
			x, y := a.(value.Interval), c.(value.Interval)
			return value.Interval{Months: x.Months + int32(sign)*y.Months, Days: x.Days + int32(sign)*y.Days, Micros: x.Micros + sign*y.Micros}, nil
		})
	case (op == "*" || op == "/") && isIv(l) && numericRank(r.Type()) > 0, op == "*" && isIv(r) && numericRank(l.Type()) > 0:
		if isIv(r) {
			l, r = r, l
		}
		if r, err = b.coerce(r, types.Float8, "operand"); err != nil {
			return nil, true, err
		}
		return fn(types.Interval, func(a, c value.Value) (value.Value, error) {
			f := float64(c.(value.Float))
			if op == "/" {
				if f == 0 {
					return nil, pgerror.New(pgerror.CodeDivisionByZero, "division by zero")
				}
				f = 1 / f
			}
			iv := a.(value.Interval)
			m := float64(iv.Months) * f
			d := float64(iv.Days)*f + (m-math.Trunc(m))*30
			us := float64(iv.Micros)*f + (d-math.Trunc(d))*864e8
			return value.Interval{Months: int32(m), Days: int32(d), Micros: int64(math.Round(us))}, nil
		})
	}
	return nil, false, nil
}

// justifyHours moves whole days of time into days, as timestamp
// subtraction does.
func justifyHours(iv value.Interval) value.Interval {
	const day = 86_400_000_000
	whole := iv.Micros / day
	iv.Micros -= whole * day
	iv.Days += int32(whole)
	if iv.Days > 0 && iv.Micros < 0 {
		iv.Micros += day
		iv.Days--
	} else if iv.Days < 0 && iv.Micros > 0 {
		iv.Micros -= day
		iv.Days++
	}
	return iv
}
