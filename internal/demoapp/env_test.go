package demoapp

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		service string
		env     map[string]string
		check   func(Options) bool
		wantErr string
	}{
		{name: "defaults", service: Details, env: nil,
			check: func(o Options) bool { return o.ListenAddr == "" && o.Proxy == "" && o.Fault == Fault{} }},
		{name: "PORT", service: Details, env: map[string]string{"PORT": "9123"},
			check: func(o Options) bool { return o.ListenAddr == "127.0.0.1:9123" }},
		{name: "PORT_GRPC wins for reviews", service: Reviews, env: map[string]string{"PORT": "1", "PORT_GRPC": "9124", "PORT_HTTP": "2"},
			check: func(o Options) bool { return o.ListenAddr == "127.0.0.1:9124" }},
		{name: "PORT_HTTP wins for ratings", service: Ratings, env: map[string]string{"PORT": "1", "PORT_HTTP": "9125"},
			check: func(o Options) bool { return o.ListenAddr == "127.0.0.1:9125" }},
		{name: "mesh", service: ProductPage, env: map[string]string{"WEFT_PROXY": "127.0.0.3:15001", "VERSION": "v2", "POD_NAMESPACE": "shop"},
			check: func(o Options) bool {
				return o.Proxy == "127.0.0.3:15001" && o.Version == "v2" && o.Namespace == "shop"
			}},
		{name: "fault", service: Ratings, env: map[string]string{"DELAY": "250ms", "FAIL_PERCENT": "30", "FAIL_STATUS": "503"},
			check: func(o Options) bool {
				return o.Fault == Fault{Delay: 250 * time.Millisecond, FailPercent: 30, FailStatus: 503}
			}},
		{name: "bad port", service: Details, env: map[string]string{"PORT": "http"}, wantErr: "set PORT (or PORT_HTTP)"},
		{name: "port range", service: Details, env: map[string]string{"PORT": "70000"}, wantErr: "1-65535"},
		{name: "bad proxy", service: Details, env: map[string]string{"WEFT_PROXY": "127.0.0.1"}, wantErr: "write host:port"},
		{name: "bad delay", service: Ratings, env: map[string]string{"DELAY": "2"}, wantErr: "write a duration"},
		{name: "bad percent", service: Ratings, env: map[string]string{"FAIL_PERCENT": "101"}, wantErr: "0 to 100"},
		{name: "bad status", service: Ratings, env: map[string]string{"FAIL_STATUS": "200"}, wantErr: "400-599"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := OptionsFromEnv(tc.service, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(o) {
				t.Fatalf("OptionsFromEnv = %+v, %v", o, err)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Service: Reviews, Namespace: "shop"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Version != "v1" || o.ListenAddr != "127.0.0.1:9080" || o.RatingsAddr != "ratings.shop.svc.cluster.local:9080" ||
		o.DetailsAddr != "details.shop.svc.cluster.local:9080" || o.ReviewsAddr != "reviews.shop.svc.cluster.local:9080" ||
		o.CallTimeout != 3*time.Second || o.RatingsTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
	if _, err := (Options{Service: "catalog"}).withDefaults(); err == nil || !strings.Contains(err.Error(), "use one of") {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := Start(Options{Service: Reviews, Version: "v9", ListenAddr: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "v1 (no ratings)") {
		t.Fatalf("reviews v9: %v", err)
	}
}
