package translate

import (
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// TestRetryPolicyEdges covers the cases of Istio's retry.ConvertPolicy the
// goldens do not: negative attempts, retryOn with codes only or blanks,
// non-status numbers, and retryIgnorePreviousHosts true under consistent
// hashing.
func TestRetryPolicyEdges(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        *networking.HTTPRetry
		hash      bool
		nilPolicy bool
		retryOn   string
		codes     []uint32
		prevHosts bool
	}{
		{name: "absent", retryOn: defaultRetryOn, codes: []uint32{503}, prevHosts: true},
		{name: "absent, hashing", hash: true, retryOn: defaultRetryOn, codes: []uint32{503}},
		{name: "negative attempts", in: &networking.HTTPRetry{Attempts: -1}, nilPolicy: true},
		{name: "codes only", in: &networking.HTTPRetry{Attempts: 1, RetryOn: " 503 , ,429"},
			retryOn: "retriable-status-codes", codes: []uint32{503, 429}, prevHosts: true},
		{name: "not a status", in: &networking.HTTPRetry{Attempts: 1, RetryOn: "5xx,999"},
			retryOn: "5xx,999", prevHosts: true},
		{name: "explicit retriable-status-codes kept once", in: &networking.HTTPRetry{Attempts: 1, RetryOn: "retriable-status-codes,502"},
			retryOn: "retriable-status-codes", codes: []uint32{502}, prevHosts: true},
		{name: "ignore previous hosts under hashing", hash: true,
			in:      &networking.HTTPRetry{Attempts: 1, RetryIgnorePreviousHosts: wrapperspb.Bool(true)},
			retryOn: defaultRetryOn, codes: []uint32{503}, prevHosts: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := retryPolicy(tc.in, tc.hash)
			if tc.nilPolicy {
				if p != nil {
					t.Fatalf("got %v, want no policy", p)
				}
				return
			}
			if p.GetRetryOn() != tc.retryOn {
				t.Errorf("retry_on %q, want %q", p.GetRetryOn(), tc.retryOn)
			}
			if got := p.GetRetriableStatusCodes(); len(got) != len(tc.codes) || (len(got) > 0 && got[0] != tc.codes[0]) {
				t.Errorf("retriable_status_codes %v, want %v", got, tc.codes)
			}
			if got := len(p.GetRetryHostPredicate()) == 1; got != tc.prevHosts {
				t.Errorf("previous_hosts %v, want %v", got, tc.prevHosts)
			}
			if p.GetHostSelectionRetryMaxAttempts() != 5 {
				t.Errorf("host_selection_retry_max_attempts %d, want 5", p.GetHostSelectionRetryMaxAttempts())
			}
		})
	}
}

// TestTranslateFaultEdges: no fault without a delay or abort type; an
// abort without percentage aborts nothing (Istio: "if not specified, no
// request is aborted"); unknown gRPC names map to UNKNOWN.
func TestTranslateFaultEdges(t *testing.T) {
	if f := translateFault(&networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{}}); f != nil {
		t.Errorf("abort without an error type: got %v, want nil", f)
	}
	f := translateFault(&networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
		ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 500},
	}})
	if f.GetAbort().GetPercentage().GetNumerator() != 0 || f.GetAbort().GetHttpStatus() != 500 {
		t.Errorf("abort without percentage: %v", f)
	}
	d := translateFault(&networking.HTTPFaultInjection{Delay: &networking.HTTPFaultInjection_Delay{
		HttpDelayType: &networking.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durationpb.New(1e9)},
		Percentage:    &networking.Percent{Value: 0.0001},
	}})
	if n := d.GetDelay().GetPercentage().GetNumerator(); n != 1 {
		t.Errorf("0.0001 %% = %d per million, want 1", n)
	}
	if c := grpcCode("NOPE"); c != 2 {
		t.Errorf("grpcCode(NOPE) = %d, want 2 (UNKNOWN)", c)
	}
	if c := grpcCode("UNAUTHENTICATED"); c != 16 {
		t.Errorf("grpcCode(UNAUTHENTICATED) = %d, want 16", c)
	}
}
