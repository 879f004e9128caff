package types

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

func invalidText(t T, s string) *pgerror.Error {
	return pgerror.New(pgerror.CodeInvalidTextRepresentation, "invalid input syntax for type %s: %q", names[t.OID], s)
}

// ParseText reads the text form of a value of type t, as PostgreSQL's
// input functions do, then applies t's modifiers.
func ParseText(t T, s string) (value.Value, error) {
	v, err := parseText(t, s)
	if err != nil {
		return nil, err
	}
	return Coerce(t, v)
}

func parseText(t T, s string) (value.Value, error) {
	if t.IsArray() {
		return parseArray(t, s)
	}
	if t.OID == OIDChar && len(s) > 1 {
		return value.Text(s[:1]), nil // "char" keeps the first byte
	}
	switch t.OID {
	case OIDBool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "t", "tr", "tru", "true", "y", "ye", "yes", "on", "1":
			return value.Bool(true), nil
		case "f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0":
			return value.Bool(false), nil
		}
		return nil, invalidText(t, s)
	case OIDOID, OIDRegclass, OIDRegtype, OIDRegnamespace:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			if t.OID != OIDOID {
				return parseRegName(t, s)
			}
			return nil, invalidText(t, s)
		}
		if n < 0 || n > math.MaxUint32 {
			return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value %q is out of range for type %s", s, names[t.OID])
		}
		return value.Int(n), nil
	case OIDInt2, OIDInt4, OIDInt8:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value %q is out of range for type %s", s, names[t.OID])
			}
			return nil, invalidText(t, s)
		}
		v, err := Coerce(t, value.Int(i))
		if err != nil {
			return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value %q is out of range for type %s", s, names[t.OID])
		}
		return v, nil
	case OIDFloat4, OIDFloat8:
		ts := strings.TrimSpace(s)
		f, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "%q is out of range for type %s", s, names[t.OID])
			}
			return nil, invalidText(t, s)
		}
		if l := strings.ToLower(strings.TrimLeft(ts, "+-")); (l == "inf" || l == "infinity" || l == "nan") == false && strings.ContainsAny(l, "x_") {
			return nil, invalidText(t, s) // Go accepts hex floats and underscores; PostgreSQL does not
		}
		return value.Float(f), nil
	case OIDNumeric:
		ts := strings.TrimSpace(s)
		if ts == "" || strings.ContainsAny(ts, "_xX") {
			return nil, invalidText(t, s)
		}
		n, err := value.ParseNumeric(ts)
		if err != nil {
			return nil, invalidText(t, s)
		}
		return n, nil
	case OIDText, OIDVarchar, OIDBpchar, OIDName, OIDUnknown, OIDChar:
		if strings.IndexByte(s, 0) >= 0 {
			return nil, pgerror.New("22021", "invalid byte sequence for encoding \"UTF8\": 0x00")
		}
		return value.Text(s), nil
	case OIDBytea:
		return parseBytea(s)
	case OIDDate:
		return parseDate(s)
	case OIDTimestamp, OIDTimestampTZ:
		return parseTimestamp(t, s)
	case OIDUUID:
		return parseUUID(s)
	case OIDInterval:
		return ParseInterval(s)
	case OIDJSONB:
		b, err := NormalizeJSON([]byte(s))
		if err != nil {
			return nil, pgerror.New(pgerror.CodeInvalidTextRepresentation, "invalid input syntax for type json")
		}
		return value.JSONB(b), nil
	}
	return nil, pgerror.New(pgerror.CodeFeatureNotSupported, "input of type %s is not supported", t)
}

