package value

import (
	"cmp"
	"strconv"
	"strings"
)

// Interval is PostgreSQL's interval: months, days and microseconds, kept
// apart (a month is not a fixed number of days, nor a day of hours, when
// added to a timestamp).
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// KindInterval is Interval's kind.
const KindInterval Kind = KindJSONB + 1

func (Interval) Kind() Kind { return KindInterval }

// span is the interval's length for comparison, as PostgreSQL compares
// intervals: a month is 30 days, a day 24 hours.
func (i Interval) span() (hi, lo int64) {
	const day = 86_400_000_000
	days := int64(i.Months)*30 + int64(i.Days)
	// days*day can overflow int64 for extreme values; compare in two
	// parts instead.
	total := i.Micros
	hi = days + total/day
	lo = total % day
	if lo < 0 {
		lo += day
		hi--
	}
	return hi, lo
}

func compareInterval(a, b Interval) int {
	ah, al := a.span()
	bh, bl := b.span()
	if c := cmp.Compare(ah, bh); c != 0 {
		return c
	}
	return cmp.Compare(al, bl)
}

// String prints the interval as PostgreSQL does with IntervalStyle
// postgres: "1 year 2 mons 3 days 04:05:06.5", "-1 days +02:00:00",
// "00:00:00".
func (i Interval) String() string {
	var b strings.Builder
	neg := false // a field printed so far was negative
	field := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if n > 0 && neg {
			b.WriteByte('+')
		}
		b.WriteString(strconv.FormatInt(n, 10))
		b.WriteByte(' ')
		b.WriteString(unit)
		if n != 1 {
			b.WriteByte('s')
		}
		neg = neg || n < 0
	}
	field(int64(i.Months/12), "year")
	field(int64(i.Months%12), "mon")
	field(int64(i.Days), "day")
	if i.Micros != 0 || b.Len() == 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		us := i.Micros
		switch {
		case us < 0:
			b.WriteByte('-')
			us = -us
		case neg:
			b.WriteByte('+')
		}
		h := us / 3_600_000_000
		m := us / 60_000_000 % 60
		s := us / 1_000_000 % 60
		frac := us % 1_000_000
		b.WriteString(pad2(h))
		b.WriteByte(':')
		b.WriteString(pad2(m))
		b.WriteByte(':')
		b.WriteString(pad2(s))
		if frac != 0 {
			f := strconv.FormatInt(frac+1_000_000, 10)[1:]
			b.WriteByte('.')
			b.WriteString(strings.TrimRight(f, "0"))
		}
	}
	return b.String()
}

func pad2(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}
