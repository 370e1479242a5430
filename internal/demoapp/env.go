package demoapp

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// portName is the name of each service's port in the local manifest
// (examples/bookinfo/workloads.yaml): `weft up` gives its app port in
// PORT_<NAME> (and PORT).
var portName = map[string]string{ProductPage: "HTTP", Details: "HTTP", Reviews: "GRPC", Ratings: "HTTP"}

// OptionsFromEnv reads the environment contract of `weft up` for the
// service named service; getenv is os.Getenv in production.
//
//	PORT_<PORTNAME>, PORT  the port to listen on, on 127.0.0.1 (9080)
//	WEFT_PROXY             the sidecar's outbound HTTP proxy, host:port
//	VERSION                v1, v2, v3 (v1)
//	POD_NAMESPACE          the namespace of the services called (default)
//	DETAILS_ADDR, REVIEWS_ADDR, RATINGS_ADDR   host:port overrides
//	DELAY, FAIL_PERCENT, FAIL_STATUS           the service's own fault
//
// SERVICE_NAME is not read: the role comes from `weft demo-app NAME`.
func OptionsFromEnv(service string, getenv func(string) string) (Options, error) {
	o := Options{
		Service:     service,
		Version:     getenv("VERSION"),
		Namespace:   getenv("POD_NAMESPACE"),
		Proxy:       getenv("WEFT_PROXY"),
		DetailsAddr: getenv("DETAILS_ADDR"),
		ReviewsAddr: getenv("REVIEWS_ADDR"),
		RatingsAddr: getenv("RATINGS_ADDR"),
	}
	port := getenv("PORT_" + portName[service])
	if port == "" {
		port = getenv("PORT")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return o, fmt.Errorf("demoapp: PORT %q is not a port number: set PORT (or PORT_%s) to 1-65535", port, portName[service])
		}
		o.ListenAddr = net.JoinHostPort("127.0.0.1", port)
	}
	if o.Proxy != "" {
		if _, _, err := net.SplitHostPort(o.Proxy); err != nil {
			return o, fmt.Errorf("demoapp: WEFT_PROXY %q: %v: write host:port, such as 127.0.0.1:15001", o.Proxy, err)
		}
	}
	f, err := FaultFromStrings(getenv("DELAY"), getenv("FAIL_PERCENT"), getenv("FAIL_STATUS"))
	if err != nil {
		return o, err
	}
	o.Fault = f
	return o, nil
}

// FaultFromStrings parses a fault given as text (environment or flags):
// delay a Go duration ("2s"), percent 0-100, status an HTTP status 400-599;
// empty strings leave the zero value.
func FaultFromStrings(delay, percent, status string) (Fault, error) {
	var f Fault
	var err error
	if delay = strings.TrimSpace(delay); delay != "" {
		if f.Delay, err = time.ParseDuration(delay); err != nil {
			return f, fmt.Errorf("demoapp: DELAY %q: write a duration such as 2s or 500ms", delay)
		}
	}
	if percent = strings.TrimSpace(percent); percent != "" {
		if f.FailPercent, err = strconv.Atoi(percent); err != nil {
			return f, fmt.Errorf("demoapp: FAIL_PERCENT %q: write a whole number from 0 to 100", percent)
		}
	}
	if status = strings.TrimSpace(status); status != "" {
		if f.FailStatus, err = strconv.Atoi(status); err != nil {
			return f, fmt.Errorf("demoapp: FAIL_STATUS %q: write an HTTP status such as 500", status)
		}
	}
	return f, f.validate()
}
