package main

import (
	"slices"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // nil: refused
	}{
		{[]string{"127.0.0.1"}, []string{"127.0.0.1/32"}},
		{[]string{"10.1.2.3/8", "::1"}, []string{"10.0.0.0/8", "::1/128"}},
		{[]string{"proxy.local"}, nil},
		{[]string{"10.0.0.0/33"}, nil},
	} {
		got, err := parseTrustedProxies(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: accepted as %v", tc.in, got)
			}
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if err != nil || !slices.Equal(s, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, s, err, tc.want)
		}
	}
}
