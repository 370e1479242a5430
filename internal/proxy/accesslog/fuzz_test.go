package accesslog

import (
	"testing"
)

// FuzzParseText: any format string either fails to parse with an error or
// compiles into a formatter that renders an entry without panicking.
func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		istioText, EnvoyDefaultFormat, "%%", "%", "%REQ(", "%REQ(a?b):3%", "%START_TIME(%s.%3f)%",
		"%START_TIME(%E9S %Q)%", "%DURATION:5%", "x%HOSTNAME%y", "%UPSTREAM_HOST",
	} {
		f.Add(s)
	}
	e := httpEntry()
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := newTextFormatter(s, "h", false)
		if err != nil {
			return
		}
		fm.AppendTo(nil, nil, e)
		fm.AppendTo(nil, nil, &Entry{Info: e.Info, TCP: true})
	})
}
