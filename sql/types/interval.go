package types

import (
	"math"
	"strconv"
	"strings"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

// intervalUnits maps an interval unit to its size: months, days or
// microseconds.
var intervalUnits = map[string]struct {
	months, days int64
	micros       float64
}{
	"microsecond": {micros: 1}, "microseconds": {micros: 1}, "us": {micros: 1}, "usec": {micros: 1}, "usecs": {micros: 1},
	"millisecond": {micros: 1e3}, "milliseconds": {micros: 1e3}, "ms": {micros: 1e3}, "msec": {micros: 1e3}, "msecs": {micros: 1e3},
	"second": {micros: 1e6}, "seconds": {micros: 1e6}, "s": {micros: 1e6}, "sec": {micros: 1e6}, "secs": {micros: 1e6},
	"minute": {micros: 6e7}, "minutes": {micros: 6e7}, "m": {micros: 6e7}, "min": {micros: 6e7}, "mins": {micros: 6e7},
	"hour": {micros: 36e8}, "hours": {micros: 36e8}, "h": {micros: 36e8}, "hr": {micros: 36e8}, "hrs": {micros: 36e8},
	"day": {days: 1}, "days": {days: 1}, "d": {days: 1},
	"week": {days: 7}, "weeks": {days: 7}, "w": {days: 7},
	"month": {months: 1}, "months": {months: 1}, "mon": {months: 1}, "mons": {months: 1},
	"year": {months: 12}, "years": {months: 12}, "y": {months: 12}, "yr": {months: 12}, "yrs": {months: 12},
	"decade": {months: 120}, "decades": {months: 120},
	"century": {months: 1200}, "centuries": {months: 1200},
	"millennium": {months: 12000}, "millennia": {months: 12000},
}

// ParseInterval reads an interval in PostgreSQL's traditional input form:
// "<number> <unit>" pairs ("1 day 2 hours", "1.5 hours", "3 mons"), an
// optional "[-]HH:MM[:SS[.frac]]" time, "@" and "ago".
func ParseInterval(s string) (value.Value, error) {
	bad := func() error {
		return pgerror.New(pgerror.CodeInvalidDatetimeFormat, "invalid input syntax for type interval: %q", s)
	}
	f := strings.Fields(strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "@")))
	if len(f) == 0 {
		return nil, bad()
	}
	var months, days float64
	var micros float64
	ago := false
	for i := 0; i < len(f); i++ {
		tok := f[i]
		if tok == "ago" && i == len(f)-1 {
			ago = true
			continue
		}
		if strings.Contains(tok, ":") {
			us, ok := parseClock(tok)
			if !ok {
				return nil, bad()
			}
			micros += us
			continue
		}
		// A number, with its unit glued on ("2h") or as the next field.
		j := 0
		for j < len(tok) && (tok[j] == '-' || tok[j] == '+' || tok[j] == '.' || tok[j] >= '0' && tok[j] <= '9') {
			j++
		}
		num, err := strconv.ParseFloat(tok[:j], 64)
		if err != nil {
			return nil, bad()
		}
		unit := tok[j:]
		if unit == "" {
			if i+1 >= len(f) {
				// A bare number is seconds.
				micros += num * 1e6
				continue
			}
			i++
			unit = f[i]
		}
		u, ok := intervalUnits[unit]
		if !ok {
			return nil, bad()
		}
		// Fractions cascade down: 1.5 months is 1 month 15 days.
		m := num * float64(u.months)
		d := num*float64(u.days) + (m-math.Trunc(m))*30
		months += math.Trunc(m)
		days += math.Trunc(d)
		micros += num*u.micros + (d-math.Trunc(d))*864e8
	}
	if ago {
		months, days, micros = -months, -days, -micros
	}
	if math.Abs(months) > math.MaxInt32 || math.Abs(days) > math.MaxInt32 || math.Abs(micros) > math.MaxInt64/2 {
		return nil, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "interval out of range")
	}
	return value.Interval{Months: int32(months), Days: int32(days), Micros: int64(math.Round(micros))}, nil
}

// parseClock reads [-|+]HH:MM[:SS[.frac]] as microseconds.
func parseClock(s string) (float64, bool) {
	sign := 1.0
	switch {
	case strings.HasPrefix(s, "-"):
		sign, s = -1, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 64)
	m, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || m > 59 {
		return 0, false
	}
	var sec float64
	if len(parts) == 3 {
		var err error
		if sec, err = strconv.ParseFloat(parts[2], 64); err != nil || sec >= 60 {
			return 0, false
		}
	}
	return sign * (float64(h)*36e8 + float64(m)*6e7 + sec*1e6), true
}