func parseBytea(s string) (value.Value, error) {
	if strings.HasPrefix(s, `\x`) {
		b, err := hex.DecodeString(strings.Join(strings.Fields(s[2:]), ""))
		if err != nil {
			return nil, invalidText(Bytea, s)
		}
		return value.Bytes(b), nil
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3':
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return nil, invalidText(Bytea, s)
		}
	}
	if out == nil {
		out = []byte{}
	}
	return value.Bytes(out), nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func parseUUID(s string) (value.Value, error) {
	h := strings.TrimSpace(s)
	if strings.HasPrefix(h, "{") && strings.HasSuffix(h, "}") {
		h = h[1 : len(h)-1]
	}
	h = strings.ReplaceAll(h, "-", "")
	var u value.UUID
	if len(h) != 32 {
		return nil, invalidText(UUID, s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return nil, invalidText(UUID, s)
	}
	return u, nil
}

var dateLayouts = []string{"2006-01-02", "20060102", "2006-1-2"}

func parseDate(s string) (value.Value, error) {
	ts := strings.TrimSpace(strings.ToLower(s))
	switch ts {
	case "infinity", "+infinity":
		return value.Date(math.MaxInt32), nil
	case "-infinity":
		return value.Date(math.MinInt32), nil
	case "epoch":
		return value.Date(-10957), nil
	}
	for _, l := range dateLayouts {
		d, err := time.Parse(l, ts)
		if err == nil {
			return value.Date(int32(d.Sub(value.Epoch).Hours() / 24)), nil
		}
		if strings.Contains(err.Error(), "out of range") {
			return nil, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "date/time field value out of range: %q", s)
		}
	}
	// A timestamp's date part is accepted, as PostgreSQL does.
	if v, err := parseTimestamp(Timestamp, s); err == nil {
		us := int64(v.(value.Timestamp))
		return value.Date(int32(math.Floor(float64(us) / 86_400e6))), nil
	}
	return nil, pgerror.New(pgerror.CodeInvalidDatetimeFormat, "invalid input syntax for type date: %q", s)
}

var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04Z07:00",
	"2006-01-02 15:04Z07",
	"2006-01-02 15:04Z0700",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseTimestamp(t T, s string) (value.Value, error) {
	ts := strings.TrimSpace(s)
	mk := func(us int64) value.Value {
		if t.OID == OIDTimestampTZ {
			return value.TimestampTZ(us)
		}
		return value.Timestamp(us)
	}
	switch strings.ToLower(ts) {
	case "infinity", "+infinity":
		return mk(math.MaxInt64), nil
	case "-infinity":
		return mk(math.MinInt64), nil
	case "epoch":
		return mk(-946_684_800_000_000), nil
	}
	norm := strings.Replace(ts, "T", " ", 1)
	norm = strings.TrimSuffix(strings.TrimSuffix(norm, " UTC"), " utc")
	for _, l := range timestampLayouts {
		tm, err := time.Parse(l, norm)
		if err != nil {
			if strings.Contains(err.Error(), "out of range") {
				return nil, pgerror.New(pgerror.CodeDatetimeFieldOverflow, "date/time field value out of range: %q", s)
			}
			continue
		}
		if t.OID == OIDTimestamp {
			// A zone on a timestamp without time zone is ignored.
			y, mo, d := tm.Date()
			h, mi, sec := tm.Clock()
			tm = time.Date(y, mo, d, h, mi, sec, tm.Nanosecond(), time.UTC)
		}
		return mk(tm.Sub(value.Epoch).Round(time.Microsecond).Microseconds()), nil
	}
	return nil, pgerror.New(pgerror.CodeInvalidDatetimeFormat, "invalid input syntax for type %s: %q", names[t.OID], s)
}

// AppendText appends the text form of v (of type t) to b, as PostgreSQL's
// output functions print it with DateStyle ISO and TimeZone UTC.
func AppendText(b []byte, t T, v value.Value) []byte {
	switch v := v.(type) {
	case value.Bool:
		if v {
			return append(b, 't')
		}
		return append(b, 'f')
	case value.Int:
		if name, ok := regName(t, int64(v)); ok {
			return append(b, name...)
		}
		return strconv.AppendInt(b, int64(v), 10)
	case value.Float:
		return appendFloat(b, float64(v), t.OID == OIDFloat4)
	case value.Array:
		return appendArrayText(b, t, v)
	case value.Numeric:
		return append(b, v.String()...)
	case value.Text:
		return append(b, v...)
	case value.Bytes:
		b = append(b, `\x`...)
		return hex.AppendEncode(b, v)
	case value.Date:
		return append(b, v.String()...)
	case value.Timestamp:
		return append(b, v.String()...)
	case value.TimestampTZ:
		return append(b, v.String()...)
	case value.UUID:
		return append(b, v.String()...)
	case value.JSONB:
		return append(b, v...)
	}
	return append(b, v.String()...)
}

