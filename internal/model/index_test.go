package model

import "testing"

func TestHostMatchesAndSubsetOf(t *testing.T) {
	tests := []struct {
		a, b            string
		matches, subset bool
	}{
		{"foo.com", "foo.com", true, true},
		{"foo.com", "bar.com", false, false},
		{"*.com", "foo.com", true, false},
		{"foo.com", "*.com", true, true},
		{"*.foo.com", "foo.com", false, false},
		{"*", "foo.com", true, false},
		{"foo.com", "*", true, true},
		{"*", "*.com", true, false},
		{"*.com", "*", true, true},
		{"*.a.foo.com", "*.foo.com", true, true},
		{"*.foo.com", "*.a.foo.com", true, false},
		{"*.bar.com", "*.foo.com", false, false},
	}
	for _, tt := range tests {
		if got := HostMatches(tt.a, tt.b); got != tt.matches {
			t.Errorf("HostMatches(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.matches)
		}
		if got := HostMatches(tt.b, tt.a); got != tt.matches {
			t.Errorf("HostMatches(%q, %q) = %v, want %v (symmetric)", tt.b, tt.a, got, tt.matches)
		}
		if got := HostSubsetOf(tt.a, tt.b); got != tt.subset {
			t.Errorf("HostSubsetOf(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.subset)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	labels := map[string]string{"app": "web", "version": "v1"}
	tests := []struct {
		sel  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"app": "web"}, true},
		{map[string]string{"app": "web", "version": "v1"}, true},
		{map[string]string{"app": "web", "version": "v2"}, false},
		{map[string]string{"tier": ""}, false}, // a missing label does not equal ""
	}
	for _, tt := range tests {
		if got := SelectorMatches(tt.sel, labels); got != tt.want {
			t.Errorf("SelectorMatches(%v) = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func TestExportedTo(t *testing.T) {
	tests := []struct {
		exportTo  []string
		owner, ns string
		want      bool
	}{
		{nil, "a", "b", true},
		{[]string{"*"}, "a", "b", true},
		{[]string{"."}, "a", "a", true},
		{[]string{"."}, "a", "b", false},
		{[]string{"~"}, "a", "a", false},
		{[]string{"b", "c"}, "a", "c", true},
		{[]string{"b", "c"}, "a", "a", false},
	}
	for _, tt := range tests {
		if got := ExportedTo(tt.exportTo, tt.owner, tt.ns); got != tt.want {
			t.Errorf("ExportedTo(%v, %q, %q) = %v, want %v", tt.exportTo, tt.owner, tt.ns, got, tt.want)
		}
	}
}
