package jwtauthn

// requirement is a compiled JwtRequirement.
type requirement interface {
	// eval returns OK when the request satisfies the requirement, else
	// the status to reject it with.
	eval(e *evalCtx) Status
}

// reqProvider requires a valid token of one provider.
type reqProvider int

func (r reqProvider) eval(e *evalCtx) Status { return e.provider(int(r)) }

// reqAny is requires_any: satisfied when one element is. Otherwise the
// first failure other than a missing token is reported (a present but
// invalid token is what the client must hear about), else JwtMissed.
type reqAny []requirement

func (r reqAny) eval(e *evalCtx) Status {
	worst := JwtMissed
	for _, c := range r {
		st := c.eval(e)
		if st == OK {
			return OK
		}
		if worst == JwtMissed {
			worst = st
		}
	}
	return worst
}

// reqAll is requires_all: every element must be satisfied; the first
// failure is reported.
type reqAll []requirement

func (r reqAll) eval(e *evalCtx) Status {
	for _, c := range r {
		if st := c.eval(e); st != OK {
			return st
		}
	}
	return OK
}

// reqAllowMissing is allow_missing: satisfied when no provider's
// locations hold a token, or when a present token verifies; a present
// invalid token fails (Envoy's semantics: a missing JWT passes, an
// invalid one is rejected).
type reqAllowMissing []int

func (r reqAllowMissing) eval(e *evalCtx) Status {
	worst := OK
	for _, i := range r {
		st := e.provider(i)
		switch {
		case st == OK:
			return OK
		case st != JwtMissed && worst == OK:
			worst = st
		}
	}
	return worst
}

// reqAllowMissingOrFailed is allow_missing_or_failed: always satisfied;
// valid tokens still produce their outputs.
type reqAllowMissingOrFailed struct{}

func (reqAllowMissingOrFailed) eval(e *evalCtx) Status {
	for i := range e.results {
		e.provider(i)
	}
	return OK
}