// appendFloat prints as PostgreSQL 15 does with extra_float_digits = 1:
// the shortest exact digits, in fixed notation when the decimal exponent
// lies in [-4, 15) for float8 or [-4, 6) for float4, else as 1e+06.
func appendFloat(b []byte, f float64, single bool) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(b, "-0"...)
		}
		return append(b, '0')
	}
	bits, maxExp := 64, 15
	if single {
		bits, maxExp = 32, 6
	}
	e := strconv.FormatFloat(f, 'e', -1, bits)
	mant, expS, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expS)
	if exp < -4 || exp >= maxExp {
		b = append(b, mant...)
		b = append(b, 'e')
		if exp < 0 {
			b = append(b, '-')
			exp = -exp
		} else {
			b = append(b, '+')
		}
		if exp < 10 {
			b = append(b, '0')
		}
		return strconv.AppendInt(b, int64(exp), 10)
	}
	return strconv.AppendFloat(b, f, 'f', -1, bits)
}

// NormalizeJSON checks a JSON document and prints it as PostgreSQL prints
// jsonb: object keys ordered by length, then bytes, the last of duplicate
// keys kept, ", " and ": " as separators, numbers as written.
func NormalizeJSON(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	var out []byte
	var write func(v any)
	write = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b string) int {
				if len(a) != len(b) {
					return len(a) - len(b)
				}
				return strings.Compare(a, b)
			})
			out = append(out, '{')
			for i, k := range keys {
				if i > 0 {
					out = append(out, ", "...)
				}
				kb, _ := json.Marshal(k)
				out = append(out, kb...)
				out = append(out, ": "...)
				write(v[k])
			}
			out = append(out, '}')
		case []any:
			out = append(out, '[')
			for i, e := range v {
				if i > 0 {
					out = append(out, ", "...)
				}
				write(e)
			}
			out = append(out, ']')
		case json.Number:
			out = append(out, v...)
		default:
			eb, _ := json.Marshal(v)
			out = append(out, eb...)
		}
	}
	write(v)
	return out, nil
}

// Binary formats.

func invalidBinary(t T) *pgerror.Error {
	return pgerror.New(pgerror.CodeInvalidBinaryRepresentation, "incorrect binary data format for type %s", names[t.OID])
}

// AppendBinary appends the binary wire form of v (of type t) to b.
func AppendBinary(b []byte, t T, v value.Value) []byte {
	switch v := v.(type) {
	case value.Bool:
		if v {
			return append(b, 1)
		}
		return append(b, 0)
	case value.Array:
		return appendArrayBinary(b, t, v)
	case value.Int:
		switch t.OID {
		case OIDInt2:
			return binary.BigEndian.AppendUint16(b, uint16(v))
		case OIDInt4, OIDOID, OIDRegclass, OIDRegtype, OIDRegnamespace:
			return binary.BigEndian.AppendUint32(b, uint32(v))
		}
		return binary.BigEndian.AppendUint64(b, uint64(v))
	case value.Float:
		if t.OID == OIDFloat4 {
			return binary.BigEndian.AppendUint32(b, math.Float32bits(float32(v)))
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(float64(v)))
	case value.Numeric:
		return appendNumericBinary(b, v.Dec)
	case value.Text:
		return append(b, v...)
	case value.Bytes:
		return append(b, v...)
	case value.Date:
		return binary.BigEndian.AppendUint32(b, uint32(v))
	case value.Timestamp:
		return binary.BigEndian.AppendUint64(b, uint64(v))
	case value.TimestampTZ:
		return binary.BigEndian.AppendUint64(b, uint64(v))
	case value.UUID:
		return append(b, v[:]...)
	case value.JSONB:
		return append(append(b, 1), v...)
	case value.Interval:
		b = binary.BigEndian.AppendUint64(b, uint64(v.Micros))
		b = binary.BigEndian.AppendUint32(b, uint32(v.Days))
		return binary.BigEndian.AppendUint32(b, uint32(v.Months))
	}
	return AppendText(b, t, v)
}

// ParseBinary reads the binary wire form of a value of type t.
func ParseBinary(t T, b []byte) (value.Value, error) {
	v, err := parseBinary(t, b)
	if err != nil {
		return nil, err
	}
	return Coerce(t, v)
}

