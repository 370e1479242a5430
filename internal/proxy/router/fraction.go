package router

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
)

// Fraction is Envoy's FractionalPercent: Num out of Den (100, 10,000 or
// 1,000,000). The zero value never hits. Route mirroring, the fault filter
// and the local rate limit filter share it.
type Fraction struct{ Num, Den uint64 }

// Hit reports whether a uniform random draw r falls in the fraction, as
// Envoy's featureEnabled decides without a runtime override: r modulo the
// denominator below the numerator (a numerator at or above the
// denominator always hits).
func (f Fraction) Hit(r uint64) bool { return f.Den > 0 && r%f.Den < f.Num }

// Capped returns f with its numerator lowered to n when n is smaller.
func (f Fraction) Capped(n uint64) Fraction {
	f.Num = min(f.Num, n)
	return f
}

var denominators = map[typev3.FractionalPercent_DenominatorType]uint64{
	typev3.FractionalPercent_HUNDRED:      100,
	typev3.FractionalPercent_TEN_THOUSAND: 10000,
	typev3.FractionalPercent_MILLION:      1000000,
}

// CompileFraction reads a FractionalPercent found at path (nil: 0 %).
func CompileFraction(p *typev3.FractionalPercent, path string) (Fraction, error) {
	if p == nil {
		return Fraction{Den: 100}, nil
	}
	d, ok := denominators[p.GetDenominator()]
	if !ok {
		return Fraction{}, errAt(field(path, "denominator"), "unknown denominator %v", p.GetDenominator())
	}
	return Fraction{Num: uint64(p.GetNumerator()), Den: d}, nil
}

// CompileRuntimeFraction reads a RuntimeFractionalPercent found at path:
// its default_value (0 % when unset, as Envoy without a runtime
// override); runtime_key is accepted and ignored, since weft-proxy has no
// runtime.
func CompileRuntimeFraction(p *corev3.RuntimeFractionalPercent, path string) (Fraction, error) {
	if err := CheckFields(p, path, "default_value", "runtime_key"); err != nil {
		return Fraction{}, err
	}
	return CompileFraction(p.GetDefaultValue(), field(path, "default_value"))
}

// CheckFields rejects any populated field of m that is not in allowed,
// naming it under path: for the configuration of HTTP filters, with the
// route compiler's error shape.
func CheckFields(m proto.Message, path string, allowed ...string) error {
	return checkFields(m, path, allowed...)
}
