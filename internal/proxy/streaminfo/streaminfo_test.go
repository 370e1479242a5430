package streaminfo

import "testing"

func TestFlagsString(t *testing.T) {
	cases := []struct {
		f    ResponseFlags
		want string
	}{
		{0, "-"},
		{NoRouteFound, "NR"},
		{UpstreamOverflow | NoHealthyUpstream, "UH,UO"},
		{UpstreamRequestTimeout | UpstreamConnectionFailure, "UT,UF"},
		{UnconditionalDropOverload, "UDO"},
	}
	for _, c := range cases {
		if got := c.f.String(); got != c.want {
			t.Errorf("%d: String() = %q, want %q", c.f, got, c.want)
		}
		if got := string(c.f.AppendTo(nil)); got != c.want {
			t.Errorf("%d: AppendTo = %q, want %q", c.f, got, c.want)
		}
	}
	if f, ok := ParseFlag("DPE"); !ok || f != DownstreamProtocolError {
		t.Errorf("ParseFlag(DPE) = %v, %v", f, ok)
	}
}