func parseBinary(t T, b []byte) (value.Value, error) {
	if t.IsArray() {
		return parseArrayBinary(t, b)
	}
	need := func(n int) error {
		if len(b) != n {
			return invalidBinary(t)
		}
		return nil
	}
	switch t.OID {
	case OIDBool:
		if err := need(1); err != nil {
			return nil, err
		}
		return value.Bool(b[0] != 0), nil
	case OIDInt2:
		if err := need(2); err != nil {
			return nil, err
		}
		return value.Int(int16(binary.BigEndian.Uint16(b))), nil
	case OIDInt4:
		if err := need(4); err != nil {
			return nil, err
		}
		return value.Int(int32(binary.BigEndian.Uint32(b))), nil
	case OIDOID, OIDRegclass, OIDRegtype, OIDRegnamespace:
		if err := need(4); err != nil {
			return nil, err
		}
		return value.Int(binary.BigEndian.Uint32(b)), nil
	case OIDInt8:
		if err := need(8); err != nil {
			return nil, err
		}
		return value.Int(int64(binary.BigEndian.Uint64(b))), nil
	case OIDFloat4:
		if err := need(4); err != nil {
			return nil, err
		}
		return value.Float(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
	case OIDFloat8:
		if err := need(8); err != nil {
			return nil, err
		}
		return value.Float(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
	case OIDNumeric:
		d, err := parseNumericBinary(b)
		if err != nil {
			return nil, invalidBinary(t)
		}
		return value.Numeric{Dec: d}, nil
	case OIDText, OIDVarchar, OIDBpchar, OIDName, OIDUnknown, OIDChar:
		return parseText(t, string(b))
	case OIDBytea:
		return value.Bytes(bytes.Clone(b)), nil
	case OIDDate:
		if err := need(4); err != nil {
			return nil, err
		}
		return value.Date(int32(binary.BigEndian.Uint32(b))), nil
	case OIDTimestamp, OIDTimestampTZ:
		if err := need(8); err != nil {
			return nil, err
		}
		us := int64(binary.BigEndian.Uint64(b))
		if t.OID == OIDTimestamp {
			return value.Timestamp(us), nil
		}
		return value.TimestampTZ(us), nil
	case OIDUUID:
		if err := need(16); err != nil {
			return nil, err
		}
		var u value.UUID
		copy(u[:], b)
		return u, nil
	case OIDJSONB:
		if len(b) < 1 || b[0] != 1 {
			return nil, invalidBinary(t)
		}
		return parseText(t, string(b[1:]))
	case OIDInterval:
		if err := need(16); err != nil {
			return nil, err
		}
		return value.Interval{Micros: int64(binary.BigEndian.Uint64(b)), Days: int32(binary.BigEndian.Uint32(b[8:])), Months: int32(binary.BigEndian.Uint32(b[12:]))}, nil
	}
	return nil, pgerror.New(pgerror.CodeFeatureNotSupported, "binary input of type %s is not supported", t)
}

const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// appendNumericBinary writes PostgreSQL's numeric binary form: ndigits,
// weight, sign, dscale, then base-10000 digits.
func appendNumericBinary(b []byte, d *apd.Decimal) []byte {
	header := func(ndigits, weight int16, sign, dscale uint16) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(ndigits))
		b = binary.BigEndian.AppendUint16(b, uint16(weight))
		b = binary.BigEndian.AppendUint16(b, sign)
		return binary.BigEndian.AppendUint16(b, dscale)
	}
	switch {
	case d.Form == apd.NaN || d.Form == apd.NaNSignaling:
		return header(0, 0, numericNaN, 0)
	case d.Form == apd.Infinite && d.Negative:
		return header(0, 0, numericNInf, 0)
	case d.Form == apd.Infinite:
		return header(0, 0, numericPInf, 0)
	}
	digits := d.Coeff.String()
	exp := int(d.Exponent)
	dscale := 0
	if exp < 0 {
		dscale = -exp
	}
	// Split into integer and fraction digit strings.
	var intPart, fracPart string
	if exp >= 0 {
		intPart = digits + strings.Repeat("0", exp)
	} else if len(digits) > -exp {
		intPart, fracPart = digits[:len(digits)+exp], digits[len(digits)+exp:]
	} else {
		fracPart = strings.Repeat("0", -exp-len(digits)) + digits
	}
	intPart = strings.TrimLeft(intPart, "0")
	if pad := (4 - len(intPart)%4) % 4; pad > 0 {
		intPart = strings.Repeat("0", pad) + intPart
	}
	if pad := (4 - len(fracPart)%4) % 4; pad > 0 {
		fracPart += strings.Repeat("0", pad)
	}
	all := intPart + fracPart
	groups := make([]uint16, 0, len(all)/4)
	for i := 0; i < len(all); i += 4 {
		n, _ := strconv.Atoi(all[i : i+4])
		groups = append(groups, uint16(n))
	}
	weight := len(intPart)/4 - 1
	for len(groups) > 0 && groups[0] == 0 {
		groups = groups[1:]
		weight--
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	if len(groups) == 0 {
		weight = 0
	}
	sign := uint16(numericPos)
	if d.Negative && len(groups) > 0 {
		sign = numericNeg
	}
	b = header(int16(len(groups)), int16(weight), sign, uint16(dscale))
	for _, g := range groups {
		b = binary.BigEndian.AppendUint16(b, g)
	}
	return b
}

func parseNumericBinary(b []byte) (*apd.Decimal, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("short numeric")
	}
	ndigits := int(int16(binary.BigEndian.Uint16(b)))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	dscale := int(binary.BigEndian.Uint16(b[6:]))
	if ndigits < 0 || len(b) != 8+2*ndigits || dscale > 0x3fff {
		return nil, fmt.Errorf("bad numeric header")
	}
	switch sign {
	case numericNaN:
		return &apd.Decimal{Form: apd.NaN}, nil
	case numericPInf:
		return &apd.Decimal{Form: apd.Infinite}, nil
	case numericNInf:
		return &apd.Decimal{Form: apd.Infinite, Negative: true}, nil
	case numericPos, numericNeg:
	default:
		return nil, fmt.Errorf("bad numeric sign")
	}
	var sb strings.Builder
	for i := 0; i < ndigits; i++ {
		g := binary.BigEndian.Uint16(b[8+2*i:])
		if g > 9999 {
			return nil, fmt.Errorf("bad numeric digit")
		}
		fmt.Fprintf(&sb, "%04d", g)
	}
	// value = digits × 10000^(weight-ndigits+1)
	exp := 4 * (weight - ndigits + 1)
	coeff := sb.String()
	if coeff == "" {
		coeff = "0"
	}
	// Express at exactly dscale fractional digits.
	if -exp < dscale {
		coeff += strings.Repeat("0", dscale+exp)
		exp = -dscale
	} else if -exp > dscale {
		cut := -exp - dscale
		if cut > len(coeff) {
			cut = len(coeff)
		}
		coeff = coeff[:len(coeff)-cut]
		exp += cut
		if coeff == "" {
			coeff = "0"
		}
	}
	var c apd.BigInt
	if _, ok := c.SetString(coeff, 10); !ok {
		return nil, fmt.Errorf("bad numeric digits")
	}
	d := apd.NewWithBigInt(&c, int32(exp))
	d.Negative = sign == numericNeg && c.Sign() != 0
	return d, nil
}

// roundNumeric applies numeric(precision, scale): round half away from
// zero to scale digits, then refuse more than precision-scale integer
// digits.
func roundNumeric(n value.Numeric, precision, scale int32) (value.Value, error) {
	if n.Dec.Form != apd.Finite {
		if n.Dec.Form == apd.Infinite {
			return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "numeric field overflow").
				WithDetail("A field with precision %d, scale %d cannot hold an infinite value.", precision, scale)
		}
		return n, nil
	}
	ctx := apd.BaseContext.WithPrecision(2000)
	ctx.Rounding = apd.RoundHalfUp
	out := new(apd.Decimal)
	if _, err := ctx.Quantize(out, n.Dec, -scale); err != nil {
		return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "numeric field overflow")
	}
	intDigits := int32(out.NumDigits()) + out.Exponent
	if out.Coeff.Sign() != 0 && intDigits > precision-scale {
		return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "numeric field overflow").
			WithDetail("A field with precision %d, scale %d must round to an absolute value less than 10^%d.", precision, scale, precision-scale)
	}
	return value.Numeric{Dec: out}, nil
}
